"""`python -m kretain ...`: the same as the `kretain` command."""

from kretain.cli import cli

if __name__ == "__main__":
    cli(prog_name="kretain")
