"""A worker "pod" for a KServe gRPC graph: the real Dynamo mocker plus a max_tokens relay.

Why: ai-dynamo 1.6.1's KServe frontend turns ``ModelInfer`` into a completions request from
``text_input`` and ``streaming`` only (its conversion rejects any other input and reads no
request parameter), so the request reaches the worker with no ``max_tokens``; the mocker
refuses such requests (``max_output_tokens must be specified for mocker``), while real engines
default to the context left. This process runs, on one event loop:

- the mocker, unchanged, serving ``dynamo.ftctl_engine.generate`` under ``<model>-engine``;
- a relay on ``dynamo.backend.generate`` registered as ``<model>`` (the name clients use), which
  fills ``stop_conditions.max_tokens`` when the request has none (``FTCTL_KSERVE_MAX_TOKENS``)
  and forwards the token stream to the mocker through Dynamo's own request plane.

Both live and die together (one process, one "pod"): a SIGKILL takes the engine down the way
it takes down a real worker, and the supervisor restarts the pair.
"""

from __future__ import annotations

import asyncio
import os
import sys

ENGINE_ENDPOINT = "dyn://dynamo.ftctl_engine.generate"
RELAY_ENDPOINT = "dynamo.backend.generate"
ENGINE_SUFFIX = "-engine"
ENV_MAX_TOKENS = "FTCTL_KSERVE_MAX_TOKENS"
ENV_MODEL = "FTCTL_KSERVE_MODEL"
ENV_MODEL_PATH = "FTCTL_KSERVE_MODEL_PATH"


def mocker_args(args: list[str], model: str) -> list[str]:
    """The mocker's arguments with the engine endpoint and the engine's own model name."""
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("--endpoint", "--model-name") and i + 1 < len(args):
            skip = True
            continue
        out.append(a)
    return [*out, "--endpoint", ENGINE_ENDPOINT, "--model-name", model + ENGINE_SUFFIX]


def fill_max_tokens(request: dict, default: int) -> dict:
    """``request`` with ``stop_conditions.max_tokens`` set when it is missing or null."""
    stop = request.get("stop_conditions")
    if not isinstance(stop, dict):
        stop = request["stop_conditions"] = {}
    if not stop.get("max_tokens"):
        stop["max_tokens"] = default
    return request


async def relay(model: str, model_path: str, max_tokens: int) -> None:
    """Serve ``model`` on the backend endpoint, forwarding every request to the mocker."""
    from dynamo.common.utils.runtime import create_runtime
    from dynamo.llm import ModelInput, ModelType, WorkerType, register_llm

    runtime, _loop = create_runtime(
        os.environ.get("DYN_DISCOVERY_BACKEND", "file"),
        os.environ.get("DYN_REQUEST_PLANE", "tcp"),
        os.environ.get("DYN_EVENT_PLANE", "zmq"),
    )
    try:
        engine = await runtime.endpoint(ENGINE_ENDPOINT.removeprefix("dyn://")).client()
        await engine.wait_for_instances()  # advertise the model only once the engine serves
        endpoint = runtime.endpoint(RELAY_ENDPOINT)

        async def handler(request, context=None):
            stream = await engine.round_robin(fill_max_tokens(request, max_tokens))
            async for item in stream:
                yield item.data()

        await register_llm(
            ModelInput.Tokens,
            ModelType.Chat | ModelType.Completions,
            endpoint,
            model_path,
            model,
            worker_type=WorkerType.Aggregated,
        )
        await endpoint.serve_endpoint(handler)
    finally:
        runtime.shutdown()


async def _main(model: str, model_path: str, max_tokens: int) -> None:
    import dynamo.mocker.main as mocker

    engine = asyncio.ensure_future(mocker.worker())
    side = asyncio.ensure_future(relay(model, model_path, max_tokens))
    done, _ = await asyncio.wait({engine, side}, return_when=asyncio.FIRST_COMPLETED)
    for task in (engine, side):
        if not task.done():
            task.cancel()
    await asyncio.gather(engine, side, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()


def run(args: list[str]) -> None:
    """Run the mocker (``args``: its command line) and the relay until either ends."""
    model = os.environ[ENV_MODEL]
    model_path = os.environ[ENV_MODEL_PATH]
    max_tokens = int(os.environ.get(ENV_MAX_TOKENS, "16"))
    sys.argv = ["dynamo.mocker", *mocker_args(args, model)]
    import uvloop

    uvloop.run(_main(model, model_path, max_tokens))
