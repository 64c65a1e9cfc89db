"""Content filters: an endpoint receives only the events whose body matches its filter.

A small expression language over the webhook's JSON body (what the partner receives)::

    data.restaurant_id in ["r_1", "r_2"]
    type == "payment.completed" and data.amount > 5000
    not (data.status == "test") or data.items[0].sku == "PIZZA"

* **Paths** start at the body (``id``, ``type``, ``created_at``, ``account_id``, ``data``):
  names joined by ``.``, list items by ``[n]``; an optional leading ``$.``. A path that is not
  there is ``null``.
* **Values**: strings in double quotes (JSON escapes), numbers, ``true``, ``false``, ``null``,
  and lists of them in ``[...]`` (for ``in``).
* **Comparisons**: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` and ``in``. ``<`` and ``>``
  compare numbers with numbers and strings with strings (ISO times compare as times);
  anything else is false, never an error.
* **Logic**: ``not``, ``and``, ``or`` (in that precedence), and parentheses.

It is parsed once (:func:`compile_filter`) into a tree of closures: no ``eval``, no code from
the partner ever runs, and the cost is bounded by :data:`MAX_LENGTH`, :data:`MAX_NODES`,
:data:`MAX_DEPTH` and :data:`MAX_LIST`. A filter that does not parse is refused when the
endpoint is registered, with an error that names the column and marks it with ``»``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

MAX_LENGTH = 1000
"""Characters in a filter."""
MAX_NODES = 64
"""Comparisons and logical operators in a filter."""
MAX_DEPTH = 8
"""Parts of a path (``data.items[0].sku`` has four)."""
MAX_LIST = 100
"""Values in an ``in`` list."""

Predicate = Callable[[Any], bool]


class FilterError(ValueError):
    """A filter that does not parse: the message names the column and what was expected."""

    def __init__(self, source: str, column: int, expected: str) -> None:
        self.column = column
        before, after = source[max(0, column - 40) : column], source[column : column + 40]
        super().__init__(f"filter, column {column + 1}: {expected}: {before}»{after}")


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],.])
  | (?P<dollar>\$)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, number, op, punct, name, keyword, end
    text: str
    at: int


def _tokens(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:
            raise FilterError(source, at, f"unexpected character {source[at]!r}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        if kind != "space":
            tokens.append(_Token(kind, text, at))
        at = match.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


class _Parser:
    """Recursive descent: or → and → not → comparison → (path op value | (or))."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.i = 0
        self.nodes = 0

    def fail(self, expected: str, token: _Token | None = None) -> FilterError:
        token = token or self.tokens[self.i]
        found = "the end" if token.kind == "end" else repr(token.text)
        return FilterError(self.source, token.at, f"expected {expected}, found {found}")

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, text: str) -> bool:
        token = self.peek()
        if token.kind == kind and token.text == text:
            self.i += 1
            return True
        return False

    def count(self, token: _Token) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(
                self.source, token.at, f"at most {MAX_NODES} comparisons and operators"
            )

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise self.fail("a comparison such as data.amount > 100")
        predicate = self.or_()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return predicate

    def or_(self) -> Predicate:
        left = self.and_()
        while self.peek().kind == "keyword" and self.peek().text == "or":
            self.count(self.take())
            right = self.and_()
            left = (lambda a, b: lambda body: a(body) or b(body))(left, right)
        return left

    def and_(self) -> Predicate:
        left = self.not_()
        while self.peek().kind == "keyword" and self.peek().text == "and":
            self.count(self.take())
            right = self.not_()
            left = (lambda a, b: lambda body: a(body) and b(body))(left, right)
        return left

    def not_(self) -> Predicate:
        if self.peek().kind == "keyword" and self.peek().text == "not":
            self.count(self.take())
            inner = self.not_()
            return lambda body: not inner(body)
        return self.comparison()

    def comparison(self) -> Predicate:
        if self.accept("punct", "("):
            inner = self.or_()
            if not self.accept("punct", ")"):
                raise self.fail("')'")
            return inner
        path = self.path()
        op = self.peek()
        self.count(op)
        if op.kind == "keyword" and op.text == "in":
            self.take()
            return _in(path, self.list_())
        if op.kind != "op":
            raise self.fail("a comparison (==, !=, <, <=, >, >=, in) after the path")
        self.take()
        at = self.peek()
        value = self.value()
        if op.text in ("<", "<=", ">", ">=") and not _orderable(value):
            raise FilterError(
                self.source, at.at, f"{op.text} compares with a number or a string, not {at.text}"
            )
        return _compare(path, op.text, value)

    def path(self) -> tuple[str | int, ...]:
        token = self.peek()
        if token.kind == "dollar":
            self.take()
            if not self.accept("punct", "."):
                raise self.fail("'.' after '$'")
        parts: list[str | int] = []
        while True:
            name = self.take()
            if name.kind not in ("name", "keyword"):
                raise self.fail("a path such as data.restaurant_id", name)
            parts.append(name.text)
            while self.accept("punct", "["):
                index = self.take()
                if index.kind != "number" or not index.text.isdigit():
                    raise self.fail("a list index such as [0]", index)
                parts.append(int(index.text))
                if not self.accept("punct", "]"):
                    raise self.fail("']'")
            if len(parts) > MAX_DEPTH:
                raise FilterError(self.source, token.at, f"a path has at most {MAX_DEPTH} parts")
            if not self.accept("punct", "."):
                return tuple(parts)

    def value(self) -> Any:
        token = self.take()
        if token.kind in ("string", "number"):
            return orjson.loads(token.text)
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text]
        raise self.fail('a value: a "string", a number, true, false or null', token)

    def list_(self) -> tuple[Any, ...]:
        if not self.accept("punct", "["):
            raise self.fail('a list such as ["r_1", "r_2"] after \'in\'')
        values: list[Any] = []
        if self.accept("punct", "]"):
            return ()
        while True:
            values.append(self.value())
            if len(values) > MAX_LIST:
                raise self.fail(f"at most {MAX_LIST} values in a list")
            if self.accept("punct", "]"):
                return tuple(values)
            if not self.accept("punct", ","):
                raise self.fail("',' or ']'")


def _resolve(body: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(body, list) or part >= len(body):
                return None
        elif not isinstance(body, dict) or part not in body:
            return None
        body = body[part]
    return body


def _orderable(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0``, but ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _compare(path: tuple[str | int, ...], op: str, value: Any) -> Predicate:
    if op == "==":
        return lambda body: _same(_resolve(body, path), value)
    if op == "!=":
        return lambda body: not _same(_resolve(body, path), value)
    number = not isinstance(value, str)
    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]

    def ordered(body: Any) -> bool:
        found = _resolve(body, path)
        if number:
            ok = isinstance(found, int | float) and not isinstance(found, bool)
        else:
            ok = isinstance(found, str)
        return ok and compare(found, value)

    return ordered


def _in(path: tuple[str | int, ...], values: tuple[Any, ...]) -> Predicate:
    return lambda body: any(_same(_resolve(body, path), v) for v in values)


def check_filter(source: str | None) -> str | None:
    """The filter as stored (stripped; empty is none), or :class:`FilterError`."""
    if source is None or not source.strip():
        return None
    source = source.strip()
    compile_filter(source)
    return source


def compile_filter(source: str) -> Predicate:
    """A predicate over a webhook body (the parsed JSON); raises :class:`FilterError`."""
    if len(source) > MAX_LENGTH:
        raise FilterError(source, MAX_LENGTH, f"a filter holds at most {MAX_LENGTH} characters")
    return _Parser(source).parse()


@lru_cache(maxsize=10_000)
def compiled(source: str) -> Predicate:
    """:func:`compile_filter`, once per filter text (the fan-out calls it per event)."""
    return compile_filter(source)
