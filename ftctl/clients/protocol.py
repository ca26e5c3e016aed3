"""``ftctl load --protocol auto``: is a URL an OpenAI HTTP frontend or a KServe v2 gRPC server?

HTTP is asked first (``GET /v1/models``, which also names the model); then gRPC
(``ServerLive``, and ``ModelMetadata`` for the model when one is known), as the Triton/NIM
benchmarks of the seeds do. The answer is the protocol, the model, and what was found.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

from ftctl.errors import ClientError, UsageError

PROTOCOLS = ("http", "grpc", "auto")
PROBE_TIMEOUT_S = 3.0


# What urllib raises when the peer is no HTTP/1.1 server (a gRPC port answers with HTTP/2
# frames: BadStatusLine), refuses, or sends a body that is no JSON.
_HTTP_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)


def _http_models(base_url: str, timeout: float) -> tuple[list[str] | None, str]:
    url = base_url.rstrip("/") + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only)
            data = json.loads(resp.read())
    except _HTTP_ERRORS as exc:
        return None, f"GET {url}: {type(exc).__name__}: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None, f"GET {url}: not an OpenAI model list"
    return [str(m.get("id")) for m in data["data"] if isinstance(m, dict) and m.get("id")], "ok"


def _serves(base_url: str, endpoint: str, timeout: float) -> tuple[bool, str]:
    """Does ``endpoint`` exist? An empty JSON body: an inference route rejects it (4xx but not
    404); a side port that only lists models (Dynamo's KServe metrics port) answers 404."""
    url = base_url.rstrip("/") + endpoint
    req = urllib.request.Request(  # noqa: S310 (http only)
        url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout):  # noqa: S310
            return True, "ok"
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            return False, f"POST {url}: HTTP {exc.code} (lists models but serves no {endpoint})"
        return True, f"HTTP {exc.code}"
    except _HTTP_ERRORS as exc:
        return False, f"POST {url}: {type(exc).__name__}: {exc}"


def detect_protocol(
    base_url: str,
    model: str | None,
    timeout: float = PROBE_TIMEOUT_S,
    endpoint: str = "/v1/chat/completions",
) -> tuple[str, str, str]:
    """(protocol, model, evidence) for ``base_url`` (``http://HOST:PORT``).

    Raises:
        UsageError: a KServe gRPC server was found but no ``--model`` was given (KServe v2 has
            no model listing to pick one from).
        ClientError: neither protocol answered (both probes' errors are in the message).
    """
    models, http_note = _http_models(base_url, timeout)
    if models is not None:
        serves, why = _serves(base_url, endpoint, timeout)
        if not serves:
            models, http_note = None, why
    if models is not None:
        if model is None and not models:
            raise ClientError(f"{base_url} lists no model; pass --model")
        return "http", model or models[0], f"HTTP: /v1/models lists {', '.join(models)}"
    from ftctl.kserve.wire import grpc_target, probe

    ok, grpc_note = probe(grpc_target(base_url), model, timeout)
    if ok and model:
        return "grpc", model, f"gRPC: {grpc_note}"
    if ok:
        raise UsageError(
            f"{base_url} is a KServe v2 gRPC server ({grpc_note}); KServe has no model listing, "
            "pass --model"
        )
    raise ClientError(
        f"{base_url} answered neither OpenAI HTTP ({http_note}) nor KServe gRPC ({grpc_note})"
    )
