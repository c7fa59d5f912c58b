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
  ``python -m http.server``, ``curl`` only against loopback URLs): anything else (``pip install``,
  ``kubectl``, ``docker``, ``curl`` to another host, a benchmark run) needs a ``no-run`` marker.
- any other language (``text``, none): not run; it is output, a grammar or a formula.

Markers are HTML comments (invisible on the rendered page). Block markers stand on the lines
directly above the fence, one per line:

- ``<!-- snippet: no-run (REASON) -->``: do not run this block; REASON must say why.
- ``<!-- snippet: file NAME -->``: write the block to NAME (relative to the page's directory)
  for the blocks below it; a config is still loaded, a ``python`` module is compiled, not run.
- ``<!-- snippet: expect-exit N -->``: every command of this shell block exits N unless its
  line says otherwise with ``# exit N``.
- ``<!-- snippet: background PORT -->``: this shell block is a server (``healthkit serve``): it
  starts in the background, the test passes once something listens on PORT (which the page's
  ``port`` marker must list), and it runs while the page's later blocks run (then SIGTERM).

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
import time
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


def parse_page(path: Path, text: str | None = None) -> Page:
    if text is None:
        text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
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
    background: str | None = None


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
        elif m := re.fullmatch(r"background\s+(\d+)", marker):
            found["background"] = m.group(1)
        elif not re.fullmatch(r"(predictor|port|env|copy)\b.*", marker):
            pytest.fail(f"{block.id}: unknown snippet marker {marker!r}")
    return BlockMarkers(**found)


def test_every_marker_is_known() -> None:
    for page in PAGES.values():
        for marker in page.markers:
            assert re.fullmatch(
                r"no-run\s*\(.*\S.*\)|file\s+\S+|expect-exit\s+\d+|background\s+\d+|predictor\s+\d+(\s+\S+)*"
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
        self.background: list[subprocess.Popen[bytes]] = []
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

    def start_background(self, block: Block, port: str) -> None:
        """Start the block's command and wait until it listens on ``port`` (or ends)."""
        mapped = self.ports.get(port)
        assert mapped, f"{block.id}: list {port} in the page's `port` marker"
        log = self.dir / f"background-{block.line}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", self.text(block)],
                cwd=self.dir,
                env=shell_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append(proc)
        deadline = time.monotonic() + SHELL_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", int(mapped))) == 0:
                    return
            time.sleep(0.1)
        output = log.read_text(encoding="utf-8", errors="replace")
        pytest.fail(
            f"{block.id}: nothing listens on {port} ({mapped}); exit {proc.poll()}\n{output}"
        )

    def stop_background(self) -> None:
        while self.background:
            proc = self.background.pop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        self.stop_background()
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
            for other in opened.values():
                other.stop_background()  # a page's servers run while its own blocks run
            name = re.sub(r"\W", "_", key.relative_to(ROOT).as_posix())
            opened[key] = self[key] = Workspace(PAGES[key], tmp_path_factory.mktemp(name))
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


#: Languages a block is run in; any other block (``text``, a plain fence) is shown only.
RUN_LANGS = frozenset({"python", "toml", "yaml", "yml", "json", "sh", "bash", "shell", "console"})


def _runs(block: Block) -> bool:
    return block.lang in RUN_LANGS and block_markers(block).no_run is None


# Only blocks that run become tests: a block marked no-run (its reason is checked by
# block_markers, for every block, in test_every_block_not_run_says_why) or shown as
# text is no test at all, rather than a skipped one.
RUNNABLE = [block for block in BLOCKS if _runs(block)]


def test_every_block_not_run_says_why() -> None:
    shown = [block for block in BLOCKS if not _runs(block)]
    for block in shown:
        reason = block_markers(block).no_run  # an empty no-run reason fails in here
        assert block.lang not in RUN_LANGS or reason, f"{block.id}: runs, or says why not"
    assert len(RUNNABLE) > 50


@pytest.mark.timeout(90)
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_snippet(
    block: Block,
    workspaces: dict[Path, Workspace],
    registry: StrategyRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    markers = block_markers(block)
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
        if markers.background is not None:
            check_commands(block, text)
            workspace.start_background(block, markers.background)
        elif written is None:
            run_shell(block, text, workspace.dir, markers.expect_exit)


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


#: Shell keywords before a command (``until CMD; do CMD; done``); ``for`` lists words, runs none.
KEYWORDS = frozenset({"until", "while", "if", "then", "else", "elif", "do", "!", "{"})
CLOSERS = frozenset({"done", "fi", "}", "for"})


def first_word(words: list[str]) -> str:
    for word in words:
        if word in CLOSERS:
            return ""
        if word not in KEYWORDS and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            return word
    return ""


LOOPBACK_URL = re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?")
HOST_PORT = re.compile(r"(https?://)?[\w.\[\]:-]+:\d+(/\S*)?")


def allowed(words: list[str]) -> bool:
    word = first_word(words)
    rest = words[words.index(word) + 1 :] if word else []
    if word == "python":
        return rest[:2] == ["-m", "http.server"]
    if word == "curl":  # only against this machine, and a URL is named
        urls = [w for w in rest if HOST_PORT.fullmatch(w) or w.startswith(("http:", "https:"))]
        return bool(urls) and all(LOOPBACK_URL.fullmatch(url) for url in urls)
    return word in SHELL_COMMANDS or not word


def check_commands(block: Block, text: str) -> list[tuple[int, str]]:
    commands = shell_commands(block, text)
    for line, command in commands:
        for words in command_words(command):
            assert allowed(words), (
                f"{block.id}, line {line}: `{first_word(words)}` is not a command this test "
                f"runs; mark the block `<!-- snippet: no-run (why) -->` ({command!r})"
            )
    return commands


def shell_env() -> dict[str, str]:
    # os.environ carries the page's env markers and HOME (set by the test).
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def run_shell(block: Block, text: str, where: Path, expect_exit: int) -> None:
    script = [
        "trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT",
    ]
    for line, command in check_commands(block, text):
        expected = int(m.group(1)) if (m := EXIT_COMMENT.search(command)) else expect_exit
        script.append(command)
        if command.rstrip().endswith("&") and not command.rstrip().endswith("&&"):
            continue
        where_line = f"{block.page.relative_to(ROOT).as_posix()}:{line}"
        script.append(
            f'__rc=$?; if [ "$__rc" != {expected} ]; then '
            f'echo "{where_line}: exit $__rc, expected {expected}" >&2; exit 90; fi'
        )
    proc = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=where,
        env=shell_env(),
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


# -- the harness fails when a snippet breaks -------------------------------------------------

SAMPLE = """\
# A page

<!-- snippet: port 8080 -->
<!-- snippet: file app.toml -->
```toml
[models.alpha.health_check]
strategy = "noop"
```

- a list item:

  ```python
  print("indented")
  ```

<!-- snippet: no-run (needs a cluster) -->
```sh
kubectl apply -f app.yaml
```

```text
not run
```
"""


def sample_block(lang: str, body: str) -> Block:
    return Block(page=ROOT / "docs" / "sample.md", line=1, lang=lang, text=body, markers=())


def test_parse_page_reads_fences_lines_and_markers() -> None:
    page = parse_page(ROOT / "docs" / "sample.md", SAMPLE)
    assert [(b.line, b.lang) for b in page.blocks] == [
        (5, "toml"),
        (12, "python"),
        (17, "sh"),
        (21, "text"),
    ]
    assert page.blocks[0].markers == ("port 8080", "file app.toml")
    assert page.blocks[1].text == 'print("indented")\n'
    assert block_markers(page.blocks[2]).no_run == "needs a cluster"
    assert page.markers == ("port 8080", "file app.toml", "no-run (needs a cluster)")
    assert page.blocks[1].id == "docs/sample.md:12"


def test_a_no_run_marker_needs_a_reason() -> None:
    block = attrs.evolve(sample_block("sh", "true\n"), markers=("no-run ()",))
    with pytest.raises(AssertionError, match="needs a reason"):
        block_markers(block)


def test_a_failing_command_fails_the_block(tmp_path: Path) -> None:
    block = sample_block("sh", "healthkit validate missing.toml\n")
    with pytest.raises(AssertionError, match=r"sample.md:2: exit 3, expected 0"):
        run_shell(block, block.text, tmp_path, expect_exit=0)


def test_the_documented_exit_code_is_checked(tmp_path: Path) -> None:
    ok = sample_block("sh", "false   # exit 1\ntrue\n")
    run_shell(ok, ok.text, tmp_path, expect_exit=0)
    wrong = sample_block("sh", "true   # exit 2\n")
    with pytest.raises(AssertionError, match="exit 0, expected 2"):
        run_shell(wrong, wrong.text, tmp_path, expect_exit=0)
    with pytest.raises(AssertionError, match="exit 0, expected 2"):
        run_shell(ok, "true\n", tmp_path, expect_exit=2)


def test_an_unknown_command_asks_for_a_marker(tmp_path: Path) -> None:
    block = sample_block("sh", "echo hi && pip install something\n")
    with pytest.raises(AssertionError, match="`pip` is not a command this test runs"):
        run_shell(block, block.text, tmp_path, expect_exit=0)
    assert not any(tmp_path.iterdir())


def test_a_broken_python_block_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NameError):
        run_python("docs/sample.md:1", "print(undefined)\n", tmp_path, monkeypatch)


def test_a_config_that_does_not_load_fails(tmp_path: Path, registry: StrategyRegistry) -> None:
    block = sample_block("toml", '[models.alpha.health_check]\nstrategy = "nope"\n')
    with pytest.raises(pytest.fail.Exception, match="unknown strategy 'nope'"):
        check_data(block, block.text, tmp_path, registry)
    output = sample_block("json", '{"models": {"alpha": {"status": "healthy"}}, "resolver": {}}')
    check_data(output, output.text, tmp_path, registry)  # an output, parsed only
    with pytest.raises(json.JSONDecodeError):
        check_data(sample_block("json", "{...}"), "{...}", tmp_path, registry)


def test_curl_runs_only_against_this_machine() -> None:
    assert allowed(["curl", "-i", "http://127.0.0.1:8000/readyz"])
    assert allowed(["curl", "-s", "http://localhost:8000/metrics"])
    assert not allowed(["curl", "http://predictor.default.svc:8080/v2/health/ready"])
    assert not allowed(["curl", "-s", "10.0.0.5:8080/v2/health/ready"])
    assert not allowed(["curl", "--version"])
    assert not allowed(["pip", "install", "x"])
    assert allowed(["A=1", "healthkit", "check", "x.toml"])
    assert allowed(["until", "curl", "-s", "http://127.0.0.1:8080/"])
    assert not allowed(["while", "pip", "install", "x"])


def test_a_page_keeps_one_workspace(workspaces: dict[Path, Workspace]) -> None:
    page = ROOT / "docs" / "quickstart.md"
    assert workspaces[page] is workspaces[page]
