"""The distribution name: ``healthkit`` on the package index is someone else's project.

``pip install 'healthkit[grpc]'`` once installed an unrelated package (and no grpcio).
This project is published as ``model-healthkit``; the import name stays ``healthkit``.
Every install line and every hint the code prints must name this project's distribution.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
DIST = "model-healthkit"

#: ``healthkit[extra]`` or ``healthkit>=`` not preceded by a name character or ``-``:
#: a requirement on the other project.
FOREIGN = re.compile(r"(?<![\w\-.])healthkit(\[[\w,]+\]|>=)")


def _texts() -> list[Path]:
    paths = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "pyproject.toml"]
    paths += sorted((ROOT / "docs").rglob("*.md"))
    paths += sorted((ROOT / "src" / "healthkit").rglob("*.py"))
    paths += sorted((ROOT / "src" / "healthkit" / "cli" / "_plugin_template").rglob("*.tmpl"))
    paths += sorted((ROOT / "plugins").glob("*/pyproject.toml"))
    paths += sorted((ROOT / "examples").rglob("*"))
    return [p for p in paths if p.is_file()]


def test_the_project_is_published_under_its_own_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DIST
    assert importlib.metadata.version(DIST) == project["version"]


def test_no_line_installs_or_requires_the_other_healthkit() -> None:
    offenders = []
    for path in _texts():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if FOREIGN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "lines naming the unrelated 'healthkit' distribution:\n" + "\n".join(
        offenders
    )


def test_plugins_depend_on_this_distribution() -> None:
    for pyproject in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
        assert any(d.startswith(f"{DIST}>=") for d in deps), pyproject
