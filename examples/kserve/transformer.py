"""A KServe transformer whose model readiness follows each model's predictor, per model.

Run it on loopback next to ``predictor.py`` (see README.md in this folder)::

    PREDICTOR_HTTP=127.0.0.1:8085 PREDICTOR_GRPC=127.0.0.1:8086 \
    python examples/kserve/transformer.py --http_port 8080 --grpc_port 8081 \
        --predictor_host 127.0.0.1:8085 --predictor_protocol v1 \
        --models iris,digits,ensemble --local_models echo \
        --healthkit_config examples/kserve/healthkit.toml

Without ``--healthkit_config`` it is a plain KServe transformer, so the same
script shows KServe's own ``--enable_predictor_health_check`` for comparison.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import kserve
import kserve.logging
from kserve import InferRequest, InferResponse
from kserve.model_server import parser as kserve_parser

import healthkit.kserve


class Transformer(kserve.Model):
    """Forwards to the predictor (KServe's default ``predict``), scaling the inputs first."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferRequest:
        if isinstance(payload, dict) and "instances" in payload:
            return {"instances": [[2 * x for x in row] for row in payload["instances"]]}
        return payload


class Echo(kserve.Model):
    """A model served by the transformer itself: it has no predictor to check."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, dict):
            return {"predictions": payload.get("instances", [])}
        return InferResponse(model_name=self.name, infer_outputs=[], response_id=payload.id)


def configure_logging() -> None:
    """KServe's log config plus the ``healthkit`` logger, on KServe's handler.

    Without it healthkit's lines have no handler of KServe's: transitions print as
    bare lines (no time, no logger) and recoveries, logged at INFO, do not show.
    Called before ``ModelServer()``, which then leaves the configured logging alone.
    """
    config = copy.deepcopy(kserve.logging.KSERVE_LOG_CONFIG)
    config["loggers"]["healthkit"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    kserve.logging.configure_logging(config)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_parser])
    parser.add_argument(
        "--models", default="iris,digits,ensemble", help="models served by the predictor"
    )
    parser.add_argument(
        "--local_models", default="echo", help="models the transformer serves itself"
    )
    parser.add_argument(
        "--healthkit_config", default=None, help="healthkit config (TOML, YAML, JSON)"
    )
    args, _ = parser.parse_known_args()

    if args.configure_logging and not args.log_config_file:
        configure_logging()
    models: list[kserve.Model] = [Transformer(n) for n in args.models.split(",") if n]
    models += [Echo(n) for n in args.local_models.split(",") if n]
    server = kserve.ModelServer()
    if args.healthkit_config:
        # The one call: model and server readiness now come from healthkit's monitor.
        healthkit.kserve.install(server, args.healthkit_config)
    server.start(models)


if __name__ == "__main__":
    main()
