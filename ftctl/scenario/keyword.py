"""pytest-like ``-k`` and ``-m`` expressions: terms combined with and / or / not and parentheses.

``-k``: a term matches a test when it is a substring of the test's name or of its upstream
pytest node id (``test_fault_scenario[<name>]``, as the upstream harness names its result
folders), or equals one of its tags. ``-m``: a term matches when it equals one of the tags, as
pytest markers do.
"""

from __future__ import annotations

import re

from ftctl.errors import UsageError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
MAX_NESTING = 100  # parentheses and "not" recurse: far above any real -k, far below the stack


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

    def __init__(
        self, expr: str, names: tuple[str, ...], tags: tuple[str, ...], option: str = "-k"
    ) -> None:
        self.expr, self.toks, self.i = expr, _tokens(expr), 0
        self.names = tuple(n.lower() for n in names)
        self.tags = {t.lower() for t in tags}
        self.depth, self.option = 0, option

    def fail(self, what: str) -> UsageError:
        shown = self.expr if len(self.expr) <= 80 else self.expr[:77] + "..."
        return UsageError(f"{self.option} {shown!r}: {what}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested deeper than {MAX_NESTING} levels")

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
        return self._chain("or", self.and_expr, lambda a, b: a or b)

    def and_expr(self) -> bool:
        return self._chain("and", self.not_expr, lambda a, b: a and b)

    def _chain(self, word: str, operand, combine) -> bool:
        """``operand (word operand)*``, folded left; every operand is parsed (no short cut)."""
        value = operand()
        while self.peek() == word:
            self.take()
            value = combine(value, operand())
        return value

    def not_expr(self) -> bool:
        if self.peek() == "not":
            self.take()
            self.enter()
            value = not self.not_expr()
            self.depth -= 1
            return value
        return self.atom()

    def atom(self) -> bool:
        tok = self.take()
        if tok == "(":
            self.enter()
            value = self.or_expr()
            if self.take() != ")":
                raise self.fail("expected ')'")
            self.depth -= 1
            return value
        if tok in (")", "and", "or"):
            raise self.fail(f"unexpected {tok!r}")
        term = tok.lower()
        return term in self.tags or any(term in name for name in self.names)


UPSTREAM_NODE = "test_fault_scenario[{}]"


def keyword_matches(expr: str, name: str, tags: tuple[str, ...] = ()) -> bool:
    """True when the test ``name`` (with ``tags``) matches the ``-k`` expression ``expr``:
    case-insensitive substrings of the name or its upstream node id, or tags; and/or/not.

    Raises:
        UsageError: a malformed expression (exit 2).
    """
    return _Parser(expr, (name, UPSTREAM_NODE.format(name)) if name else (), tags).parse()


def marker_matches(expr: str, tags: tuple[str, ...]) -> bool:
    """True when ``tags`` match the ``-m`` expression ``expr`` (tag names; and/or/not).

    Raises:
        UsageError: a malformed expression (exit 2).
    """
    return _Parser(expr, (), tags, option="-m").parse()


def names_term(expr: str, term: str) -> bool:
    """Does ``expr`` name ``term`` as one of its terms (case-insensitive)?"""
    return term.lower() in (tok.lower() for tok in _tokens(expr))
