"""``python -m healthkit``: the same CLI as the ``healthkit`` console script."""

from healthkit.cli import cli

if __name__ == "__main__":
    cli(prog_name="healthkit")
