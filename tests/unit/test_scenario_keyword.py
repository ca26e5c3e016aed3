"""keyword_matches: pytest-like -k with substrings, and / or / not, parentheses."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.scenario import keyword_matches

NAME = "vllm-agg-tp-1-dp-2-decode_worker_pod"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("decode", True),
        ("DECODE", True),
        ("sglang", False),
        ("vllm and pod", True),
        ("vllm and not pod", False),
        ("sglang or dp-2", True),
        ("not (sglang or trtllm)", True),
        ("(vllm or sglang) and (tp-1 and not disagg)", True),
        ("not not vllm", True),
        ("vllm and sglang or pod", True),  # and binds tighter than or
        ("vllm and (sglang or frontend)", False),
        ("", True),
    ],
)
def test_expression_selects_like_pytest(expr, expected):
    assert keyword_matches(expr, NAME) is expected


@pytest.mark.parametrize("expr", ["vllm and", "(vllm", "vllm)", "or vllm", "not", "a b"])
def test_malformed_expression_is_a_usage_error(expr):
    with pytest.raises(UsageError):
        keyword_matches(expr, NAME)
