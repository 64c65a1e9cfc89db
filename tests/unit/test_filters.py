"""Content filters (pipeline/endpoints/filters.py): the compiled filter against a reference
evaluator of the same expression tree, on random filters and random bodies (hypothesis), and
the errors that point at the offending part."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.endpoints.filters import (
    MAX_LENGTH,
    MAX_NODES,
    FilterError,
    check_filter,
    compile_filter,
)

BODY = {
    "id": "evt_1",
    "type": "payment.completed",
    "account_id": "acct_1",
    "created_at": "2026-12-02T07:00:00.000Z",
    "data": {
        "restaurant_id": "r_2",
        "amount": 6000,
        "currency": "EUR",
        "items": [{"sku": "PIZZA", "qty": 2}],
        "tip": None,
        "paid": True,
    },
}


@pytest.mark.parametrize(
    ("source", "matches"),
    [
        ('data.restaurant_id in ["r_1", "r_2"]', True),
        ('data.restaurant_id in ["r_1", "r_3"]', False),
        ('type == "payment.completed" and data.amount > 5000', True),
        ("data.amount > 6000", False),
        ("data.amount >= 6000", True),
        ("data.amount == 6000.0", True),  # JSON numbers
        ("data.paid == true", True),
        ("data.paid == 1", False),  # true is not 1
        ("data.tip == null", True),
        ("data.missing == null", True),  # what is not there is null
        ('data.missing != "x"', True),
        ("data.missing > 0", False),  # nothing to compare: false, never an error
        ("data.currency > 5", False),  # a string is not ordered against a number
        ('created_at >= "2026-12-01T00:00:00Z"', True),  # ISO times compare as strings
        ('data.items[0].sku == "PIZZA"', True),
        ('data.items[1].sku == "PIZZA"', False),
        ("$.data.items[0].qty < 3", True),
        ('not (data.currency == "EUR")', False),
        ('not data.currency == "USD" and data.amount > 1', True),  # not binds tightest
        ('data.amount < 1 or data.amount > 5000 and data.currency == "EUR"', True),  # and first
        ('(data.amount < 1 or data.amount > 5000) and data.currency == "USD"', False),
        ("data.restaurant_id in []", False),
    ],
)
def test_examples(source: str, matches: bool) -> None:
    assert compile_filter(source)(BODY) is matches


@pytest.mark.parametrize(
    ("source", "column", "expected"),
    [
        ("data.amount >", 14, "expected a value"),
        ("data.amount = 5", 13, "unexpected character '='"),
        ("data.amount > 5 and", 20, "expected a path"),
        ('data.x in "a"', 11, "expected a list"),
        ("(data.a == 1", 13, "expected ')'"),
        ("data.a > true", 10, "> compares with a number or a string, not true"),
        ("data..a == 1", 6, "expected a path"),
        ("data.a == 1 data.b == 2", 13, "expected 'and', 'or' or the end"),
        ("data.items[x] == 1", 12, "expected a list index"),
        ("data.a == 'single'", 11, "unexpected character"),
        ("import os", 8, "expected a comparison"),
    ],
)
def test_errors_name_the_column_and_mark_it(source: str, column: int, expected: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(source)
    message = str(caught.value)
    assert message.startswith(f"filter, column {column}: {expected}"), message
    assert message.endswith(source[: column - 1][-40:] + "\u00bb" + source[column - 1 :][:40])
    assert "\n" not in message


def test_cost_is_bounded() -> None:
    many = " or ".join(f"data.a == {n}" for n in range(MAX_NODES))
    with pytest.raises(FilterError, match="at most"):
        compile_filter(many)
    with pytest.raises(FilterError, match=f"at most {MAX_LENGTH} characters"):
        compile_filter("data.a == " + "1" * MAX_LENGTH)
    with pytest.raises(FilterError, match="at most 8 parts"):
        compile_filter("a.b.c.d.e.f.g.h.i == 1")
    with pytest.raises(FilterError, match="at most 100 values"):
        compile_filter("data.a in [" + ", ".join(["1"] * 101) + "]")


def test_check_filter_stores_the_stripped_text_and_empty_is_none() -> None:
    assert check_filter(None) is None
    assert check_filter("   ") is None
    assert check_filter('  type == "order.created" ') == 'type == "order.created"'
    with pytest.raises(FilterError):
        check_filter("type ==")


# Random filters against a reference evaluator ---------------------------------------------------

NAMES = ["a", "b", "data", "amount", "sku"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["a", "b", "r_1", 'qu"ote', "back\\slash", "\u00e9t\u00e9"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=4)
    ),
    max_leaves=12,
)
PATHS = st.lists(
    st.one_of(st.sampled_from(NAMES), st.integers(0, 2)), min_size=1, max_size=4
).filter(lambda p: isinstance(p[0], str))
ORDERED = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)

Node = tuple[Any, ...]


def comparisons() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.tuples(st.just("cmp"), PATHS, st.sampled_from(["==", "!="]), SCALARS),
        st.tuples(st.just("cmp"), PATHS, st.sampled_from(["<", "<=", ">", ">="]), ORDERED),
        st.tuples(st.just("in"), PATHS, st.lists(SCALARS, max_size=4)),
    )


FILTERS = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=8,
)
PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "in": 4}


def render_path(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def render(node: Node, parent: int = 0) -> str:
    kind = node[0]
    if kind == "cmp":
        text = f"{render_path(node[1])} {node[2]} {orjson.dumps(node[3]).decode()}"
    elif kind == "in":
        values = ", ".join(orjson.dumps(v).decode() for v in node[2])
        text = f"{render_path(node[1])} in [{values}]"
    elif kind == "not":
        text = "not " + render(node[1], PRECEDENCE["not"])
    else:
        own = PRECEDENCE[kind]
        text = f"{render(node[1], own)} {kind} {render(node[2], own + 1)}"
    return f"({text})" if PRECEDENCE[kind] < parent else text


def resolve(body: Any, path: list[Any]) -> Any:
    for part in path:
        if isinstance(part, int):
            body = body[part] if isinstance(body, list) and part < len(body) else None
        else:
            body = body.get(part) if isinstance(body, dict) else None
    return body


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def reference(node: Node, body: Any) -> bool:
    kind = node[0]
    if kind == "not":
        return not reference(node[1], body)
    if kind == "and":
        return reference(node[1], body) and reference(node[2], body)
    if kind == "or":
        return reference(node[1], body) or reference(node[2], body)
    found = resolve(body, node[1])
    if kind == "in":
        return any(equal(found, v) for v in node[2])
    op, value = node[2], node[3]
    if op == "==":
        return equal(found, value)
    if op == "!=":
        return not equal(found, value)
    number = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    if not (
        (number(found) and number(value)) or (isinstance(found, str) and isinstance(value, str))
    ):
        return False
    return {"<": found < value, "<=": found <= value, ">": found > value, ">=": found >= value}[op]


@settings(max_examples=400, deadline=None)
@given(FILTERS, JSON)
def test_random_filters_agree_with_the_reference(node: Node, body: Any) -> None:
    source = render(node)
    assert compile_filter(source)(body) is reference(node, body), source


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_compiles_or_gives_a_filter_error(source: str) -> None:
    try:
        predicate = compile_filter(source)
    except FilterError:
        return
    assert predicate(BODY) in (True, False)
