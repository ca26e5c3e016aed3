"""The shared fake server itself: each fault knob does what tests rely on."""

import json
import urllib.error
import urllib.request

import pytest

from tests.fake_llm import FakeLLM


def _post(url: str, body: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def server():
    with FakeLLM() as srv:
        yield srv


def test_completion_returns_requested_token_count(server):
    status, body = _post(
        server.url + "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 5},
    )
    assert status == 200
    assert json.loads(body)["usage"]["completion_tokens"] == 5


def test_503_mode_answers_503(server):
    server.behavior.mode = "http_503"
    status, _ = _post(server.url + "/v1/chat/completions", {"messages": [], "max_tokens": 2})
    assert status == 503


def test_stream_error_sends_error_event_after_200(server):
    server.behavior.mode = "stream_error"
    status, body = _post(
        server.url + "/v1/chat/completions", {"messages": [], "max_tokens": 4, "stream": True}
    )
    assert status == 200
    assert b'"error"' in body and b"[DONE]" not in body


def test_fail_every_spares_the_others(server):
    server.behavior.mode = "http_500"
    server.behavior.fail_every = 2
    statuses = [
        _post(server.url + "/v1/completions", {"prompt": "x", "max_tokens": 1})[0] for _ in range(4)
    ]
    assert statuses == [200, 500, 200, 500]
