"""Packaging of the ``grpc`` strategy: generated code, the optional extra, registration, demo."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import attrs
import pytest
from click.testing import CliRunner

from healthkit import StrategyRegistry, Target, load_config
from healthkit._proto import grpc_predict_v2_pb2 as pb
from healthkit.cli._demo_grpc import grpc_demo
from healthkit.cli._main import cli
from healthkit.strategies.grpc import GRPC_EXTRA_HINT, GrpcConfig, GrpcStrategy, GrpcTls

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "src" / "healthkit" / "_proto" / "grpc_predict_v2.proto"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- generated code ----------------------------------------------------------------------


def test_generated_module_matches_the_proto() -> None:
    """Fails when the .proto changed and ``python scripts/gen_protos.py`` was not run."""
    generated = load_generator().render_module(PROTO)
    shipped = PROTO.with_name("grpc_predict_v2_pb2.py").read_text(encoding="utf-8")
    assert shipped == generated


def test_messages_follow_the_open_inference_protocol() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert [m.name for m in service.methods] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "RepositoryIndex",
    ]
    # Field numbers are the wire contract: name = 1, version = 2.
    wire = pb.ModelReadyRequest(name="llama", version="7").SerializeToString()
    assert wire == b"\n\x05llama\x12\x017"
    assert pb.ServerReadyResponse.FromString(b"\x08\x01").ready is True
    index = pb.RepositoryIndexResponse(
        models=[pb.RepositoryIndexResponse.ModelIndex(name="a", version="1", state="READY")]
    )
    assert pb.RepositoryIndexResponse.FromString(index.SerializeToString()) == index


@pytest.mark.parametrize("order", ["first", "last"])
def test_private_pool_never_clashes_with_another_inference_package(order: str) -> None:
    """A KServe transformer imports KServe's own ``inference`` protos into the default pool."""
    result = run_python(
        """
        from google.protobuf import descriptor_pb2, descriptor_pool

        def kserve_like():
            fdp = descriptor_pb2.FileDescriptorProto(
                name="grpc_predict_v2.proto", package="inference", syntax="proto3"
            )
            msg = fdp.message_type.add(name="ModelReadyRequest")
            msg.field.add(name="name", number=1, type=9, label=1)
            msg = fdp.message_type.add(name="ServerLiveRequest")
            msg.field.add(name="extra", number=7, type=8, label=1)
            descriptor_pool.Default().AddSerializedFile(fdp.SerializeToString())

        import sys
        if sys.argv[-1] == "first":
            kserve_like()
        from healthkit._proto import grpc_predict_v2_pb2 as pb
        if sys.argv[-1] != "first":
            kserve_like()
        assert pb.DESCRIPTOR.pool is not descriptor_pool.Default()
        assert pb.ModelReadyRequest(name="m", version="1").version == "1"
        print("ok")
        """,
        order,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# -- the optional extra ------------------------------------------------------------------


def test_registered_and_available_here() -> None:
    registry = StrategyRegistry(entry_points=False, disabled=())
    stype = registry.get("grpc")
    assert stype.unavailable is None
    assert stype.config_class is GrpcConfig
    assert stype.plugin == "healthkit.builtin"
    assert "grpc.health.v1" in stype.description and "v2" in stype.description
    instance = stype.factory(GrpcConfig(target="127.0.0.1:1"), None)  # type: ignore[arg-type]
    assert isinstance(instance, GrpcStrategy) and instance.channel is None


def test_plugins_command_lists_grpc() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    strategies = {s["name"]: s for s in json.loads(result.output)["strategies"]}
    assert strategies["grpc"]["unavailable"] is None
    assert strategies["grpc"]["plugin"] == "healthkit.builtin"


def test_without_the_extra_grpc_says_what_to_install() -> None:
    """With grpcio unimportable, the config still imports and everything else still works."""
    result = run_python(
        f"""
        import sys
        for name in ("grpc", "grpc_health", "grpc.aio"):
            sys.modules[name] = None  # import grpc -> ImportError
        from healthkit import ConfigError, HealthKit, StrategyRegistry, load_config
        from healthkit.strategies.grpc import GrpcConfig

        assert GrpcConfig(target="h:1").protocol == "v2"
        registry = StrategyRegistry(entry_points=False, disabled=())
        assert registry.get("grpc").unavailable == {GRPC_EXTRA_HINT!r}
        try:
            load_config(
                {{"models": {{"m": {{"health_check": {{"strategy": "grpc", "target": "h:1"}}}}}}}},
                registry=registry,
            )
        except ConfigError as exc:
            (issue,) = exc.issues
            print(issue.path)
            print(issue.message)
        else:
            raise SystemExit("a grpc config loaded without grpcio")
        with HealthKit.from_config(
            {{"models": {{"n": {{"health_check": {{"strategy": "noop"}}}}}}}}, registry=registry
        ) as kit:
            print(kit.check("n").status.value)
        assert "grpc" not in sys.modules or sys.modules["grpc"] is None
        """
    )
    assert result.returncode == 0, result.stderr
    path, message, noop = result.stdout.strip().splitlines()
    assert path == "models.m.health_check.strategy"
    assert message == f"strategy 'grpc' is unavailable: {GRPC_EXTRA_HINT}"
    assert "pip install 'model-healthkit[grpc]'" in message
    assert noop == "healthy"


def test_importing_healthkit_does_not_import_grpcio() -> None:
    result = run_python(
        """
        import sys
        import healthkit
        from healthkit import StrategyRegistry
        from healthkit.strategies.grpc import GrpcConfig
        StrategyRegistry(entry_points=False)
        print(sorted(m for m in ("grpc", "grpc_health", "google.protobuf") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- demo --------------------------------------------------------------------------------


async def test_grpc_demo_serves_real_models() -> None:
    async with grpc_demo({"mnist": True, "broken": False}) as address:
        assert address is not None and address.startswith("127.0.0.1:")
        strategy = GrpcStrategy(GrpcConfig(target=address))
        try:
            assert (await strategy.acheck(Target(model="mnist"))).status.value == "healthy"
            assert (await strategy.acheck(Target(model="broken"))).status.value == "unhealthy"
            # The demo server also answers the repository index.
            index = strategy.channel.unary_unary(
                "/inference.GRPCInferenceService/RepositoryIndex",
                request_serializer=pb.RepositoryIndexRequest.SerializeToString,
                response_deserializer=pb.RepositoryIndexResponse.FromString,
            )
            reply = await index(pb.RepositoryIndexRequest(), timeout=2)
            assert [(m.name, m.state) for m in reply.models] == [
                ("broken", "UNAVAILABLE"),
                ("mnist", "READY"),
            ]
            reply = await index(pb.RepositoryIndexRequest(ready=True), timeout=2)
            assert [m.name for m in reply.models] == ["mnist"]
        finally:
            await strategy.aclose()
    after = GrpcStrategy(GrpcConfig(target=address))
    try:
        result = await after.acheck(Target(model="mnist"))
        assert result.status.value == "unhealthy" and "(UNAVAILABLE)" in result.detail
    finally:
        await after.aclose()


# -- docs --------------------------------------------------------------------------------

DOC = ROOT / "docs" / "grpc.md"


def test_docs_list_every_config_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\|\s*`([a-z_]+)`", text, re.M))
    for cls in (GrpcConfig, GrpcTls):
        keys = {f.alias or f.name for f in attrs.fields(cls) if f.init}
        assert not keys - documented, f"docs/grpc.md: undocumented {cls.__name__} keys"


def test_docs_examples_load(registry: StrategyRegistry) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    for block in blocks:
        config = load_config(tomllib.loads(block), registry=registry)
        assert all(m.check.strategy in ("grpc", "noop") for m in config.models.values())
        assert any(m.check.strategy == "grpc" for m in config.models.values())
