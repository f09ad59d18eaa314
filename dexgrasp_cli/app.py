"""The ``dexgrasp`` command line: the app, its global options and the entry point.

Each subcommand lives in dexgrasp_cli/commands/. Every bad input is caught before any heavy work
(no scene build, no kernel compile) and reported as one line ``error: <what was wrong; what is
accepted>`` on stderr with exit code 2 (see dexgrasp_cli/checks.py). Subcommands are registered
only once they work.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from dexgrasp_cli.checks import VERBOSE_ENV, cli_errors
from dexgrasp_cli.commands.bench import bench_command, bench_train_command
from dexgrasp_cli.commands.bench_memory import bench_memory_command
from dexgrasp_cli.commands.distill import distill_command
from dexgrasp_cli.commands.evaluate import eval_command
from dexgrasp_cli.commands.report import report_command
from dexgrasp_cli.commands.train_teacher import train_teacher_command

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException

app = typer.Typer(
    name="dexgrasp",
    help="Dexterous grasping with a Kuka arm and an Allegro hand on MuJoCo Warp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
COMMANDS = (
    ("eval", eval_command),
    ("train-teacher", train_teacher_command),
    ("distill", distill_command),
    ("bench", bench_command),
    ("bench-train", bench_train_command),
    ("bench-memory", bench_memory_command),
    ("report", report_command),
)
for _name, _command in COMMANDS:
    app.command(_name)(cli_errors(_command))


def _package_version() -> str:
    try:
        return version("dexgrasp")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"dexgrasp {_package_version()}")
        raise typer.Exit()


@app.callback()
def global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also show the libraries' own start-up output (warp's CUDA driver probe, its module loads).")
    ] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print dexgrasp's version and exit.")
    ] = False,
) -> None:
    """Dexterous grasping with a Kuka arm and an Allegro hand on MuJoCo Warp."""
    if verbose:  # an environment variable, so that a layout's worker processes inherit it
        os.environ[VERBOSE_ENV] = "1"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; parse errors are one ``error:`` line with exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="dexgrasp", standalone_mode=False)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except ClickException as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare ``dexgrasp``: show the help
            err.show()
            sys.exit(0)
        _fail_line = " ".join(err.format_message().split())
        print(f"error: {_fail_line}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
