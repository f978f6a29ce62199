"""The ``nasntk`` command: a thin typer layer over the Python API.

Each command group lives in its own module (``cli/kernel.py``, ``cli/score.py``, ``cli/search.py``,
``cli/results.py``, ``cli/validate.py``) exposing ``register(app)``. This module only assembles them and turns user
errors (:class:`nasntk.errors.NasntkError`) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from nasntk.cli import kernel as _kernel
from nasntk.cli import results as _results
from nasntk.cli import score as _score
from nasntk.cli import search as _search
from nasntk.cli import validate as _validate
from nasntk.errors import DatabaseUnavailable, NasntkError

app = typer.Typer(
    name="nasntk",
    help="Training-free neural architecture search from the pNTK at initialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE = {"verbose": False}


def _print_version(value: bool) -> None:
    if value:
        from nasntk import __version__

        typer.echo(f"nasntk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show full tracebacks (for bug reports)."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """nasntk ranks untrained architectures by their pNTK (condition number, kernel regression)."""
    _STATE["verbose"] = verbose or bool(os.environ.get("NASNTK_VERBOSE"))


for _module in (_kernel, _score, _search, _results, _validate):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args or bool(os.environ.get("NASNTK_VERBOSE"))
    try:
        # typer >= 0.20 vendors click (typer._click): catch typer's classes and click's alike.
        rc = app(args=args, prog_name="nasntk", standalone_mode=False)
    except (click.exceptions.Exit, typer.Exit) as exc:
        return int(exc.exit_code or 0)
    except (click.exceptions.Abort, typer.Abort):
        print("nasntk: interrupted", file=sys.stderr)
        return 130
    except (click.ClickException, typer.TyperException) as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        message = " ".join(str(exc.format_message()).split())
        if message:  # (empty when no_args_is_help has just printed the help)
            print(f"nasntk: error: {message} (see --help)", file=sys.stderr)
        return 2
    except (NasntkError, DatabaseUnavailable) as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"nasntk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasntk: interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0  # typer.Exit(code) returns code when not standalone


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
