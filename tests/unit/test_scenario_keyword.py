"""keyword_matches: pytest-like -k with substrings, and / or / not, parentheses."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.scenario import keyword_matches
from ftctl.scenario.keyword import marker_matches

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


TAGS = ("custom_build", "moe")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("moe", True),  # a tag, though not in the name
        ("custom_build and decode", True),
        ("not moe", False),
        ("test_fault_scenario[vllm-agg-tp-1-dp-2-decode_worker_pod]", True),  # upstream node id
        ("test_fault_scenario[vllm-agg-tp-1-dp-2-decode_worker]", False),  # ']' ends the name
        ("mo", False),  # tags match whole, names by substring
    ],
)
def test_keyword_also_matches_tags_and_the_upstream_node_id(expr, expected):
    assert keyword_matches(expr, NAME, TAGS) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [("moe", True), ("moe and not custom_build", False), ("vllm", False), ("MOE or x", True)],
)
def test_marker_expression_matches_tags_only(expr, expected):
    assert marker_matches(expr, TAGS) is expected


def test_malformed_marker_expression_names_the_m_option():
    with pytest.raises(UsageError, match="^-m 'moe and'"):
        marker_matches("moe and", TAGS)
