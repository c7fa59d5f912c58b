"""healthkit.grpc_health loads its extra only when used, like healthkit.asgi and kserve."""

from __future__ import annotations

import subprocess
import sys

from grpc_health.v1 import health_pb2

from healthkit import Status
from healthkit.grpc_health import StatusBoard, serving_status
from healthkit.grpc_health._board import ServingStatus


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_module_does_not_import_grpcio() -> None:
    done = run(
        "import sys\n"
        "import healthkit.grpc_health as g\n"
        "g.StatusBoard({'m': 'healthy'})\n"
        "print(sorted(m for m in ('grpc', 'grpc_health', 'google.protobuf') if m in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_servicer_without_grpcio_names_the_extra() -> None:
    done = run(
        "import sys\n"
        "sys.modules['grpc'] = None  # as if grpcio were not installed\n"
        "from healthkit.grpc_health import HealthServicer, StatusBoard\n"
        "try:\n"
        "    HealthServicer(StatusBoard())\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'model-healthkit[grpc]'" in done.stdout
    assert "HealthServicer" in done.stdout


def test_serving_statuses_are_the_protocol_numbers() -> None:
    serving = health_pb2.HealthCheckResponse
    assert {s.name: int(s) for s in ServingStatus} == {
        name: int(number) for name, number in serving.ServingStatus.items()
    }
    assert serving_status(Status.HEALTHY) == serving.SERVING
    assert serving_status(Status.DEGRADED) == serving.SERVING
    assert serving_status(Status.UNHEALTHY) == serving.NOT_SERVING
    assert serving_status(Status.UNKNOWN) == serving.UNKNOWN
    assert StatusBoard({"m": "degraded"}).status("m") is Status.DEGRADED
