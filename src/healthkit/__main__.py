"""``python -m healthkit``: the same CLI as the ``healthkit`` console script."""

from healthkit.cli import main

if __name__ == "__main__":
    main(prog_name="healthkit")
