"""Options that several subcommands share, with one help text each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a yaml/task.yaml value, e.g. task.episode_length=200 (repeatable)."),
]
TaskTrainSetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override yaml/task.yaml (task.*) or yaml/train.yaml (train.*); repeatable."),
]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the worlds' random numbers.")]
JsonOption = Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Also write the results to this JSON file (atomically).")]
ResOption = Annotated[Optional[str], typer.Option("--res", metavar="WxH", help="Camera resolution, e.g. 160x120 (default: task.cameras.resolution).")]
