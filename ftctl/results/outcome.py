"""The one rule that decides whether a request succeeded (DESIGN.md §5).

Success: HTTP 200 with a complete, non-empty completion and no error. Retried attempts are
attempts, not extra requests: a request succeeds if any attempt does. Every reader of legacy
JSONL — ``ftctl parse``, ``ftctl load`` and its ``--compare`` table — asks this module (the
fast path in ``results/fast.py`` applies the same rule to typed records, and is checked
against it by tests).
"""

from __future__ import annotations

from typing import Any


def _content_ok(result: Any) -> bool:
    """A complete, non-empty completion: a choice with text/content and a finish reason."""
    if not isinstance(result, dict) or result.get("error"):
        return False
    choices = result.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get("text")
    if not isinstance(text, str) or not text:
        return False
    return "finish_reason" not in choice or choice.get("finish_reason") is not None


def attempt_succeeded(attempt: Any) -> bool:
    """One attempt succeeded: HTTP 200, no error, and a complete non-empty completion.

    Never judged by text length (REFERENCE §9.4). Upstream examples omit ``result``; an attempt
    without that key is judged by its status alone, one with ``result: null`` failed.
    """
    if not isinstance(attempt, dict) or attempt.get("error"):
        return False
    if attempt.get("status") != 200:
        return False
    if "result" not in attempt:
        return True
    return _content_ok(attempt["result"])


def record_succeeded(record: dict[str, Any]) -> bool:
    """A logical request succeeded: ``ok`` when written (ftctl), else any attempt succeeded."""
    ok = record.get("ok")
    if isinstance(ok, bool):
        return ok
    if record.get("error"):
        return False
    results = record.get("results")
    return isinstance(results, list) and any(attempt_succeeded(a) for a in results)


def attempt_outcomes(record: dict[str, Any]) -> list[bool]:
    """Whether each attempt of a record succeeded, consistent with ``record_succeeded``.

    Each attempt is judged by ``attempt_succeeded``. A record without a ``results`` list is one
    attempt with the record's outcome. When the record's own ``ok`` disagrees with its attempts
    (ftctl writes ``ok`` from the last attempt), ``ok`` wins: a failed record has no successful
    attempt, and a successful one whose attempts all look failed succeeded on its last attempt.
    """
    results = record.get("results")
    if not isinstance(results, list) or not results:
        return [record_succeeded(record)]
    outcomes = [attempt_succeeded(a) for a in results]
    ok = record_succeeded(record)
    if not ok:
        return [False] * len(outcomes)
    if not any(outcomes):
        outcomes[-1] = True
    return outcomes
