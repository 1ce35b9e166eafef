"""Spider's official eval_hardness (evaluation.py), restated to check sqltune's sqlglot version against it.

It runs on the parsed "sql" dicts that Spider ships in dev.json."""

WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")


def has_agg(unit):
    return unit[0] != 0


def count_agg(units):
    return len([u for u in units if has_agg(u)])


def get_nestedSQL(sql):
    nested = []
    for cu in sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]:
        if type(cu[3]) is dict:
            nested.append(cu[3])
        if type(cu[4]) is dict:
            nested.append(cu[4])
    for k in ("intersect", "except", "union"):
        if sql[k] is not None:
            nested.append(sql[k])
    return nested


def c1(sql):
    count = 0
    if len(sql["where"]) > 0:
        count += 1
    if len(sql["groupBy"]) > 0:
        count += 1
    if len(sql["orderBy"]) > 0:
        count += 1
    if sql["limit"] is not None:
        count += 1
    if len(sql["from"]["table_units"]) > 0:
        count += len(sql["from"]["table_units"]) - 1
    ao = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    count += len([t for t in ao if t == "or"])
    cus = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    count += len([cu for cu in cus if cu[1] == WHERE_OPS.index("like")])
    return count


def c2(sql):
    return len(get_nestedSQL(sql))


def others(sql):
    count = 0
    agg = count_agg(sql["select"][1]) + count_agg(sql["where"][::2]) + count_agg(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        agg += count_agg([u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]])
    agg += count_agg(sql["having"])
    if agg > 1:
        count += 1
    if len(sql["select"][1]) > 1:
        count += 1
    if len(sql["where"]) > 1:
        count += 1
    if len(sql["groupBy"]) > 1:
        count += 1
    return count


def eval_hardness(sql):
    a, b, o = c1(sql), c2(sql), others(sql)
    if a <= 1 and o == 0 and b == 0:
        return "easy"
    elif (o <= 2 and a <= 1 and b == 0) or (a <= 2 and o < 2 and b == 0):
        return "medium"
    elif (o > 2 and a <= 2 and b == 0) or (2 < a <= 3 and o <= 2 and b == 0) or (a <= 1 and o == 0 and b <= 1):
        return "hard"
    else:
        return "extra"
