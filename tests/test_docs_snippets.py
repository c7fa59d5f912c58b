"""Every fenced code block of the docs runs: a page whose snippet breaks fails the suite.

Pages: ``README.md``, ``CONTRIBUTING.md``, ``docs/**/*.md``, ``examples/*/README.md`` and
``plugins/*/README.md``. One test per block, named ``page.md:LINE`` (the line of the opening
fence). Each page gets its own temporary directory, shared by its blocks in page order, so a
file that one block writes is there for the blocks below it.

What runs, by the fence's language:

- ``python``: executed as a script (``__name__ == "__main__"``) in a fresh namespace, in-process,
  with the page's directory as the working directory and first on ``sys.path``. A block that
  defines ``async def main()`` and calls ``asyncio.run(main())`` works as written.
- ``toml``, ``yaml``, ``json``: parsed. A mapping with ``models`` or ``defaults`` and without
  ``resolver`` (every healthkit output carries the resolver figures, no config does) is a
  healthkit config: it must load with ``healthkit.load_config`` and the installed plugins.
- ``sh``, ``bash``, ``console``: run by ``bash`` in the page's directory, with the virtual
  environment's ``bin`` first on ``PATH`` (so ``healthkit`` is the real console script). In a
  ``console`` block only the lines that start with ``$ `` are commands. Each command must exit 0,
  or the code its line ends with as ``# exit N``, or the block's ``expect-exit N``. A command
  ending in ``&`` is not checked; whatever a block leaves running is killed when it ends. Only
  the commands named in ``SHELL_COMMANDS`` below may run (``python`` only as
  ``python -m http.server``): anything else (``pip install``, ``kubectl``, ``docker``, ``curl``
  against a server the page starts, a benchmark run) needs a ``no-run`` marker.
- any other language (``text``, none): not run; it is output, a grammar or a formula.

Markers are HTML comments (invisible on the rendered page). Block markers stand on the lines
directly above the fence, one per line:

- ``<!-- snippet: no-run (REASON) -->``: do not run this block; REASON must say why.
- ``<!-- snippet: file NAME -->``: write the block to NAME (relative to the page's directory)
  for the blocks below it; a config is still loaded, a ``python`` module is compiled, not run.
- ``<!-- snippet: expect-exit N -->``: every command of this shell block exits N unless its
  line says otherwise with ``# exit N``.

Page markers stand anywhere on the page (conventionally above the first block that needs them):

- ``<!-- snippet: predictor PORT [MODEL ...] -->``: a loopback Open Inference Protocol server
  (``healthkit.testing.OipServer``, v2 and KServe v1) runs while the page's blocks run, with the
  named models ready; every ``PORT`` in the page's blocks becomes its port.
- ``<!-- snippet: port PORT ... -->``: every listed ``PORT`` in the page's blocks becomes a free
  loopback port on which nothing listens (unless a block starts something there), so "nothing
  listens on 8080" holds on any machine.
- ``<!-- snippet: env NAME=VALUE ... -->``: these environment variables are set for the page's
  blocks (a config's ``${NAME}``).
- ``<!-- snippet: copy SOURCE [NAME] -->``: before the page's blocks run, the repository file
  SOURCE, or ``PAGE.md:FILE`` (the block that page marks ``file FILE``), is written to NAME
  (default: SOURCE's path, or FILE) in the page's directory, its ports substituted as above.

``HOME`` is the page's directory too, so ``~/...`` stays inside it.

No block ever reaches an address off this machine.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from healthkit import ConfigError, StrategyRegistry, load_config
from healthkit.testing import OipServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: First words of the shell commands the test runs; anything else needs a ``no-run`` marker.
SHELL_COMMANDS = frozenset(
    {"healthkit", "mkdir", "touch", "echo", "printf", "cat", "cd", "ls", "sleep", "kill", "test"}
    | {"grep", "head", "tail", "wc", "rm", "cp", "mv", "export", "true", "false", "python"}
)
SHELL_TIMEOUT = 60.0

MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$")
OPEN_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
EXIT_COMMENT = re.compile(r"\s#\s*exit\s+(\d+)\s*$")


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted(ROOT.glob("examples/*/README.md")) + sorted(ROOT.glob("plugins/*/README.md"))
    return [p for p in found if p.is_file()]


@attrs.frozen(kw_only=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    markers: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


@attrs.frozen(kw_only=True)
class Page:
    path: Path
    blocks: tuple[Block, ...]
    markers: tuple[str, ...]  # every marker on the page, block markers included


def parse_page(path: Path) -> Page:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    markers: list[str] = []
    i = 0
    while i < len(lines):
        opening = OPEN_FENCE.match(lines[i])
        if not opening:
            if m := MARKER.match(lines[i]):
                markers.append(m.group(1))
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = i + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence) and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        above: list[str] = []
        j = i - 1
        while j >= 0 and (m := MARKER.match(lines[j])):
            above.insert(0, m.group(1))
            j -= 1
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end]]
        blocks.append(
            Block(
                page=path,
                line=i + 1,
                lang=opening["lang"].lower(),
                text="".join(f"{line}\n" for line in body),
                markers=tuple(above),
            )
        )
        i = end + 1
    return Page(path=path, blocks=tuple(blocks), markers=tuple(markers))


PAGES = {page.path: page for page in map(parse_page, pages())}
BLOCKS = [block for page in PAGES.values() for block in page.blocks]


def test_there_are_snippets() -> None:
    langs = {block.lang for block in BLOCKS}
    assert {"python", "toml", "sh"} <= langs
    assert len(BLOCKS) > 50


# -- markers ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BlockMarkers:
    no_run: str | None = None
    file: str | None = None
    expect_exit: int = 0


def block_markers(block: Block) -> BlockMarkers:
    found: dict[str, Any] = {}
    for marker in block.markers:
        if m := re.fullmatch(r"no-run\s*\((.*)\)", marker):
            assert m.group(1).strip(), f"{block.id}: no-run needs a reason in the parentheses"
            found["no_run"] = m.group(1).strip()
        elif m := re.fullmatch(r"file\s+(\S+)", marker):
            found["file"] = m.group(1)
        elif m := re.fullmatch(r"expect-exit\s+(\d+)", marker):
            found["expect_exit"] = int(m.group(1))
        elif not re.fullmatch(r"(predictor|port|env|copy)\b.*", marker):
            pytest.fail(f"{block.id}: unknown snippet marker {marker!r}")
    return BlockMarkers(**found)


def test_every_marker_is_known() -> None:
    for page in PAGES.values():
        for marker in page.markers:
            assert re.fullmatch(
                r"no-run\s*\(.*\S.*\)|file\s+\S+|expect-exit\s+\d+|predictor\s+\d+(\s+\S+)*"
                r"|port(\s+\d+)+|env(\s+[A-Za-z_]\w*=\S*)+|copy\s+\S+(\s+\S+)?",
                marker,
            ), f"{page.path.relative_to(ROOT)}: unknown or malformed snippet marker {marker!r}"


# -- the page's workspace --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Workspace:
    """A page's directory, its substituted ports, its predictor and the file blocks written."""

    def __init__(self, page: Page, root: Path) -> None:
        self.page = page
        self.dir = root
        self.ports: dict[str, str] = {}
        self.predictors: list[OipServer] = []
        self.written: set[int] = set()
        self.env: dict[str, str] = {}
        copies: list[list[str]] = []
        for marker in page.markers:
            words = marker.split()
            if words[0] == "predictor":
                server = OipServer(dict.fromkeys(words[2:], "ready")).start()
                self.predictors.append(server)
                self.ports[words[1]] = str(server.port)
            elif words[0] == "port":
                self.ports.update((word, str(free_port())) for word in words[1:])
            elif words[0] == "env":
                self.env.update(word.split("=", 1) for word in words[1:])  # type: ignore[misc]
            elif words[0] == "copy":
                copies.append(words[1:])
        for source, *name in copies:
            text, default = copied(source)
            dest = self.dir / (name[0] if name else default)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(self.substitute(text), encoding="utf-8")

    def text(self, block: Block) -> str:
        return self.substitute(block.text)

    def substitute(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"(?<!\d){old}(?!\d)", new, text)
        return text

    def write_files_above(self, block: Block) -> None:
        """Write the ``file`` blocks above ``block`` (in order), so one block runs alone too."""
        for earlier in self.page.blocks:
            if earlier.line >= block.line:
                break
            self.write_file(earlier)

    def write_file(self, block: Block) -> Path | None:
        name = block_markers(block).file
        if name is None:
            return None
        path = self.dir / name
        if block.line not in self.written:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.text(block), encoding="utf-8")
            self.written.add(block.line)
        return path

    def close(self) -> None:
        for server in self.predictors:
            server.stop()


def copied(source: str) -> tuple[str, str]:
    """The text of a ``copy`` marker's SOURCE, and the name it gets by default."""
    page, _, name = source.partition(":")
    if not name:
        return (ROOT / source).read_text(encoding="utf-8"), source
    marked = [block for block in PAGES[ROOT / page].blocks if block_markers(block).file == name]
    assert len(marked) == 1, f"{page}: expected one block marked `file {name}`"
    return marked[0].text, name


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Workspace]]:
    opened: dict[Path, Workspace] = {}

    class Lazy(dict[Path, Workspace]):
        def __missing__(self, key: Path) -> Workspace:
            name = re.sub(r"\W", "_", key.relative_to(ROOT).as_posix())
            opened[key] = Workspace(PAGES[key], tmp_path_factory.mktemp(name))
            return opened[key]

    try:
        yield Lazy()
    finally:
        for workspace in opened.values():
            workspace.close()


@pytest.fixture(scope="module")
def registry() -> StrategyRegistry:
    return StrategyRegistry()


# -- running a block -------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_snippet(
    block: Block,
    workspaces: dict[Path, Workspace],
    registry: StrategyRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    markers = block_markers(block)
    if markers.no_run is not None:
        pytest.skip(f"no-run: {markers.no_run}")
    workspace = workspaces[block.page]
    for name, value in workspace.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(workspace.dir))
    for name in [name for name in os.environ if name.startswith("HEALTHKIT_")]:
        monkeypatch.delenv(name)
    workspace.write_files_above(block)
    written = workspace.write_file(block)
    text = workspace.text(block)
    if block.lang == "python":
        if written is not None:
            compile(text, str(written), "exec")
        else:
            run_python(block.id, text, workspace.dir, monkeypatch)
    elif block.lang in ("toml", "yaml", "yml", "json"):
        check_data(block, text, workspace.dir, registry)
    elif block.lang in ("sh", "bash", "shell", "console"):
        if written is None:
            run_shell(block, text, workspace.dir, markers.expect_exit)
    else:
        pytest.skip(f"{block.lang or 'plain'} block: shown, not run")


def run_python(name: str, text: str, where: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(where)
    monkeypatch.syspath_prepend(str(where))
    modules = set(sys.modules)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = compile(text, name, "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    finally:
        # A block's own modules and logging setup stay with the block.
        for module in set(sys.modules) - modules:
            if str(where) in str(getattr(sys.modules[module], "__file__", "") or ""):
                del sys.modules[module]
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def check_data(block: Block, text: str, where: Path, registry: StrategyRegistry) -> None:
    suffix = {"yml": "yaml"}.get(block.lang, block.lang)
    if block.lang == "toml":
        docs: list[Any] = [tomllib.loads(text)]
    elif block.lang == "json":
        docs = [json.loads(text)]
    else:
        docs = list(yaml.safe_load_all(text))
    for doc in docs:
        keys = set(doc) if isinstance(doc, dict) else set()
        is_config = bool(keys & {"models", "defaults"}) and "resolver" not in keys
        if is_config:
            path = where / f"snippet-{block.line}.{suffix}"
            path.write_text(text, encoding="utf-8")
            try:
                load_config(path, registry=registry)
            except ConfigError as exc:
                pytest.fail(f"{block.id}: the config does not load:\n{exc}")


def shell_commands(block: Block, text: str) -> list[tuple[int, str]]:
    """The block's commands (continuation lines joined) with the line each starts on."""
    commands: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(text.splitlines(), start=block.line + 1):
        line = raw
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            start = offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        commands.append((start, " ".join([*pending, line])))
        pending = []
    if pending:
        commands.append((start, " ".join(pending)))
    return commands


def command_words(command: str) -> list[list[str]]:
    """The words of each simple command of ``command`` (pipes, ``&&``, ``;``, ``&`` split it)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    simple: list[list[str]] = [[]]
    for token in lexer:
        if token in ("|", "||", "&&", ";", "&", "(", ")"):
            simple.append([])
        else:
            simple[-1].append(token)
    return [words for words in simple if words]


def first_word(words: list[str]) -> str:
    for word in words:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            return word
    return ""


def run_shell(block: Block, text: str, where: Path, expect_exit: int) -> None:
    script = [
        "trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT",
    ]
    for line, command in shell_commands(block, text):
        for words in command_words(command):
            word = first_word(words)
            if word == "python":
                allowed = words[words.index(word) + 1 : words.index(word) + 3] == [
                    "-m",
                    "http.server",
                ]
            else:
                allowed = word in SHELL_COMMANDS or not word
            assert allowed, (
                f"{block.id}, line {line}: `{word}` is not a command this test runs; "
                f"mark the block `<!-- snippet: no-run (why) -->` ({command!r})"
            )
        expected = int(m.group(1)) if (m := EXIT_COMMENT.search(command)) else expect_exit
        script.append(command)
        if command.rstrip().endswith("&") and not command.rstrip().endswith("&&"):
            continue
        where_line = f"{block.page.relative_to(ROOT).as_posix()}:{line}"
        script.append(
            f'__rc=$?; if [ "$__rc" != {expected} ]; then '
            f'echo "{where_line}: exit $__rc, expected {expected}" >&2; exit 90; fi'
        )
    # os.environ carries the page's env markers and HOME (set by the test).
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    proc = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=where,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=SHELL_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{block.id}: still running after {SHELL_TIMEOUT:.0f}s\n{output}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running
    assert proc.returncode == 0, f"{block.id} failed:\n{output}"
