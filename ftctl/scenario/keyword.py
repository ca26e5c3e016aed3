"""pytest-like ``-k`` expressions: substrings combined with and / or / not and parentheses."""

from __future__ import annotations

import re

from ftctl.errors import UsageError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def _tokens(expr: str) -> list[str]:
    pos, out = 0, []
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:  # only trailing whitespace can end here
            break
        out.append(m.group(1))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent: or_expr := and_expr ('or' and_expr)*; and_expr := not_expr ('and' …)*."""

    def __init__(self, expr: str, name: str) -> None:
        self.expr, self.toks, self.i, self.name = expr, _tokens(expr), 0, name.lower()

    def fail(self, what: str) -> UsageError:
        return UsageError(f"-k {self.expr!r}: {what}")

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end of expression")
        self.i += 1
        return tok

    def parse(self) -> bool:
        if not self.toks:
            return True  # an empty expression selects everything, as in pytest
        value = self.or_expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return value

    def or_expr(self) -> bool:
        value = self.and_expr()
        while self.peek() == "or":
            self.take()
            rhs = self.and_expr()
            value = value or rhs
        return value

    def and_expr(self) -> bool:
        value = self.not_expr()
        while self.peek() == "and":
            self.take()
            rhs = self.not_expr()
            value = value and rhs
        return value

    def not_expr(self) -> bool:
        if self.peek() == "not":
            self.take()
            return not self.not_expr()
        return self.atom()

    def atom(self) -> bool:
        tok = self.take()
        if tok == "(":
            value = self.or_expr()
            if self.take() != ")":
                raise self.fail("expected ')'")
            return value
        if tok in (")", "and", "or"):
            raise self.fail(f"unexpected {tok!r}")
        return tok.lower() in self.name


def keyword_matches(expr: str, name: str) -> bool:
    """True when ``name`` matches ``expr`` (case-insensitive substrings, and/or/not, parentheses).

    Raises:
        UsageError: a malformed expression (exit 2).
    """
    return _Parser(expr, name).parse()
