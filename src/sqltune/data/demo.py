"""The embedded demo: a small shop database that sqltune generates deterministically, and
hundreds of verified question/SQL pairs over it, split into train and test.

The database (``shop.sqlite``) has categories, suppliers, products, customers, employees,
orders and order_items, filled from a seeded random generator, so the same seed gives the
same bytes of data on every machine. The questions come from templates, each with several
phrasings, filled with values read from the database; together they cover selection,
filters, joins, aggregates, GROUP BY / HAVING, ORDER BY / LIMIT, nested queries and set
operations. Every SQL is executed (it must run and, unless the template says otherwise,
return rows). The split is made per template, so every kind of question appears in both
parts, and no test question appears verbatim in train.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.data.build import BuildConfig, build, report_path
from sqltune.data.example import Example
from sqltune.db.schema import introspect
from sqltune.io import read_jsonl, write_json
from sqltune.sqlutil import sql_features

DB_NAME = "shop"

_CATEGORIES = {
    "Beverages": [
        "Green Tea",
        "Espresso Beans",
        "Orange Juice",
        "Sparkling Water",
        "Cold Brew Coffee",
        "Lemonade",
        "Herbal Tea",
        "Cocoa Mix",
    ],
    "Bakery": [
        "Sourdough Loaf",
        "Croissant",
        "Bagel Pack",
        "Rye Bread",
        "Blueberry Muffin",
        "Cinnamon Roll",
        "Baguette",
    ],
    "Dairy": ["Greek Yogurt", "Cheddar Cheese", "Whole Milk", "Butter", "Cream Cheese", "Mozzarella", "Oat Milk"],
    "Produce": [
        "Avocado",
        "Banana Bunch",
        "Red Apples",
        "Baby Spinach",
        "Cherry Tomatoes",
        "Sweet Potatoes",
        "Blueberries",
    ],
    "Electronics": [
        "Wireless Mouse",
        "USB-C Cable",
        "Bluetooth Speaker",
        "Noise Cancelling Headphones",
        "Webcam",
        "Power Bank",
        "Smart Plug",
        "Mechanical Keyboard",
    ],
    "Books": [
        "Mystery Novel",
        "Cookbook",
        "Travel Guide",
        "Science Fiction Anthology",
        "Children's Atlas",
        "Poetry Collection",
        "History of Rome",
    ],
    "Toys": ["Puzzle Set", "Building Blocks", "Plush Bear", "Toy Train", "Kite", "Board Game", "Yo-Yo"],
    "Garden": [
        "Garden Hose",
        "Flower Seeds",
        "Potting Soil",
        "Pruning Shears",
        "Watering Can",
        "Bird Feeder",
        "Terracotta Pot",
    ],
}
_CATEGORY_PRICE = {
    "Beverages": (2, 25),
    "Bakery": (1, 12),
    "Dairy": (1, 15),
    "Produce": (1, 10),
    "Electronics": (9, 320),
    "Books": (8, 60),
    "Toys": (5, 80),
    "Garden": (4, 70),
}
_SUPPLIERS = [
    ("Northwind Traders", "USA"),
    ("Alpine Foods", "Germany"),
    ("Maison Dupont", "France"),
    ("Sakura Supply", "Japan"),
    ("Rio Verde", "Brazil"),
    ("Maple Leaf Goods", "Canada"),
    ("Thames Wholesale", "UK"),
    ("Bella Italia", "Italy"),
    ("Pacific Gadgets", "USA"),
    ("Nordic Home", "Germany"),
]
_CITIES = [
    ("New York", "USA"),
    ("Chicago", "USA"),
    ("Seattle", "USA"),
    ("Berlin", "Germany"),
    ("Munich", "Germany"),
    ("Paris", "France"),
    ("Lyon", "France"),
    ("Tokyo", "Japan"),
    ("Osaka", "Japan"),
    ("Toronto", "Canada"),
    ("London", "UK"),
    ("Manchester", "UK"),
    ("Sao Paulo", "Brazil"),
]
_FIRST = [
    "Alice",
    "Bruno",
    "Chloe",
    "Daniel",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jack",
    "Keiko",
    "Liam",
    "Maria",
    "Noah",
    "Olivia",
    "Pedro",
    "Quinn",
    "Rosa",
    "Samuel",
    "Tara",
    "Umar",
    "Vera",
    "William",
    "Xenia",
    "Yusuf",
    "Zoe",
]
_LAST = [
    "Adams",
    "Becker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Martin",
    "Nakamura",
    "Olsen",
    "Patel",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Vogel",
    "Wright",
    "Young",
]
_SEGMENTS = ["Consumer", "Corporate", "Small Business"]
_DEPARTMENTS = {
    "Sales": ["Sales Representative", "Sales Manager"],
    "Support": ["Support Specialist"],
    "Warehouse": ["Warehouse Clerk"],
    "Finance": ["Accountant"],
}
_STATUSES = ["delivered", "shipped", "pending", "cancelled"]

DDL = """
CREATE TABLE categories (
  category_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL
);
CREATE TABLE suppliers (
  supplier_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  country TEXT NOT NULL
);
CREATE TABLE products (
  product_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category_id INTEGER NOT NULL REFERENCES categories(category_id),
  supplier_id INTEGER NOT NULL REFERENCES suppliers(supplier_id),
  unit_price REAL NOT NULL,
  stock INTEGER NOT NULL,
  discontinued INTEGER NOT NULL
);
CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  email TEXT NOT NULL,
  city TEXT NOT NULL,
  country TEXT NOT NULL,
  segment TEXT NOT NULL,
  signup_date TEXT NOT NULL
);
CREATE TABLE employees (
  employee_id INTEGER PRIMARY KEY,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  title TEXT NOT NULL,
  department TEXT NOT NULL,
  hire_date TEXT NOT NULL,
  salary INTEGER NOT NULL,
  manager_id INTEGER REFERENCES employees(employee_id)
);
CREATE TABLE orders (
  order_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
  employee_id INTEGER NOT NULL REFERENCES employees(employee_id),
  order_date TEXT NOT NULL,
  status TEXT NOT NULL
);
CREATE TABLE order_items (
  order_item_id INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL REFERENCES orders(order_id),
  product_id INTEGER NOT NULL REFERENCES products(product_id),
  quantity INTEGER NOT NULL,
  unit_price REAL NOT NULL,
  discount REAL NOT NULL
);
"""


def _date(rng: random.Random, y0: int, y1: int) -> str:
    return f"{rng.randint(y0, y1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def create_database(path: str | Path, seed: int = 0) -> Path:
    """Write the demo shop database to ``path`` (replacing it). Same seed, same rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(tmp)
    conn.executescript(DDL)
    cats = list(_CATEGORIES)
    conn.executemany("INSERT INTO categories VALUES (?, ?)", [(i + 1, c) for i, c in enumerate(cats)])
    conn.executemany("INSERT INTO suppliers VALUES (?, ?, ?)", [(i + 1, n, c) for i, (n, c) in enumerate(_SUPPLIERS)])
    products = []
    for ci, cat in enumerate(cats):
        lo, hi = _CATEGORY_PRICE[cat]
        for name in _CATEGORIES[cat]:
            pid = len(products) + 1
            products.append(
                (
                    pid,
                    name,
                    ci + 1,
                    rng.randint(1, len(_SUPPLIERS)),
                    round(rng.uniform(lo, hi), 2),
                    rng.randint(0, 400),
                    1 if rng.random() < 0.12 else 0,
                )
            )
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)", products)
    names = set()
    customers = []
    while len(customers) < 120:
        f, last = rng.choice(_FIRST), rng.choice(_LAST)
        if (f, last) in names:
            continue
        names.add((f, last))
        city, country = rng.choice(_CITIES)
        customers.append(
            (
                len(customers) + 1,
                f,
                last,
                f"{f.lower()}.{last.lower()}@example.com",
                city,
                country,
                rng.choice(_SEGMENTS),
                _date(rng, 2019, 2024),
            )
        )
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", customers)
    employees = []
    enames = set()
    for dept, titles in _DEPARTMENTS.items():
        count = 6 if dept == "Sales" else 2
        head = None
        for k in range(count):
            while True:
                f, last = rng.choice(_FIRST), rng.choice(_LAST)
                if (f, last) not in enames and (f, last) not in names:
                    break
            enames.add((f, last))
            eid = len(employees) + 1
            title = titles[-1] if (k == 0 and len(titles) > 1) else titles[0]
            salary = rng.randrange(38000, 125000, 500) if k == 0 else rng.randrange(32000, 90000, 500)
            employees.append((eid, f, last, title, dept, _date(rng, 2012, 2024), salary, head))
            if k == 0:
                head = eid
    conn.executemany("INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?, ?, ?)", employees)
    sales = [e[0] for e in employees if e[4] == "Sales"]
    buyers = [c[0] for c in customers][:-14]  # the last customers never order
    sold = [p for p in products][:-1]
    rng.shuffle(sold)
    sold = sold[:-6]  # a few products are never ordered
    orders, items = [], []
    for oid in range(1, 501):
        status = rng.choices(_STATUSES, weights=[60, 20, 12, 8])[0]
        orders.append((oid, rng.choice(buyers), rng.choice(sales), _date(rng, 2021, 2024), status))
        for p in rng.sample(sold, rng.randint(1, 4)):
            items.append((len(items) + 1, oid, p[0], rng.randint(1, 10), p[4], rng.choice([0.0, 0.0, 0.05, 0.1])))
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?)", items)
    conn.commit()
    conn.close()
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Template:
    key: str
    difficulty: str
    phrasings: tuple[str, ...]
    sql: str
    params: str  # name of a parameter source, see _param_sources
    allow_empty: bool = False


def _q(conn: sqlite3.Connection, sql: str) -> list[Any]:
    return [r[0] if len(r) == 1 else r for r in conn.execute(sql).fetchall()]


def _param_sources(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    cats = _q(conn, "SELECT name FROM categories ORDER BY category_id")
    cities = _q(conn, "SELECT DISTINCT city FROM customers ORDER BY city")
    countries = _q(conn, "SELECT DISTINCT country FROM customers ORDER BY country")
    sup_countries = _q(conn, "SELECT DISTINCT country FROM suppliers ORDER BY country")
    suppliers = _q(conn, "SELECT name FROM suppliers ORDER BY supplier_id")
    products = _q(conn, "SELECT name FROM products ORDER BY product_id")
    customers = _q(
        conn,
        "SELECT first_name, last_name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders) ORDER BY customer_id",
    )
    sales = _q(conn, "SELECT first_name, last_name FROM employees WHERE department = 'Sales' ORDER BY employee_id")
    depts = _q(conn, "SELECT DISTINCT department FROM employees ORDER BY department")
    titles = _q(conn, "SELECT DISTINCT title FROM employees ORDER BY title")
    order_ids = _q(conn, "SELECT order_id FROM orders WHERE order_id % 23 = 0 ORDER BY order_id")
    return {
        "none": [{}],
        "category": [{"category": c} for c in cats],
        "city": [{"city": c} for c in cities],
        "country": [{"country": c} for c in countries],
        "supplier_country": [{"country": c} for c in sup_countries],
        "supplier": [{"supplier": s} for s in suppliers],
        "product": [{"product": p} for p in products[::2]],
        "customer": [{"first": f, "last": la} for f, la in customers[::4]],
        "sales_rep": [{"first": f, "last": la} for f, la in sales],
        "department": [{"department": d} for d in depts],
        "title": [{"title": t} for t in titles],
        "segment": [{"segment": s} for s in _SEGMENTS],
        "status": [{"status": s} for s in _STATUSES],
        "year": [{"year": y} for y in (2021, 2022, 2023, 2024)],
        "hire_year": [{"year": y} for y in range(2013, 2024)],
        "price": [{"price": p} for p in (5, 10, 15, 20, 30, 50, 75, 100, 150, 200)],
        "stock": [{"n": n} for n in (10, 20, 25, 40, 50, 75, 100)],
        "topk": [{"k": k} for k in (2, 3, 4, 5, 6, 8, 10)],
        "count_threshold": [{"n": n} for n in (3, 5, 8, 10, 15)],
        "order": [{"order_id": o} for o in order_ids],
        "salary": [{"salary": s} for s in (40000, 45000, 50000, 55000, 60000, 65000, 70000, 80000, 90000)],
        "category_price": [{"category": c, "price": p} for c in cats for p in (5, 20, 50) if p < _CATEGORY_PRICE[c][1]],
        "city_segment": [{"city": c, "segment": s} for c in cities[::2] for s in _SEGMENTS],
        "category_topk": [{"category": c, "k": k} for c in cats for k in (2, 3, 4)],
        "group_by": [
            {"col": "country", "what": "country"},
            {"col": "city", "what": "city"},
            {"col": "segment", "what": "segment"},
        ],
        "category_supplier": [{"category": c, "supplier": s} for c, s in zip(cats, suppliers, strict=False)],
        "signup_year": [{"year": y} for y in range(2019, 2025)],
        "customer_status": [
            {"first": f, "last": la, "status": st} for f, la in customers[1::9] for st in ("delivered", "shipped")
        ],
        "managed": [
            {"first": f, "last": la}
            for f, la in _q(
                conn, "SELECT first_name, last_name FROM employees WHERE manager_id IS NOT NULL ORDER BY employee_id"
            )
        ],
        "supplier_threshold": [{"n": n} for n in (3, 4, 5, 6, 7, 8)],
        "city_status": [{"city": c, "status": "cancelled"} for c in cities],
    }


T = Template
TEMPLATES: tuple[Template, ...] = (
    # --- selection and filters (easy)
    T(
        "customers_in_city",
        "easy",
        (
            "List the first and last names of customers who live in {city}.",
            "Which customers are based in {city}? Give their first and last names.",
            "Show the first name and last name of every customer from {city}.",
        ),
        "SELECT first_name, last_name FROM customers WHERE city = '{city}'",
        "city",
    ),
    T(
        "count_customers_country",
        "easy",
        (
            "How many customers are from {country}?",
            "Count the customers located in {country}.",
            "What is the number of customers in {country}?",
        ),
        "SELECT COUNT(*) FROM customers WHERE country = '{country}'",
        "country",
    ),
    T(
        "emails_segment",
        "easy",
        (
            "What are the emails of customers in the {segment} segment?",
            "List the email addresses of {segment} customers.",
        ),
        "SELECT email FROM customers WHERE segment = '{segment}'",
        "segment",
    ),
    T(
        "products_over_price",
        "easy",
        (
            "Which products cost more than {price} dollars? List their names.",
            "Give the names of products with a unit price above {price}.",
            "Show the names of all products priced over {price}.",
        ),
        "SELECT name FROM products WHERE unit_price > {price}",
        "price",
    ),
    T(
        "low_stock",
        "easy",
        (
            "Which products have fewer than {n} units in stock? Show name and stock.",
            "List the name and stock of products whose stock is below {n}.",
        ),
        "SELECT name, stock FROM products WHERE stock < {n}",
        "stock",
    ),
    T(
        "count_orders_status",
        "easy",
        (
            "How many orders have the status '{status}'?",
            "Count the orders whose status is {status}.",
            "What is the number of {status} orders?",
        ),
        "SELECT COUNT(*) FROM orders WHERE status = '{status}'",
        "status",
    ),
    T(
        "orders_in_year",
        "easy",
        (
            "How many orders were placed in {year}?",
            "Count the orders made during {year}.",
            "What is the total number of orders from the year {year}?",
        ),
        "SELECT COUNT(*) FROM orders WHERE strftime('%Y', order_date) = '{year}'",
        "year",
    ),
    T(
        "price_of_product",
        "easy",
        (
            "What is the unit price of {product}?",
            "How much does {product} cost?",
            "Find the price of the product named {product}.",
        ),
        "SELECT unit_price FROM products WHERE name = '{product}'",
        "product",
    ),
    T(
        "suppliers_country",
        "easy",
        ("Which suppliers are located in {country}?", "List the names of suppliers from {country}."),
        "SELECT name FROM suppliers WHERE country = '{country}'",
        "supplier_country",
    ),
    T(
        "employees_title",
        "easy",
        (
            "List the first and last names of employees whose title is {title}.",
            "Who works as a {title}? Give first and last names.",
        ),
        "SELECT first_name, last_name FROM employees WHERE title = '{title}'",
        "title",
    ),
    T(
        "hired_after",
        "easy",
        (
            "Which employees were hired after {year}? Show their first and last names.",
            "List the names of employees hired later than the end of {year}.",
        ),
        "SELECT first_name, last_name FROM employees WHERE hire_date > '{year}-12-31'",
        "hire_year",
    ),
    T(
        "max_salary_dept",
        "easy",
        (
            "What is the highest salary in the {department} department?",
            "Find the maximum salary among employees in {department}.",
        ),
        "SELECT MAX(salary) FROM employees WHERE department = '{department}'",
        "department",
    ),
    T(
        "salary_above",
        "easy",
        ("How many employees earn more than {salary}?", "Count the employees with a salary above {salary}."),
        "SELECT COUNT(*) FROM employees WHERE salary > {salary}",
        "salary",
    ),
    T(
        "city_segment",
        "easy",
        (
            "How many {segment} customers live in {city}?",
            "Count the customers in {city} that belong to the {segment} segment.",
        ),
        "SELECT COUNT(*) FROM customers WHERE city = '{city}' AND segment = '{segment}'",
        "city_segment",
        allow_empty=True,
    ),
    T(
        "signups_in_year",
        "easy",
        ("How many customers signed up in {year}?", "Count the customers whose signup date is in {year}."),
        "SELECT COUNT(*) FROM customers WHERE strftime('%Y', signup_date) = '{year}'",
        "signup_year",
    ),
    T(
        "employees_in_dept",
        "easy",
        (
            "List the first and last names of employees in the {department} department.",
            "Who works in {department}? Give first and last names.",
        ),
        "SELECT first_name, last_name FROM employees WHERE department = '{department}'",
        "department",
    ),
    # --- joins (medium)
    T(
        "products_in_category",
        "medium",
        (
            "List the names of products in the {category} category.",
            "Which products belong to the category {category}?",
            "Show all product names in {category}.",
        ),
        "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}'",
        "category",
    ),
    T(
        "products_of_supplier",
        "medium",
        ("Which products are supplied by {supplier}?", "List the names of products from the supplier {supplier}."),
        "SELECT T1.name FROM products AS T1 JOIN suppliers AS T2 ON T1.supplier_id = T2.supplier_id WHERE T2.name = '{supplier}'",
        "supplier",
    ),
    T(
        "category_of_product",
        "medium",
        ("Which category does {product} belong to?", "What is the category name of the product {product}?"),
        "SELECT T2.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T1.name = '{product}'",
        "product",
    ),
    T(
        "email_of_order",
        "medium",
        (
            "What is the email of the customer who placed order {order_id}?",
            "Find the email address of the customer behind order number {order_id}.",
        ),
        "SELECT T2.email FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id WHERE T1.order_id = {order_id}",
        "order",
    ),
    T(
        "products_in_order",
        "medium",
        (
            "Which products were bought in order {order_id}?",
            "List the product names included in order number {order_id}.",
        ),
        "SELECT T2.name FROM order_items AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id WHERE T1.order_id = {order_id}",
        "order",
    ),
    T(
        "orders_of_customer",
        "medium",
        ("How many orders has {first} {last} placed?", "Count the orders made by the customer {first} {last}."),
        "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id WHERE T2.first_name = '{first}' AND T2.last_name = '{last}'",
        "customer",
    ),
    T(
        "orders_by_rep",
        "medium",
        ("How many orders did the employee {first} {last} handle?", "Count the orders handled by {first} {last}."),
        "SELECT COUNT(*) FROM orders AS T1 JOIN employees AS T2 ON T1.employee_id = T2.employee_id WHERE T2.first_name = '{first}' AND T2.last_name = '{last}'",
        "sales_rep",
    ),
    T(
        "avg_price_category",
        "medium",
        (
            "What is the average unit price of products in the {category} category?",
            "Find the average price of {category} products.",
        ),
        "SELECT AVG(T1.unit_price) FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}'",
        "category",
    ),
    T(
        "total_stock_supplier",
        "medium",
        (
            "What is the total stock of products supplied by {supplier}?",
            "Sum the stock of all products from {supplier}.",
        ),
        "SELECT SUM(T1.stock) FROM products AS T1 JOIN suppliers AS T2 ON T1.supplier_id = T2.supplier_id WHERE T2.name = '{supplier}'",
        "supplier",
    ),
    T(
        "qty_sold_product",
        "medium",
        ("How many units of {product} have been sold in total?", "What is the total quantity ordered of {product}?"),
        "SELECT SUM(T1.quantity) FROM order_items AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id WHERE T2.name = '{product}'",
        "product",
    ),
    T(
        "cheap_in_category",
        "medium",
        (
            "Which products in the {category} category cost less than {price}?",
            "List {category} products with a unit price below {price}.",
        ),
        "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}' AND T1.unit_price < {price}",
        "category_price",
        allow_empty=True,
    ),
    T(
        "order_value",
        "medium",
        (
            "What is the total value of order {order_id} (quantity times unit price)?",
            "Compute the sum of quantity times unit price over the items of order {order_id}.",
        ),
        "SELECT SUM(quantity * unit_price) FROM order_items WHERE order_id = {order_id}",
        "order",
    ),
    T(
        "customer_status_orders",
        "medium",
        (
            "How many {status} orders does {first} {last} have?",
            "Count the orders of {first} {last} with status {status}.",
        ),
        "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id WHERE T2.first_name = '{first}' AND T2.last_name = '{last}' AND T1.status = '{status}'",
        "customer_status",
        allow_empty=True,
    ),
    T(
        "manager_of",
        "hard",
        (
            "Who is the manager of {first} {last}? Give the first and last name.",
            "Name the manager that {first} {last} reports to.",
        ),
        "SELECT T2.first_name, T2.last_name FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = T2.employee_id WHERE T1.first_name = '{first}' AND T1.last_name = '{last}'",
        "managed",
    ),
    T(
        "customer_spend",
        "hard",
        (
            "How much money has {first} {last} spent in total (quantity times unit price)?",
            "What is the total amount spent by the customer {first} {last}, summing quantity times unit price?",
        ),
        "SELECT SUM(T3.quantity * T3.unit_price) FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = T2.customer_id JOIN order_items AS T3 ON T2.order_id = T3.order_id WHERE T1.first_name = '{first}' AND T1.last_name = '{last}'",
        "customer",
    ),
    T(
        "suppliers_many_products",
        "hard",
        ("Which suppliers provide more than {n} products?", "List the names of suppliers with over {n} products."),
        "SELECT T2.name FROM products AS T1 JOIN suppliers AS T2 ON T1.supplier_id = T2.supplier_id GROUP BY T2.name HAVING COUNT(*) > {n}",
        "supplier_threshold",
        allow_empty=True,
    ),
    # --- group by (medium)
    T(
        "count_per_group",
        "medium",
        (
            "How many customers are there in each {what}?",
            "For each {what}, count the customers.",
            "Show the number of customers per {what}.",
        ),
        "SELECT {col}, COUNT(*) FROM customers GROUP BY {col}",
        "group_by",
    ),
    T(
        "orders_per_status",
        "medium",
        (
            "How many orders are there for each status?",
            "Count the orders grouped by status.",
            "Show each order status with its number of orders.",
        ),
        "SELECT status, COUNT(*) FROM orders GROUP BY status",
        "none",
    ),
    T(
        "avg_salary_dept",
        "medium",
        (
            "What is the average salary in each department?",
            "For every department, show the average employee salary.",
            "List departments with their mean salary.",
        ),
        "SELECT department, AVG(salary) FROM employees GROUP BY department",
        "none",
    ),
    T(
        "products_per_category",
        "medium",
        (
            "How many products does each category have? Show the category name and the count.",
            "For each category name, count its products.",
            "List every category with its number of products.",
        ),
        "SELECT T2.name, COUNT(*) FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id GROUP BY T2.name",
        "none",
    ),
    # --- order by / limit (medium)
    T(
        "top_expensive",
        "medium",
        (
            "What are the {k} most expensive products? Show name and price.",
            "List the names and prices of the top {k} products by unit price.",
        ),
        "SELECT name, unit_price FROM products ORDER BY unit_price DESC LIMIT {k}",
        "topk",
    ),
    T(
        "top_stock",
        "medium",
        ("Which {k} products have the largest stock?", "Name the {k} products with the most units in stock."),
        "SELECT name FROM products ORDER BY stock DESC LIMIT {k}",
        "topk",
    ),
    T(
        "newest_customers",
        "medium",
        (
            "Who are the {k} customers who signed up most recently? Give first and last names.",
            "List the first and last names of the {k} newest customers by signup date.",
        ),
        "SELECT first_name, last_name FROM customers ORDER BY signup_date DESC LIMIT {k}",
        "topk",
    ),
    T(
        "cheapest_in_category",
        "hard",
        (
            "What are the {k} cheapest products in the {category} category?",
            "List the {k} lowest priced {category} products.",
        ),
        "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}' ORDER BY T1.unit_price ASC LIMIT {k}",
        "category_topk",
    ),
    T(
        "latest_hire",
        "medium",
        (
            "Who was the most recently hired employee in {department}?",
            "Which {department} employee has the latest hire date? Give first and last name.",
        ),
        "SELECT first_name, last_name FROM employees WHERE department = '{department}' ORDER BY hire_date DESC LIMIT 1",
        "department",
    ),
    # --- group by + having / order (hard)
    T(
        "countries_many_customers",
        "hard",
        ("Which countries have more than {n} customers?", "List the countries with over {n} customers."),
        "SELECT country FROM customers GROUP BY country HAVING COUNT(*) > {n}",
        "count_threshold",
        allow_empty=True,
    ),
    T(
        "categories_avg_price",
        "hard",
        (
            "Which categories have an average product price above {price}?",
            "List the category names whose products cost more than {price} on average.",
        ),
        "SELECT T2.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id GROUP BY T2.name HAVING AVG(T1.unit_price) > {price}",
        "price",
        allow_empty=True,
    ),
    T(
        "customers_many_orders",
        "hard",
        (
            "Which customers placed more than {n} orders? Give first and last names.",
            "List the first and last names of customers with over {n} orders.",
        ),
        "SELECT T2.first_name, T2.last_name FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id GROUP BY T1.customer_id HAVING COUNT(*) > {n}",
        "count_threshold",
        allow_empty=True,
    ),
    T(
        "top_customer",
        "hard",
        (
            "Which customer placed the most orders? Give the first and last name.",
            "Who is the customer with the largest number of orders?",
        ),
        "SELECT T2.first_name, T2.last_name FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id GROUP BY T1.customer_id ORDER BY COUNT(*) DESC LIMIT 1",
        "none",
    ),
    T(
        "best_seller",
        "hard",
        ("What is the best-selling product by total quantity?", "Which product has sold the most units?"),
        "SELECT T2.name FROM order_items AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id GROUP BY T1.product_id ORDER BY SUM(T1.quantity) DESC LIMIT 1",
        "none",
    ),
    T(
        "busiest_city",
        "hard",
        ("Which city has the most customers?", "Name the city where the largest number of customers live."),
        "SELECT city FROM customers GROUP BY city ORDER BY COUNT(*) DESC LIMIT 1",
        "none",
    ),
    # --- nested (hard / extra)
    T(
        "above_avg_price",
        "hard",
        (
            "Which products cost more than the average product price?",
            "List products whose unit price is above the average unit price of all products.",
        ),
        "SELECT name FROM products WHERE unit_price > (SELECT AVG(unit_price) FROM products)",
        "none",
    ),
    T(
        "never_ordered_customers",
        "extra",
        (
            "Which customers from {country} have never placed an order?",
            "List the first and last names of {country} customers without any orders.",
        ),
        "SELECT first_name, last_name FROM customers WHERE country = '{country}' AND customer_id NOT IN (SELECT customer_id FROM orders)",
        "country",
        allow_empty=True,
    ),
    T(
        "never_sold_products",
        "extra",
        (
            "Which products in the {category} category have never been ordered?",
            "List {category} products that appear in no order.",
        ),
        "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}' AND T1.product_id NOT IN (SELECT product_id FROM order_items)",
        "category",
        allow_empty=True,
    ),
    T(
        "above_dept_avg",
        "extra",
        (
            "Which employees in {department} earn more than the average salary of all employees?",
            "List the {department} employees whose salary is above the company-wide average salary.",
        ),
        "SELECT first_name, last_name FROM employees WHERE department = '{department}' AND salary > (SELECT AVG(salary) FROM employees)",
        "department",
        allow_empty=True,
    ),
    T(
        "priciest_in_category",
        "extra",
        (
            "What is the most expensive product in the {category} category?",
            "Name the {category} product with the highest unit price.",
        ),
        "SELECT name FROM products WHERE unit_price = (SELECT MAX(T1.unit_price) FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}')",
        "category",
    ),
    # --- set operations (extra)
    T(
        "countries_both",
        "extra",
        (
            "Which countries have both customers and suppliers?",
            "List the countries where there are customers as well as suppliers.",
        ),
        "SELECT country FROM customers INTERSECT SELECT country FROM suppliers",
        "none",
    ),
    T(
        "countries_customers_only",
        "extra",
        (
            "Which countries have customers but no suppliers?",
            "List countries with customers where no supplier is located.",
        ),
        "SELECT country FROM customers EXCEPT SELECT country FROM suppliers",
        "none",
        allow_empty=True,
    ),
    T(
        "category_or_supplier",
        "extra",
        (
            "List the names of products that are in the {category} category or supplied by {supplier}.",
            "Which products either belong to {category} or come from {supplier}?",
        ),
        "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE T2.name = '{category}' UNION SELECT T1.name FROM products AS T1 JOIN suppliers AS T2 ON T1.supplier_id = T2.supplier_id WHERE T2.name = '{supplier}'",
        "category_supplier",
    ),
    T(
        "city_without_cancelled",
        "extra",
        (
            "Which customers in {city} have never had a {status} order?",
            "List the first and last names of customers from {city} with no {status} orders.",
        ),
        "SELECT first_name, last_name FROM customers WHERE city = '{city}' EXCEPT SELECT T2.first_name, T2.last_name FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id WHERE T1.status = '{status}'",
        "city_status",
        allow_empty=True,
    ),
)


def _sql_str(v: Any) -> Any:
    return v.replace("'", "''") if isinstance(v, str) else v


def generate_examples(
    db_path: str | Path, seed: int = 0, test_fraction: float = 0.2, max_per_template: int = 16
) -> tuple[list[Example], list[Example]]:
    """Fill every template, verify each SQL by execution, dedupe, split per template."""
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    sources = _param_sources(conn)
    rng = random.Random(seed + 1)
    seen: set[str] = set()
    train: list[Example] = []
    test: list[Example] = []
    for tpl in TEMPLATES:
        params = sources[tpl.params]
        instances: list[tuple[str, str]] = []
        rounds = len(tpl.phrasings) if tpl.params == "none" else 1
        for r in range(rounds):
            for i, p in enumerate(params):
                phr = tpl.phrasings[(i + r) % len(tpl.phrasings)]
                question = phr.format(**p)
                sql = tpl.sql.format(**{k: _sql_str(v) for k, v in p.items()})
                if question in seen:
                    continue
                rows = conn.execute(sql).fetchall()  # raises on a broken template: a bug, not data
                if not rows and not tpl.allow_empty:
                    continue
                seen.add(question)
                instances.append((question, sql))
        rng.shuffle(instances)
        instances = instances[:max_per_template]
        n_test = max(1, round(len(instances) * test_fraction)) if len(instances) >= 3 else 0
        for j, (question, sql) in enumerate(instances):
            ex = Example(
                id="",
                db_id=DB_NAME,
                db_path=str(Path(db_path).resolve()),
                question=question,
                evidence="",
                sql=sql,
                difficulty=tpl.difficulty,
                source="demo",
            )
            (test if j < n_test else train).append(ex)
    conn.close()
    train = [Example(**{**e.to_dict(), "id": f"demo-train-{i}"}) for i, e in enumerate(train)]
    test = [Example(**{**e.to_dict(), "id": f"demo-test-{i}"}) for i, e in enumerate(test)]
    return train, test


def _card(out_dir: Path, reports: dict[str, dict[str, Any]], schema_style: str, db_path: Path) -> str:
    train = read_jsonl(out_dir / "train.jsonl")
    test = read_jsonl(out_dir / "test.jsonl")
    feats: Counter[str] = Counter()
    for r in train + test:
        feats.update(sql_features(r["sql"]))
    diff = {s: Counter(r["difficulty"] for r in recs) for s, recs in (("train", train), ("test", test))}
    schema_text = prompts.render_schema(introspect(db_path, db_id=DB_NAME), schema_style)
    lines = [
        "# sqltune demo dataset: the `shop` database",
        "",
        f"{len(train) + len(test)} verified question/SQL pairs over `{db_path.name}` "
        f"({len(TEMPLATES)} templates, several phrasings each): **{len(train)} train**, **{len(test)} test**; "
        "no test question appears verbatim in train.",
        "",
        "| split | easy | medium | hard | extra | total |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in ("train", "test"):
        d = diff[s]
        lines.append(f"| {s} | {d['easy']} | {d['medium']} | {d['hard']} | {d['extra']} | {sum(d.values())} |")
    lines += ["", "SQL features (examples using each): " + ", ".join(f"{k} {v}" for k, v in sorted(feats.items())), ""]
    for s, rep in reports.items():
        t = rep.get("prompt_tokens")
        tok = (
            f"; prompt tokens ({rep.get('tokenizer')}): median {t['median']}, p90 {t['p90']}, max {t['max']}"
            if t
            else ""
        )
        lines.append(f"- `{s}.jsonl`: {rep['written']} records, skipped {sum(rep['skipped'].values())}{tok}")
    lines += ["", f"Schema (`{schema_style}` style):", "", "```", schema_text, "```", "", "Examples:", ""]
    for r in test[:3]:
        lines += [f"- Q: {r['question']}", f"  SQL: `{r['sql']}`"]
    return "\n".join(lines) + "\n"


def build_demo(
    out_dir: str | Path, schema: str = "compact", fmt: str = "chat", seed: int = 0, tokenizer: str | None = None
) -> dict[str, Any]:
    """Create ``out_dir/shop.sqlite``, ``train.jsonl``, ``test.jsonl`` (+ reports) and ``card.md``."""
    out_dir = Path(out_dir)
    db_path = create_database(out_dir / f"{DB_NAME}.sqlite", seed=seed)
    train, test = generate_examples(db_path, seed=seed)
    reports = {}
    counter = None
    if tokenizer:
        from sqltune.data.build import TokenCounter
        from sqltune.models import load_tokenizer

        counter = TokenCounter(load_tokenizer(tokenizer), tokenizer)
    for split, exs in (("train", train), ("test", test)):
        cfg = BuildConfig(
            benchmark="pairs",
            data_dir=str(out_dir),
            split=split,
            out=str(out_dir / f"{split}.jsonl"),
            format=fmt,
            schema=schema,
            tokenizer=tokenizer,
            seed=seed,
        )
        reports[split] = build(cfg, examples=exs, counter=counter)
    card = _card(out_dir, reports, schema, db_path)
    (out_dir / "card.md").write_text(card)
    result = {
        "database": str(db_path),
        "train": str(out_dir / "train.jsonl"),
        "test": str(out_dir / "test.jsonl"),
        "n_train": reports["train"]["written"],
        "n_test": reports["test"]["written"],
        "reports": {s: str(report_path(out_dir / f"{s}.jsonl")) for s in reports},
        "card": str(out_dir / "card.md"),
    }
    write_json(out_dir / "demo.json", result)
    return result
