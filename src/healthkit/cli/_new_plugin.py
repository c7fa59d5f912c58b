"""``healthkit new-plugin NAME [DIR]``: write a strategy plugin distribution, ready to install.

The templates live in ``_plugin_template/`` beside this module (``*.tmpl`` files, so
no tool takes them for this package's own code). Placeholders such as ``__NAME__``
are replaced in file contents and in paths.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["new_plugin", "plugin_names", "write_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
#: Strategies healthkit itself registers: a plugin of the same name would be refused.
_BUILTIN = ("composite", "grpc", "healthkit", "http", "noop")
_SUFFIX = ".tmpl"
#: Longer names would not fit the generated code's line length.
_MAX_NAME = 40


def plugin_names(name: str) -> dict[str, str]:
    """Every placeholder of the templates for plugin ``name``; ``ValueError`` when unusable."""
    if not _NAME.match(name) or len(name) > _MAX_NAME:
        raise ValueError(
            f"{name!r} is not a usable name: use lower-case letters and digits, "
            f"words joined by '-' or '_', starting with a letter, at most {_MAX_NAME} "
            "characters (e.g. 'redis', 'my-check')"
        )
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in strategy; pick another name")
    words = re.split(r"[-_]", name)
    return {
        "__NAME__": name,
        "__DIST__": "healthkit-" + "-".join(words),
        "__PACKAGE__": "healthkit_" + "_".join(words),
        "__CLASS__": "".join(word.capitalize() for word in words),
        "__HEALTHKIT_VERSION__": _healthkit_version(),
    }


def _healthkit_version() -> str:
    try:
        version = importlib.metadata.version("model-healthkit")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0.1"
    # The release the plugin is written against, without local or dev parts.
    return re.split(r"[^0-9.]", version, maxsplit=1)[0].strip(".") or "0.1"


def _fill(text: str, names: dict[str, str]) -> str:
    for placeholder, value in names.items():
        text = text.replace(placeholder, value)
    return text


def _templates(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            found.extend(_templates(child, rel + "/"))
        else:
            found.append((rel, child))
    return found


def write_plugin(name: str, directory: Path | None = None, *, force: bool = False) -> list[Path]:
    """Write plugin distribution ``name`` into ``directory`` (default ``./healthkit-NAME``).

    Returns the files written. Refuses a directory that is not empty unless ``force``.
    """
    names = plugin_names(name)
    target = Path(directory) if directory is not None else Path(names["__DIST__"])
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty (use --force to write into it)")
    root = resources.files("healthkit.cli").joinpath("_plugin_template")
    written: list[Path] = []
    for rel, source in _templates(root):
        out_rel = _fill(rel.removesuffix(_SUFFIX), names)
        path = target / out_rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(source.read_text(encoding="utf-8"), names), encoding="utf-8")
        written.append(path)
    return written


@click.command("new-plugin")
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write into DIRECTORY even if it is not empty.")
def new_plugin(name: str, directory: Path | None, force: bool) -> None:
    """Write a strategy plugin distribution NAME into DIRECTORY (default ./healthkit-NAME).

    The result installs with pip, registers strategy NAME through the `healthkit`
    entry point, and passes healthkit's conformance suite as written.
    """
    try:
        names = plugin_names(name)
        files = write_plugin(name, directory, force=force)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from None
    where = Path(directory) if directory is not None else Path(names["__DIST__"])
    click.echo(f"Wrote {names['__DIST__']} (strategy {name!r}) to {where}:")
    for path in files:
        click.echo(f"  {path.relative_to(where)}")
    click.echo("\nNext:")
    click.echo(f"  pip install -e '{where}[test]'")
    click.echo(f"  pytest {where}")
    click.echo(f"  healthkit plugins        # strategy {name!r} from {names['__DIST__']}")
