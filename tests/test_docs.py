"""The docs keep up with the code: every hook documented and tested, every link alive."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import attrs
import click
import pytest
from click.testing import CliRunner

from healthkit import MonitorSettings, _hookspecs
from healthkit.cli import cli
from healthkit.cli._main import COMMANDS
from healthkit.strategies.composite import CompositeConfig
from healthkit.strategies.http import HttpConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"

#: ``[text](target)`` and ``![alt](target)``; the target ends at whitespace or ``)``.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: ``[label]: target`` reference definitions.
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _annotation(value: object) -> str:
    # Hookspecs use ``from __future__ import annotations``: annotations are already source text.
    return value if isinstance(value, str) else inspect.formatannotation(value)


def hook_signature(func: object) -> str:
    """``def healthkit_x(a: T, *, b: U = 1) -> R`` as written in the hookspec module."""
    assert callable(func)
    sig = inspect.signature(func)
    parts: list[str] = []
    star_done = False
    for param in sig.parameters.values():
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text, star_done = f"*{text}", True
        elif param.kind is param.VAR_KEYWORD:
            text = f"**{text}"
        elif param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    ret = ""
    if sig.return_annotation is not sig.empty:
        ret = f" -> {_annotation(sig.return_annotation)}"
    return f"def {func.__name__}({', '.join(parts)}){ret}"  # type: ignore[attr-defined]


HOOKS = sorted(
    (name, func)
    for name, func in inspect.getmembers(_hookspecs, inspect.isfunction)
    if name.startswith("healthkit_")
)


def test_there_are_hooks() -> None:
    assert [name for name, _ in HOOKS], "no healthkit_* hook found in healthkit._hookspecs"
    assert "healthkit_register_strategies" in dict(HOOKS)


@pytest.mark.parametrize(("name", "func"), HOOKS, ids=[name for name, _ in HOOKS])
def test_hook_is_documented_with_its_signature(name: str, func: object) -> None:
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    signature = hook_signature(func)
    assert signature in text, f"docs/plugins.md must document {signature}"


@pytest.mark.parametrize(("name", "func"), HOOKS, ids=[name for name, _ in HOOKS])
def test_hook_has_a_test(name: str, func: object) -> None:
    users = [
        path.name
        for path in sorted(TESTS.glob("test_*.py"))
        if path.name != "test_docs.py" and name in path.read_text(encoding="utf-8")
    ]
    assert users, f"no test in tests/ uses hook {name}"


def test_hook_signature_rendering() -> None:
    def healthkit_example(a: int, *, b: str = "x", **more: object) -> None: ...

    assert hook_signature(healthkit_example) == (
        "def healthkit_example(a: int, *, b: str = 'x', **more: object) -> None"
    )


# -- links ----------------------------------------------------------------------------------------


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _links(text: str) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def _anchors(path: Path) -> set[str]:
    """GitHub-style heading anchors of a markdown file."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors = set()
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        title = match.group(1).strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _relative_links() -> list[tuple[Path, str]]:
    found = []
    for path in _markdown_files():
        for target in _links(path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                continue  # http:, https:, mailto:
            found.append((path, target))
    return found


def test_docs_exist() -> None:
    assert (DOCS / "index.md").is_file()
    assert len(_relative_links()) > 10  # the link check below has something to check


@pytest.mark.parametrize(
    ("source", "target"),
    _relative_links(),
    ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in _relative_links()],
)
def test_relative_link_points_to_an_existing_file(source: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    dest = (source.parent / file_part).resolve() if file_part else source
    assert dest.exists(), f"{source.relative_to(ROOT)} links to missing {target}"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), (
            f"{source.relative_to(ROOT)}: no heading #{anchor} in {dest.name}"
        )


def test_index_links_every_page() -> None:
    index = DOCS / "index.md"
    linked = {
        (DOCS / t.partition("#")[0]).resolve()
        for t in _links(index.read_text(encoding="utf-8"))
        if t.partition("#")[0]
    }
    pages = {p.resolve() for p in DOCS.glob("*.md") if p.name != "index.md"}
    missing = sorted(p.name for p in pages - linked)
    assert not missing, f"docs/index.md does not link to {missing}"


# -- the CLI and config references ---------------------------------------------------------------


def _section(text: str, title: str) -> str:
    """The body under the heading ``title`` up to the next heading of the same or higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.M)
    assert match, f"no heading {title!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def test_cli_reference_covers_every_command() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert _section(text, f"`healthkit {name}`").strip(), name


@pytest.mark.parametrize("name", ["check", "validate", "plugins", "demo"])
def test_cli_reference_covers_every_flag(name: str) -> None:
    module, attr = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    section = _section((DOCS / "cli.md").read_text(encoding="utf-8"), f"`healthkit {name}`")
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert opt in section, f"docs/cli.md: healthkit {name} {opt} is undocumented"
        else:
            assert (param.metavar or param.name or "").upper() in section
        if isinstance(param.type, click.Choice):
            for choice in param.type.choices:
                assert str(choice) in section, f"healthkit {name}: choice {choice} undocumented"


def _documented_keys(section: str) -> set[str]:
    return set(re.findall(r"^\|\s*`([a-z_]+)`", section, re.M))


@pytest.mark.parametrize(
    ("title", "config_class"),
    [
        ("Monitor settings", MonitorSettings),
        ("Strategy `http`", HttpConfig),
        ("Strategy `composite`", CompositeConfig),
    ],
)
def test_config_reference_lists_every_key(title: str, config_class: type) -> None:
    section = _section((DOCS / "config.md").read_text(encoding="utf-8"), title)
    keys = {f.alias or f.name for f in attrs.fields(config_class) if f.init}
    missing = sorted(keys - _documented_keys(section))
    assert not missing, f"docs/config.md, {title}: undocumented keys {missing}"


def test_quick_start_config_is_valid_and_its_figures_are_right(tmp_path: Path) -> None:
    text = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", text, re.S)
    assert toml
    path = tmp_path / "healthkit.toml"
    path.write_text(toml.group(1), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("3 models, 5 instances")
    # concepts.md shows the same plan.
    concepts = (DOCS / "concepts.md").read_text(encoding="utf-8")
    plan = result.stdout.split("\n", 1)[1].rstrip()
    assert plan in concepts


def test_readme_quick_start_is_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = _section(readme, "Quick start")
    commands = [
        line
        for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", quick, re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert commands == [
        "python -m pip install . && healthkit demo",
        "python -m pip install -r requirements-test.txt && python -m pytest",
    ]
