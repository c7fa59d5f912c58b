"""The ``healthkit`` CLI against real loopback servers and real entry-point plugins.

Commands run in-process through click's ``CliRunner``; every upstream is a real
``OipServer`` on 127.0.0.1, and third-party plugins are real distributions
(``*.dist-info`` with an ``entry_points.txt``) put on ``sys.path``.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from healthkit import HealthKit, StrategyRegistry, load_config
from healthkit.cli import cli
from healthkit.cli._output import dedupe_plan, plan_figures
from healthkit.testing import OipServer

TOKEN = "tok-9Zq7-very-secret"
PASSWORD = "hunter2-pw-Xy"
USER = "svc-user-Qm"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def server() -> Iterator[OipServer]:
    srv = OipServer(
        {"alpha": "ready", "beta": "ready", "sick": "not_ready", "gamma": "ready", "flaky": "flaky"}
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., str]:
    def write(text: str, name: str = "healthkit.toml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


def toml_config(url: str, models: str = "", default_extra: str = "") -> str:
    return f"""
    [defaults.health_check]
    strategy = "http"
    base_url = "{url}"
    protocol = "v2"
    timeout = 1.0
    {default_extra}
    {models}
    """


# -- a real plugin distribution on sys.path -------------------------------------------------------

_FIXED_PLUGIN = """
from __future__ import annotations

from typing import Literal

import attrs

from healthkit import CheckResult, Secret, StrategyRegistrar, Target, hookimpl


@attrs.frozen(kw_only=True)
class FixedConfig:
    status: Literal["healthy", "degraded", "unknown", "unhealthy"] = "healthy"
    leak: Secret | None = None


class Fixed:
    def __init__(self, config: FixedConfig) -> None:
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        detail = f"fixed {self.config.status}"
        if self.config.leak is not None:
            # A careless plugin that echoes its secret: the CLI must still mask it.
            detail += f" with token {self.config.leak.get_secret_value()}"
        return CheckResult(
            status=self.config.status, strategy="fixed", target=target, detail=detail
        )

    async def aclose(self) -> None:
        return None


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "fixed",
        config=FixedConfig,
        factory=lambda config, context: Fixed(config),
        description="Reports a fixed status (CLI tests).",
    )
"""

_CONFLICT_PLUGIN = """
import attrs
from healthkit import hookimpl


@attrs.frozen
class Cfg:
    pass


@hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("http", config=Cfg, factory=lambda c, ctx: None, description="impostor")
"""

PLUGIN_DISTS = {
    # entry-point name: (distribution, version, module, source)
    "hkcli-fixed": ("hkcli-fixed", "1.2.3", "hkcli_fixed_plugin", _FIXED_PLUGIN),
    "hkcli-broken": (
        "hkcli-broken",
        "0.1",
        "hkcli_broken_plugin",
        "raise RuntimeError('hkcli broken plugin refuses to import')\n",
    ),
    "hkcli-conflict": ("hkcli-conflict", "2.0", "hkcli_conflict_plugin", _CONFLICT_PLUGIN),
}


@pytest.fixture
def plugin_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Three installed-looking distributions with ``healthkit`` entry points.

    One good, one that fails to import, one that registers a taken name.
    """
    site = tmp_path / "site"
    site.mkdir()
    for ep_name, (dist, version, module, source) in PLUGIN_DISTS.items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[healthkit]\n{ep_name} = {module}\n", encoding="utf-8"
        )
    monkeypatch.delenv("HEALTHKIT_DISABLE_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(site))
    try:
        yield site
    finally:
        for _, _, module, _ in PLUGIN_DISTS.values():
            sys.modules.pop(module, None)


# -- check: exit codes ----------------------------------------------------------------------------


def test_check_healthy_exits_0_with_a_readable_table(
    server: OipServer, write: Callable[..., str]
) -> None:
    path = write(toml_config(server.url, "[models.alpha]\n[models.beta]\n"))
    result = run("check", path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "STATUS", "STRATEGY", "ENDPOINT", "LATENCY", "DETAIL"]
    alpha = next(line for line in lines if line.startswith("alpha"))
    assert alpha.split()[:3] == ["alpha", "healthy", "http"]
    assert "ready (HTTP 200)" in alpha
    assert "healthy: 2 healthy; resolver: 2 models, 1 instances" in result.stdout
    assert server.requests["/v2/models/alpha/ready"] == 1
    assert result.stderr == ""


def test_check_degraded_exits_1(server: OipServer, write: Callable[..., str]) -> None:
    models = """
    [models.alpha]
    [models.sick.health_check]
    protocol = "generic"
    path = "/v2/models/{model}/ready"
    expected_status = [200]
    degraded_status = ["503"]
    """
    result = run("check", write(toml_config(server.url, models)), "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "degraded"
    assert data["models"]["sick"]["status"] == "degraded"
    assert data["models"]["sick"]["detail"] == "degraded (HTTP 503)"
    assert data["models"]["alpha"]["status"] == "healthy"


def test_check_unhealthy_exits_2(
    server: OipServer, write: Callable[..., str], refused_url: str
) -> None:
    models = f"""
    [models.alpha]
    [models.sick]
    [models.gone.health_check]
    base_url = "{refused_url}"
    """
    result = run("check", write(toml_config(server.url, models)), "--format", "json")
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "unhealthy"
    assert data["models"]["sick"]["detail"] == "not ready (HTTP 503)"
    gone = data["models"]["gone"]
    assert gone["status"] == "unhealthy"
    assert "connection failed" in gone["detail"]
    assert gone["error"]["type"]


def test_check_unknown_exits_3(plugin_dists: Path, write: Callable[..., str]) -> None:
    config = """
    [models.mystery.health_check]
    strategy = "fixed"
    status = "unknown"
    [models.fine.health_check]
    strategy = "fixed"
    """
    result = run("check", write(config))
    assert result.exit_code == 3, result.output
    assert re.search(r"^mystery\s+unknown\s+fixed", result.stdout, re.M)
    assert "unknown: 1 healthy, 1 unknown" in result.stdout
    assert result.stderr == ""  # a real unknown status, not an error


def test_exit_code_follows_the_worst_status(plugin_dists: Path, write: Callable[..., str]) -> None:
    def code(*statuses: str) -> int:
        models = "".join(
            f'[models.m{i}.health_check]\nstrategy = "fixed"\nstatus = "{s}"\n'
            for i, s in enumerate(statuses)
        )
        return run("check", write(models)).exit_code

    assert code("healthy", "healthy") == 0
    assert code("healthy", "degraded") == 1
    assert code("degraded", "unknown") == 3
    assert code("unknown", "unhealthy", "degraded") == 2


# -- check: JSON shape, --model -------------------------------------------------------------------


def test_check_json_shape(server: OipServer, write: Callable[..., str]) -> None:
    models = f"""
    [models.alpha]
    [models.beta]
    [models.off.health_check]
    strategy = "noop"
    [models.gamma.health_check]
    strategy = "composite"
    mode = "quorum"
    quorum = 2
    checks = [ {{strategy = "http", base_url = "{server.url}", protocol = "v1"}},
               {{strategy = "http", base_url = "{server.url}", protocol = "v2"}},
               {{strategy = "noop"}} ]
    """
    result = run("check", write(toml_config(server.url, models)), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"status", "models", "resolver"}
    assert data["status"] == "healthy"
    assert list(data["models"]) == ["alpha", "beta", "off", "gamma"]
    for entry in data["models"].values():
        assert {"status", "strategy", "latency_ms", "detail", "error", "children"} <= set(entry)
        assert isinstance(entry["latency_ms"], float)
        assert entry["error"] is None
    assert data["models"]["off"]["strategy"] == "noop"
    gamma = data["models"]["gamma"]
    assert gamma["strategy"] == "composite"
    assert [c["strategy"] for c in gamma["children"]] == ["http", "http", "noop"]
    assert all(c["status"] == "healthy" and c["children"] == [] for c in gamma["children"])
    # http v2 (alpha, beta, gamma's 2nd child), http v1, noop (off, gamma's 3rd child), composite.
    assert data["resolver"] == {"models": 4, "instances": 4}
    assert server.requests["/v1/models/gamma"] == 1


def test_check_table_shows_composite_children(server: OipServer, write: Callable[..., str]) -> None:
    models = f"""
    [models.gamma.health_check]
    strategy = "composite"
    mode = "all"
    checks = [ {{strategy = "http", base_url = "{server.url}"}}, {{strategy = "noop"}} ]
    """
    result = run("check", write(toml_config(server.url, models)))
    assert result.exit_code == 0, result.output
    assert re.search(r"^gamma\s+healthy\s+composite", result.stdout, re.M)
    # Children are labelled by strategy, with the endpoint each one checked.
    url = re.escape(server.url)
    assert re.search(rf"^  \[0\] http\s+healthy\s+http\s+{url}\s", result.stdout, re.M)
    assert re.search(r"^  \[1\] noop\s+healthy\s+noop\s+-\s", result.stdout, re.M)


def test_check_one_model(server: OipServer, write: Callable[..., str]) -> None:
    path = write(toml_config(server.url, "[models.alpha]\n[models.sick]\n"))
    ok = run("check", path, "--model", "alpha", "--format", "json")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert list(data["models"]) == ["alpha"]
    assert data["status"] == "healthy"
    assert data["resolver"] == {"models": 2, "instances": 1}
    assert server.requests["/v2/models/sick/ready"] == 0
    bad = run("check", path, "--model", "sick")
    assert bad.exit_code == 2
    assert re.search(r"^sick\s+unhealthy", bad.stdout, re.M)


def test_check_unknown_model_exits_3_listing_models(
    server: OipServer, write: Callable[..., str]
) -> None:
    path = write(toml_config(server.url, "[models.alpha]\n[models.beta]\n"))
    result = run("check", path, "--model", "zeta")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "unknown model 'zeta'" in result.stderr
    assert "alpha, beta" in result.stderr
    assert server.total_requests == 0


def test_check_flaky_model_alternates(server: OipServer, write: Callable[..., str]) -> None:
    path = write(toml_config(server.url, "[models.flaky]\n"))
    assert [run("check", path).exit_code for _ in range(3)] == [0, 2, 0]


# -- config and usage errors ----------------------------------------------------------------------


def test_config_errors_go_to_stderr_with_paths(
    server: OipServer, write: Callable[..., str]
) -> None:
    models = f"""
    [models.alpha.health_check]
    timeuot = 2
    [models.beta.health_check]
    strategy = "carrier-pigeon"
    [models.gamma.health_check]
    strategy = "composite"
    mode = "quorum"
    quorum = 2
    checks = [ {{strategy = "http", base_url = "{server.url}", protocol = "v1"}},
               {{strategy = "http", base_url = "{server.url}", timeout = -1}},
               {{strategy = "noop"}} ]
    """
    path = write(toml_config(server.url, models))
    for command in ("check", "validate"):
        result = run(command, path)
        assert result.exit_code == 3, (command, result.output)
        assert result.stdout == ""
        err = result.stderr
        assert path in err
        assert "models.gamma.health_check.checks[1].timeout: must be > 0, got -1" in err
        assert "models.alpha.health_check.timeuot: unknown key; did you mean 'timeout'?" in err
        assert "models.beta.health_check.strategy: unknown strategy 'carrier-pigeon'" in err
        assert re.search(r"known strategies: composite, (\S+, )*http, (\S+, )*noop", err)
    assert server.total_requests == 0


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.toml", None, "cannot read"),
        ("broken.toml", "[models.alpha\n", "invalid TOML"),
        ("config.ini", "[models]\n", "unsupported config file type '.ini'"),
        ("broken.json", "{", "invalid JSON"),
    ],
)
def test_unreadable_configs_exit_3(
    tmp_path: Path, name: str, text: str | None, expected: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    for command in ("check", "validate"):
        result = run(command, str(path))
        assert result.exit_code == 3, result.output
        assert expected in result.stderr
        assert str(path) in result.stderr


def test_usage_errors_exit_3_not_2(write: Callable[..., str]) -> None:
    path = write("[models.alpha]\n")
    bad_format = run("check", path, "--format", "xml")
    assert bad_format.exit_code == 3
    assert "xml" in bad_format.stderr
    assert run("check").exit_code == 3
    assert run("validate", path, "--bogus").exit_code == 3


def test_strategy_that_cannot_start_exits_3(write: Callable[..., str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    config = f"""
    [models.alpha.health_check]
    strategy = "http"
    base_url = "https://127.0.0.1:9"
    ca_bundle = "{missing}"
    """
    result = run("check", write(config))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "http" in result.stderr and result.stderr.strip()


def test_yaml_and_json_configs_check_the_same(server: OipServer, write: Callable[..., str]) -> None:
    as_json = write(
        json.dumps(
            {
                "defaults": {"health_check": {"base_url": server.url, "strategy": "http"}},
                "models": {"alpha": None, "beta": {}},
            }
        ),
        "hk.json",
    )
    as_yaml = write(
        f"defaults:\n  health_check:\n    strategy: http\n    base_url: {server.url}\n"
        "models:\n  alpha:\n  beta: {}\n",
        "hk.yaml",
    )
    outputs = [json.loads(run("check", p, "--format", "json").stdout) for p in (as_json, as_yaml)]
    for data in outputs:
        assert data["status"] == "healthy"
        assert data["resolver"] == {"models": 2, "instances": 1}


# -- secrets --------------------------------------------------------------------------------------


def test_secrets_never_appear_in_any_output(
    server: OipServer,
    write: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    plugin_dists: Path,
) -> None:
    monkeypatch.setenv("HK_TEST_TOKEN", TOKEN)
    creds_url = server.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    child = f'strategy = "http", base_url = "{creds_url}", headers = {{X-Api-Key = "{PASSWORD}"}}'
    models = f"""
    [models.alpha]
    [models.sick]
    [models.basic.health_check]
    base_url = "{creds_url}"
    [models.chatty.health_check]
    strategy = "fixed"
    leak = "${{HK_TEST_TOKEN}}"
    [models.gamma.health_check]
    strategy = "composite"
    checks = [ {{{child}}} ]
    """
    extra = 'headers = { Authorization = "Bearer ${HK_TEST_TOKEN}" }'
    good = write(toml_config(server.url, models, extra))
    bad = write(
        toml_config(server.url, models + "\n[models.zz.health_check]\ntimeout = -5\n", extra),
        "bad.toml",
    )
    outputs = [
        run("check", good),
        run("check", good, "--format", "json"),
        run("check", good, "--model", "chatty", "--format", "json"),
        run("validate", good),
        run("validate", good, "--format", "json"),
        run("check", bad),
        run("validate", bad),
    ]
    for result in outputs:
        text = result.stdout + result.stderr
        for secret in (TOKEN, PASSWORD, USER):
            assert secret not in text, (secret, text)
    check_json = json.loads(outputs[1].stdout)
    # The plugin put the token in its detail; the CLI masked it.
    assert check_json["models"]["chatty"]["detail"] == "fixed healthy with token ***"
    assert "***" in outputs[3].stdout  # the plan shows that secrets exist, masked
    assert outputs[5].exit_code == 3 and "models.zz.health_check.timeout" in outputs[5].stderr
    # ...and the secrets did reach the server, where they belong.
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for h in server.seen_headers)
    assert any(h.get("x-api-key") == PASSWORD for h in server.seen_headers)
    assert any(h.get("authorization", "").startswith("Basic ") for h in server.seen_headers)


# -- validate -------------------------------------------------------------------------------------


def _hundred_models(url: str) -> str:
    """100 models over 3 distinct configs, each spelled several equivalent ways."""
    host_port = url.removeprefix("http://")
    v2_spellings = [
        "",  # inherits the default
        f'[models.{{name}}.health_check]\nbase_url = "HTTP://{host_port}/"\n',
        f'[models.{{name}}.health_check]\ntimeout = 1\nprotocol = "v2"\nstrategy = "http"\n'
        f'base_url = "{url}"\n',
    ]
    v1_spellings = [
        '[models.{name}.health_check]\nprotocol = "v1"\nheaders = { X-Team = "ml" }\n',
        f'[models.{{name}}.health_check]\nheaders = {{ x-team = "ml" }}\nprotocol = "v1"\n'
        f'base_url = "{url}/"\n',
    ]
    noop_spellings = [
        '[models.{name}.health_check]\nstrategy = "noop"\n',
        '[models.{name}.health_check]\nstrategy = "noop"\ntimeout = 3.0\n',  # monitor-only key
    ]
    parts = [f'[defaults.health_check]\nstrategy = "http"\nbase_url = "{url}"\n']
    for i in range(100):
        name = f"m{i:03d}"
        group = (v2_spellings, v1_spellings, noop_spellings)[i % 3]
        spelling = group[(i // 3) % len(group)]
        parts.append(spelling.replace("{name}", name) if spelling else f"[models.{name}]\n")
    return "\n".join(parts)


def test_validate_hundred_models_three_instances(write: Callable[..., str]) -> None:
    with OipServer([f"m{i:03d}" for i in range(100)]) as server:
        path = write(_hundred_models(server.url))
        result = run("validate", path)
        assert result.exit_code == 0, result.output
        assert result.stdout.rstrip().splitlines()[-1] == "100 models, 3 instances"
        assert server.total_requests == 0  # validate contacts nothing
        checked = run("check", path, "--format", "json")
        assert checked.exit_code == 0, checked.output
        data = json.loads(checked.stdout)
        assert data["resolver"] == {"models": 100, "instances": 3}
        assert len(data["models"]) == 100
        assert all(m["status"] == "healthy" for m in data["models"].values())


def test_validate_plan_json(write: Callable[..., str]) -> None:
    url = "http://127.0.0.1:8080"
    models = f"""
    [models.alpha]
    [models.beta.health_check]
    strategy = "noop"
    [models.gamma.health_check]
    strategy = "composite"
    mode = "quorum"
    quorum = 2
    checks = [ {{strategy = "http", base_url = "http://10.0.0.1:8080", protocol = "v1"}},
               {{strategy = "http", base_url = "{url}"}},
               {{strategy = "noop"}} ]
    """
    result = run("validate", write(toml_config(url, models)), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["resolver"] == {"models": 3, "instances": 4}
    by_id = {inst["id"]: inst for inst in data["instances"]}
    alpha, beta, gamma = (by_id[data["models"][m]] for m in ("alpha", "beta", "gamma"))
    assert alpha["strategy"] == "http" and alpha["spec"]["base_url"] == url
    assert alpha["spec"]["protocol"] == "v2" and alpha["spec"]["timeout"] == 1.0
    assert beta == {**beta, "strategy": "noop", "models": ["beta"], "used_by": [gamma["id"]]}
    assert gamma["children"] == [4, alpha["id"], beta["id"]]
    assert by_id[4]["spec"]["base_url"] == "http://10.0.0.1:8080"
    assert by_id[4]["models"] == [] and by_id[4]["used_by"] == [gamma["id"]]


def test_validate_table_shows_who_shares_what(write: Callable[..., str]) -> None:
    models = """
    [models.alpha]
    [models.beta]
    [models.gamma.health_check]
    protocol = "v1"
    """
    result = run("validate", write(toml_config("http://127.0.0.1:8080", models)))
    assert result.exit_code == 0
    out = result.stdout
    assert "#1 http base_url=http://127.0.0.1:8080  (shared: 2 models)" in out
    assert "models: alpha, beta" in out
    assert "#2 http base_url=http://127.0.0.1:8080 protocol=v1" in out
    assert "model: gamma" in out
    assert out.rstrip().endswith("3 models, 2 instances")


@pytest.mark.parametrize(
    "config",
    [
        {"models": {}},
        {"models": {"a": {}, "b": {"health_check": {"strategy": "noop"}}}},
        {
            "defaults": {"health_check": {"strategy": "http", "base_url": "http://h:1"}},
            "models": {
                "a": {},
                "b": {"health_check": {"protocol": "v1"}},
                "c": {
                    "health_check": {
                        "strategy": "composite",
                        "checks": [
                            {"strategy": "http", "base_url": "http://h:1"},
                            {
                                "strategy": "composite",
                                "mode": "any",
                                "checks": [
                                    {
                                        "strategy": "http",
                                        "base_url": "http://h:1",
                                        "protocol": "v1",
                                    },
                                    {"strategy": "http", "base_url": "http://other:1"},
                                    {"strategy": "noop"},
                                ],
                            },
                            {"strategy": "noop"},
                        ],
                    }
                },
                "d": {
                    "health_check": {
                        "strategy": "composite",
                        "mode": "any",
                        "checks": [
                            {"strategy": "http", "base_url": "HTTP://h:1/", "protocol": "v1"},
                            {"strategy": "http", "base_url": "http://other:1"},
                            {"strategy": "noop"},
                        ],
                    }
                },
            },
        },
    ],
)
async def test_plan_figures_match_a_real_resolver(config: dict[str, Any]) -> None:
    registry = StrategyRegistry(entry_points=False, disabled=())
    loaded = load_config(config, registry=registry)
    expected = plan_figures(dedupe_plan(loaded))
    async with HealthKit(loaded, registry=registry) as kit:
        stats = kit.stats()
    assert (stats.models, stats.instances) == expected


def test_validate_reports_every_error(write: Callable[..., str]) -> None:
    config = """
    [defaults.health_check]
    strategy = "http"
    base_url = "ftp://nope"
    [models.a.health_check]
    strategy = "noop"
    retries = 2
    [models.b.health_check]
    strategy = "composite"
    mode = "most"
    checks = []
    """
    result = run("validate", write(config))
    assert result.exit_code == 3
    assert result.stdout == ""
    err = result.stderr
    assert "defaults.health_check.base_url" in err
    assert "models.a.health_check.retries: unknown key" in err
    assert "models.b.health_check.mode" in err
    assert "models.b.health_check.checks: must not be empty" in err


# -- plugins --------------------------------------------------------------------------------------


def test_plugins_json_lists_strategies_and_failures(plugin_dists: Path) -> None:
    result = run("plugins", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"strategies", "notifiers", "failures"}
    keys = {"name", "plugin", "distribution", "version", "description", "unavailable"}
    assert all(set(s) == keys for s in data["strategies"])
    strategies = {s["name"]: s for s in data["strategies"]}
    assert {"noop", "http", "composite", "fixed"} <= set(strategies)
    http = strategies["http"]
    assert (http["plugin"], http["distribution"], http["unavailable"]) == (
        "healthkit.builtin",
        "healthkit",
        None,
    )
    assert http["version"] and http["description"]
    fixed = strategies["fixed"]
    assert (fixed["plugin"], fixed["distribution"], fixed["version"]) == (
        "hkcli-fixed",
        "hkcli-fixed",
        "1.2.3",
    )
    assert fixed["description"] == "Reports a fixed status (CLI tests)."
    failures = {f["plugin"]: f for f in data["failures"]}
    assert all(
        set(f) == {"plugin", "distribution", "version", "stage", "error"} for f in failures.values()
    )
    broken = failures["hkcli-broken"]
    assert (broken["distribution"], broken["version"], broken["stage"]) == (
        "hkcli-broken",
        "0.1",
        "import",
    )
    assert broken["error"] == "RuntimeError: hkcli broken plugin refuses to import"
    conflict = failures["hkcli-conflict"]
    assert conflict["stage"] == "conflict"
    assert "hkcli-conflict" in conflict["error"] and "healthkit.builtin" in conflict["error"]
    # The impostor did not replace the built-in http strategy.
    assert strategies["http"]["plugin"] == "healthkit.builtin"


def test_plugins_table_and_disabled_plugins(
    plugin_dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHKIT_DISABLE_PLUGINS", "hkcli-fixed, hkcli-broken")
    result = run("plugins")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^  http\s+healthkit\.builtin\s+healthkit \S+\s+HTTP readiness", out, re.M)
    assert not re.search(r"^  fixed\s", out, re.M)
    fixed_row = r"^  hkcli-fixed\s+hkcli-fixed 1\.2\.3\s+disabled\s+Disabled: blocked by"
    assert re.search(fixed_row, out, re.M)
    assert re.search(r"^  hkcli-broken\s+hkcli-broken 0\.1\s+disabled\s", out, re.M)
    assert re.search(r"^  hkcli-conflict\s+hkcli-conflict 2\.0\s+conflict\s", out, re.M)


def test_a_broken_plugin_does_not_break_checks(
    plugin_dists: Path, server: OipServer, write: Callable[..., str]
) -> None:
    models = '[models.alpha]\n[models.fixed.health_check]\nstrategy = "fixed"\nstatus = "healthy"\n'
    result = run("check", write(toml_config(server.url, models)))
    assert result.exit_code == 0, result.output
    assert re.search(r"^fixed\s+healthy\s+fixed", result.stdout, re.M)


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in ("check", "validate", "plugins", "demo"):
        assert re.search(rf"^  {name}\s", result.stdout, re.M)
