"""No SQL in `ballast/` is built by interpolating data: every f-string (or `.format` / `%`) that
holds SQL may only splice identifiers from the data contract or column lists written in code.

The allow-list names each interpolated expression per file, with where its value comes from; a
new interpolation fails this test until someone has checked it and added it here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ballast"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|ATTACH|PRAGMA)\b|\bFROM\s|\bWHERE\s")

ALLOWED: dict[str, set[str]] = {
    # table names raw_<extract> / stg_<extract> and their typed columns, from ballast.models.contract
    "io/warehouse.py": {
        "extract.name",
        "raw_cols",
        "stg_cols",
        "_typed_columns(spec)",
        "extract",
        # insert_frame: `table` is a literal at every call site, `cols` the frame's
        # column names quoted (frames are built in code with contract columns)
        "table",
        "cols",
    },
    "io/staging.py": {"extract", "spec.name", "keys", "cols"},
    "io/ingest.py": {"extract.name", "columns", "select", "extra_sql"},  # _quote()d header names
    "io/plans.py": {"', '.join(('o.' + c for c in OUTBOX_COLUMNS))"},  # a tuple constant
    # `_KNOWN` is a SQL fragment constant (with `?` placeholders); `extract` is checked against
    # EXTRACTS (KeyError otherwise) before it names stg_<extract>; `cols` are its contract columns
    "io/cycle_inputs.py": {"_KNOWN", "extract", "cols"},
    # a SQL fragment constant; column lists built from the tuple constants RATIO_COLUMNS / SCORE_COLUMNS
    "io/forecast_store.py": {"_KNOWN_AT", "_RATIO_DDL", "ratio_col", "_CHOICE_COLUMNS"},
    "io/rollout.py": {"', '.join(FORECAST_COLUMNS)"},  # a tuple constant
}


def _sql_templates(tree: ast.AST):
    """(line, interpolated expressions) for each f-string / .format / % template that looks like SQL."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if SQL.search(text):
                yield node.lineno, [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and SQL.search(node.func.value.value)
        ) or (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
            and SQL.search(node.left.value)
        ):
            yield node.lineno, ["<.format/% formatting>"]


def test_sql_templates_only_splice_allow_listed_identifiers():
    found: list[str] = []
    scanned = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        scanned += 1
        for line, exprs in _sql_templates(ast.parse(path.read_text(), filename=str(path))):
            for expr in exprs:
                if expr not in ALLOWED.get(rel, set()):
                    found.append(f"ballast/{rel}:{line}: SQL interpolates `{expr}`")
    assert scanned > 50
    assert found == [], "use `?` parameters (or allow-list a contract identifier with a reason):\n" + "\n".join(found)


def test_the_checker_catches_interpolated_data():
    hostile = (
        'con.execute(f"SELECT * FROM plans WHERE plan_id = \'{plan_id}\'")\nq = "DELETE FROM x WHERE a = %s" % a\n'
    )
    assert sorted(_sql_templates(ast.parse(hostile))) == [(1, ["plan_id"]), (2, ["<.format/% formatting>"])]
