"""Create (and drop) the read-only role that model-written SQL runs as, with an administrator's URL.

The SQL is the one the executors' refusal messages print (:data:`sqltune.db.postgres.READ_ONLY_ROLE_SQL`,
:data:`sqltune.db.mysql.READ_ONLY_ACCOUNT_SQL`); ``sqltune db reader`` runs it for you. Passwordless
roles suit local trust authentication; elsewhere set the password yourself (``ALTER ROLE … PASSWORD``).
"""

from __future__ import annotations

from sqltune.db.target import resolve
from sqltune.errors import ExecutionError


def create_reader(admin_url: str, role: str = "sqltune_reader", write: bool = False) -> str:
    """Create ``role`` with SELECT on every table of ``admin_url``'s database; return the URL to connect as it.

    ``write``: also grant INSERT, UPDATE, DELETE and CREATE (a write-capable role, for testing that the
    executors' own read-only layer holds under ``--allow-privileged-role``)."""
    import sqlalchemy as sa

    t = resolve(admin_url)
    if t.engine not in ("postgresql", "mysql"):
        raise ExecutionError(f"{admin_url}: roles exist on postgresql:// and mysql:// databases only")
    engine = t.sqlalchemy_engine(isolation_level="AUTOCOMMIT")
    db = t.database
    with engine.connect() as c:
        if t.engine == "postgresql":
            q = '"' + role.replace('"', '""') + '"'
            d = '"' + db.replace('"', '""') + '"'
            if not c.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                c.execute(sa.text(f"CREATE ROLE {q} LOGIN"))
            c.execute(sa.text(f"GRANT CONNECT ON DATABASE {d} TO {q}"))
            c.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {q}"))
            c.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {q}"))
            if write:
                c.execute(sa.text(f"GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {q}"))
                c.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {q}"))
            else:
                c.execute(sa.text(f"ALTER ROLE {q} SET default_transaction_read_only = on"))
        else:
            acct = f"'{role}'@'%'"
            c.execute(sa.text(f"CREATE USER IF NOT EXISTS {acct}"))
            privs = "SELECT, SHOW VIEW" + (", INSERT, UPDATE, DELETE, CREATE, DROP" if write else "")
            c.execute(sa.text(f"GRANT {privs} ON `{db}`.* TO {acct}"))
    engine.dispose()
    port = f":{t.port}" if t.port else ""
    scheme = "postgresql" if t.engine == "postgresql" else "mysql"
    return f"{scheme}://{role}@{t.host}{port}/{db}"


def drop_reader(admin_url: str, role: str = "sqltune_reader") -> None:
    """Drop ``role`` and what it was granted on ``admin_url``'s database."""
    import sqlalchemy as sa

    t = resolve(admin_url)
    engine = t.sqlalchemy_engine(isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        if t.engine == "postgresql":
            q = '"' + role.replace('"', '""') + '"'
            if c.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                c.execute(sa.text(f"DROP OWNED BY {q}"))
                c.execute(sa.text(f"DROP ROLE {q}"))
        else:
            c.execute(sa.text(f"DROP USER IF EXISTS '{role}'@'%'"))
    engine.dispose()
