"""examples/kubernetes: the manifests of docs/kubernetes.md are valid and do what they say.

Each manifest is checked field by field against the Kubernetes API models (the
``kubernetes`` client, installed with the kserve extra), its embedded healthkit
config is loaded by healthkit, the ``healthkit serve`` arguments are parsed by the
real command, and the exec probe's shell command is run against a real server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from healthkit import ConfigError, StrategyRegistry, load_config
from healthkit.testing import OipServer

yaml = pytest.importorskip("yaml")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "kubernetes"
SERVE = EXAMPLES / "healthkit-serve.yaml"
EXEC = EXAMPLES / "exec-probe.yaml"
MANIFESTS = [SERVE, EXEC]
TOKEN = "token-from-the-secret-7c1d"


def documents(path: Path) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), f"{path.name}: one object per kind expected"
    return by_kind


def _model_class(type_name: str) -> Any:
    import kubernetes.client

    return getattr(kubernetes.client, type_name)


def strict_check(value: Any, type_name: str, where: str) -> list[str]:
    """Every key known to the API model and of the declared type; returns the problems."""
    problems: list[str] = []
    if value is None:
        return problems
    # The client spells containers "List[T]" / "Dict[str, T]" (older releases: "list[T]" /
    # "dict(str, T)").
    listed = re.fullmatch(r"[Ll]ist\[(.+)\]", type_name)
    if listed:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        for i, item in enumerate(value):
            problems += strict_check(item, listed.group(1), f"{where}[{i}]")
        return problems
    mapped = re.fullmatch(r"(?:Dict\[|dict\()str, (.+)[\])]", type_name)
    if mapped:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, got {type(value).__name__}"]
        for key, item in value.items():
            problems += strict_check(item, mapped.group(1), f"{where}.{key}")
        return problems
    scalars: dict[str, tuple[type, ...]] = {
        "str": (str,),
        "int": (int,),
        "bool": (bool,),
        "float": (int, float),
        "object": (str, int, dict, list),  # IntOrString, quantities, free-form
        "datetime": (str,),
        "bytes": (str,),
    }
    if type_name in scalars:
        ok = isinstance(value, scalars[type_name]) and not (
            type_name == "int" and isinstance(value, bool)
        )
        return [] if ok else [f"{where}: expected {type_name}, got {value!r}"]
    model = _model_class(type_name)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} mapping, got {value!r}"]
    by_json_name = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        attr = by_json_name.get(key)
        if attr is None:
            problems.append(f"{where}.{key}: not a field of {type_name}")
            continue
        problems += strict_check(item, model.openapi_types[attr], f"{where}.{key}")
    return problems


KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_field_is_a_kubernetes_api_field(path: Path) -> None:
    pytest.importorskip("kubernetes")
    problems: list[str] = []
    for kind, doc in documents(path).items():
        type_name = KINDS[(doc["apiVersion"], kind)]
        problems += strict_check(doc, type_name, f"{kind}/{doc['metadata']['name']}")
    assert not problems, "\n".join(problems)


def test_the_strict_check_catches_a_misspelt_field() -> None:
    pytest.importorskip("kubernetes")
    bad = {"spec": {"containers": [{"name": "x", "readinesProbe": {}}]}}
    (problem,) = strict_check(bad, "V1PodTemplateSpec", "pod")
    assert "readinesProbe: not a field of V1Container" in problem
    assert strict_check({"periodSeconds": "5"}, "V1Probe", "p") == [
        "p.periodSeconds: expected int, got '5'"
    ]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _config_path(container: dict[str, Any], config_map: dict[str, Any], pod: dict[str, Any]) -> str:
    (mount,) = container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert mount["name"] == volume["name"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    (key,) = config_map["data"]
    return f"{mount['mountPath']}/{key}"


def _secret_env(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    env = {}
    for var in container["env"]:
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        env[var["name"]] = secret["stringData"][ref["key"]]
    return env


def _variables(config_text: str) -> set[str]:
    """``${NAME}`` without a fallback: the variables the config cannot load without."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config_text))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_secrets_reach_the_config_through_the_environment(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = documents(path)
    container = _container(docs["Deployment"])
    (text,) = docs["ConfigMap"]["data"].values()
    env = _secret_env(container, docs["Secret"])
    # Every variable the config needs comes from the Secret, and nothing else is passed.
    assert _variables(text) == set(env)
    config_file = tmp_path / "healthkit.toml"
    config_file.write_text(text, encoding="utf-8")
    for name in env:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"environment variable '\w+' is not set"):
        load_config(config_file, registry=StrategyRegistry())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(config_file, registry=StrategyRegistry())
    assert config.models


def test_serve_configmap_is_the_example_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREDICTOR_TOKEN", TOKEN)
    registry = StrategyRegistry()
    (text,) = documents(SERVE)["ConfigMap"]["data"].values()
    embedded = tmp_path / "healthkit.toml"
    embedded.write_text(text, encoding="utf-8")
    assert load_config(embedded, registry=registry) == load_config(
        EXAMPLES / "healthkit.toml", registry=registry
    )


def test_serve_deployment_probes_and_arguments() -> None:
    from healthkit.cli._serve import serve

    docs = documents(SERVE)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = _container(docs["Deployment"])
    args = container["args"]
    assert args[0] == "serve"
    assert args[1] == _config_path(container, docs["ConfigMap"], pod)
    # The real command accepts the arguments (flags and choices exist).
    ctx = serve.make_context("serve", list(args[1:]))
    assert ctx.params["host"] == "0.0.0.0"
    port = ctx.params["port"]
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": container_port["name"]}
    assert liveness["httpGet"] == {"path": "/livez", "port": container_port["name"]}
    # healthkit applies its own thresholds: Kubernetes must not count failures again.
    assert readiness["failureThreshold"] == readiness["successThreshold"] == 1
    assert container["resources"]["requests"] and container["resources"]["limits"]

    service = docs["Service"]
    assert (
        service["spec"]["selector"].items()
        <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == container_port["name"]


def _healthkit_on_path() -> str:
    found = shutil.which("healthkit", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the healthkit console script is not installed next to this Python")
    return str(Path(found).parent)


@pytest.mark.parametrize(
    ("states", "expected"),
    [({"resnet": "ready", "bert": "ready"}, 0), ({"resnet": "ready", "bert": "not_ready"}, 1)],
    ids=["all-ready", "one-not-ready"],
)
def test_exec_probe_command_against_a_real_server(
    tmp_path: Path, states: dict[str, Any], expected: int
) -> None:
    docs = documents(EXEC)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = _container(docs["Deployment"])
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    mounted = _config_path(container, docs["ConfigMap"], pod)
    (text,) = docs["ConfigMap"]["data"].values()
    local = tmp_path / "healthkit.toml"
    local.write_text(text, encoding="utf-8")
    script = command[2].replace(mounted, str(local))
    assert script != command[2], "the probe must read the mounted config"
    with OipServer(states) as server:
        env = {
            **os.environ,
            **_secret_env(container, docs["Secret"]),
            "PREDICTOR_URL": server.url,
            "PATH": f"{_healthkit_on_path()}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        done = subprocess.run(
            ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        sent = {h.get("authorization") for h in server.seen_headers}
    assert done.returncode == expected, done.stdout + done.stderr
    # The table shows in `kubectl describe pod` when the probe fails.
    assert "resnet" in done.stdout
    # The token came from the Secret, through the environment, into the header.
    assert sent == {f"Bearer {docs['Secret']['stringData']['token']}"}


def test_exec_probe_fails_on_a_config_error(tmp_path: Path) -> None:
    """Exit 3 (a missing variable) must fail the probe, not pass as "degraded or better"."""
    docs = documents(EXEC)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = _container(docs["Deployment"])
    script = container["readinessProbe"]["exec"]["command"][2]
    local = tmp_path / "healthkit.toml"
    (text,) = docs["ConfigMap"]["data"].values()
    local.write_text(text, encoding="utf-8")
    script = script.replace(_config_path(container, docs["ConfigMap"], pod), str(local))
    env = {k: v for k, v in os.environ.items() if k != "PREDICTOR_TOKEN"}
    env["PATH"] = f"{_healthkit_on_path()}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "PREDICTOR_TOKEN" in done.stderr


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def _is_excerpt(block: str, source: str) -> bool:
    """``block``'s lines appear in ``source`` as a run of lines, up to one indentation."""
    want = textwrap.dedent(block).strip("\n").splitlines()
    have = source.splitlines()
    for start in range(len(have) - len(want) + 1):
        window = "\n".join(have[start : start + len(want)])
        if textwrap.dedent(window).splitlines() == want:
            return True
    return False


def test_docs_page_shows_the_example_files_as_they_are() -> None:
    """docs/kubernetes.md quotes the example files; a quote that drifts from them fails."""
    page = (EXAMPLES.parent.parent / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    sources = [p.read_text(encoding="utf-8") for p in (*MANIFESTS, EXAMPLES / "healthkit.toml")]
    blocks = _fenced(page, "yaml") + _fenced(page, "toml")
    assert len(blocks) >= 4
    for block in blocks:
        assert any(_is_excerpt(block, source) for source in sources), block
