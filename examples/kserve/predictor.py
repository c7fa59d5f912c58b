"""A small KServe predictor serving several toy models over REST (v1, v2) and gRPC v2.

Run it on loopback (see README.md in this folder)::

    python examples/kserve/predictor.py --http_port 8085 --grpc_port 8086 \
        --models iris,digits,ensemble

Each model sums the numbers of every input row. Two demo routes let you watch a
transformer react to its predictor, and count what reaches the predictor:

* ``POST /demo/models/{name}`` with ``{"ready": false}`` turns a model not ready
  (``{"ready": true}`` back); ``{"health_delay": 5}`` makes its readiness answers
  take 5 s (a hung model; inference stays fast), ``0`` undoes it.
* ``GET /demo/stats`` returns how many readiness requests reached this process,
  per protocol (``rest``: v1 and v2; ``grpc``: ``ModelReady``, ``ServerReady``)
  and model (``<server>`` for server readiness), and how many inference requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import os
from typing import Any

import kserve
from fastapi import Request
from kserve import InferRequest, InferResponse
from kserve.model_server import app
from kserve.model_server import parser as kserve_parser
from kserve.protocol.dataplane import DataPlane

SERVER = "<server>"

#: Which protocol the current request came in by: set by ``MarkRest`` for REST requests.
_protocol: contextvars.ContextVar[str] = contextvars.ContextVar("protocol", default="grpc")


class SumModel(kserve.Model):
    """Answers with the sum of each input row; its readiness can be steered."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        #: Seconds every readiness answer about this model takes (not inference).
        self.health_delay = 0.0
        self.load()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].as_numpy()
            sums = rows.reshape(rows.shape[0], -1).sum(axis=1)
            out = kserve.InferOutput(name="sum", shape=list(sums.shape), datatype="FP64")
            out.set_data_from_numpy(sums.astype("float64"), binary_data=False)
            return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id)
        return {"predictions": [sum(row) for row in payload["instances"]]}


class MarkRest:
    """ASGI middleware: requests through here are REST; the rest (gRPC) keep the default."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Each request runs in its own task, so this never leaks into another request.
            _protocol.set("rest")
        await self.app(scope, receive, send)


class CountingDataPlane(DataPlane):
    """KServe's data plane, counting every readiness request it answers, per protocol."""

    def __init__(self, model_registry: Any) -> None:
        super().__init__(model_registry=model_registry)
        self.health_requests: dict[str, collections.Counter[str]] = {
            "rest": collections.Counter(),
            "grpc": collections.Counter(),
        }
        self.inference_requests: collections.Counter[str] = collections.Counter()

    async def ready(self) -> bool:
        self.health_requests[_protocol.get()][SERVER] += 1
        return await super().ready()

    async def model_ready(
        self, model_name: str, disable_predictor_health_check: bool = False
    ) -> bool:
        # KServe calls this with ``True`` on every inference request: those are not health checks.
        if disable_predictor_health_check:
            self.inference_requests[model_name] += 1
        else:
            self.health_requests[_protocol.get()][model_name] += 1
            model = self.model_registry.get_model(model_name)
            delay = getattr(model, "health_delay", 0.0)
            if delay:
                await asyncio.sleep(delay)
        return await super().model_ready(model_name, disable_predictor_health_check)


def add_demo_routes(
    server: kserve.ModelServer, models: dict[str, SumModel], plane: CountingDataPlane
) -> None:
    async def stats() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "health_requests": {k: dict(v) for k, v in plane.health_requests.items()},
            "inference_requests": dict(plane.inference_requests),
            "models": {
                name: {"ready": m.ready, "health_delay": m.health_delay}
                for name, m in models.items()
            },
        }

    async def steer(name: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        model = models[name]
        if "ready" in body:
            model.ready = bool(body["ready"])
        if "health_delay" in body:
            model.health_delay = float(body["health_delay"])
        return {"name": name, "ready": model.ready, "health_delay": model.health_delay}

    app.add_api_route("/demo/stats", stats, methods=["GET"])
    app.add_api_route("/demo/models/{name}", steer, methods=["POST"])
    app.add_middleware(MarkRest)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_parser])
    parser.add_argument(
        "--models", default="iris,digits,ensemble", help="comma-separated model names"
    )
    args, _ = parser.parse_known_args()

    models = {name: SumModel(name) for name in args.models.split(",") if name}
    server = kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port)
    plane = CountingDataPlane(server.registered_models)
    # ModelServer hands ``server.dataplane`` to its REST and gRPC servers in start().
    server.dataplane = plane
    add_demo_routes(server, models, plane)
    server.start(list(models.values()))


if __name__ == "__main__":
    main()
