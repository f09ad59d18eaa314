"""Every task.*, train.* and distill.* setting is validated when it is loaded, before anything is built.

The settings are walked by introspecting their dataclasses, so a field added later is covered at once:
it must declare its bound (dexgrasp_tasks/bounds.py), and a wrong-typed or out-of-bound value of it
must be a one-line error that names its key, through the loaders the CLI uses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from dexgrasp_cli.checks import load_distill_settings, load_settings, load_train_settings
from dexgrasp_cli.config import DISTILL_YAML, TASK_YAML, TRAIN_YAML, load_yaml
from dexgrasp_cli.distill.settings import DistillSettings
from dexgrasp_cli.errors import UsageError
from dexgrasp_cli.learner.settings import TrainSettings
from dexgrasp_tasks.bounds import Bound, Bounded, bound
from dexgrasp_tasks.dextrah.settings import TaskSettings
from tests.test_cli import no_env, run_cli  # noqa: F401 (no_env is a fixture)

ROOTS = {"task": (TaskSettings, TASK_YAML), "train": (TrainSettings, TRAIN_YAML), "distill": (DistillSettings, DISTILL_YAML)}
LOADERS = {"task": load_settings, "train": lambda overrides: load_train_settings(overrides, num_envs=4),
           "distill": load_distill_settings}  # fmt: skip
"""The loaders the CLI uses, which turn a ConfigError into a UsageError (one ``error:`` line, exit 2)."""


@dataclass(frozen=True)
class Leaf:
    """One setting that is not itself a group of settings."""

    key: str
    owner: type
    name: str
    hint: Any
    value: Any
    """Its value in the yaml file."""

    @property
    def spec(self) -> Any:
        return getattr(self.owner, "BOUNDS", {}).get(self.name)


def _walk(cls: type, key: str, tree: dict) -> Iterator[Leaf]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint, value, sub = _without_none(hints[field.name]), tree[field.name], f"{key}.{field.name}"
        if dataclasses.is_dataclass(hint):
            yield from _walk(hint, sub, value)
            continue
        yield Leaf(sub, cls, field.name, hint, value)
        if typing.get_origin(hint) is dict:  # a mapping of settings: walk its first entry
            name = next(iter(value))
            yield from _walk(typing.get_args(hint)[1], f"{sub}.{name}", value[name])


def _without_none(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


LEAVES = [leaf for root, (cls, path) in ROOTS.items() for leaf in _walk(cls, root, load_yaml(path)[root])]
NEEDS_BOUND = [leaf for leaf in LEAVES if leaf.hint is not bool]


def test_every_number_string_tuple_and_mapping_declares_its_bound():
    missing = [leaf.key for leaf in NEEDS_BOUND if leaf.spec is None]
    assert not missing, f"declare a bound (or 'any') in the owner's BOUNDS for: {', '.join(missing)}"
    owners = {leaf.owner for leaf in NEEDS_BOUND}
    assert all(issubclass(owner, Bounded) for owner in owners), "a class with BOUNDS must derive from Bounded"
    stray = [f"{o.__name__}.{n}" for o in owners for n in o.BOUNDS if n not in {f.name for f in dataclasses.fields(o)}]
    assert not stray, f"BOUNDS names no such field: {stray}"


def _wrong_type(hint: Any) -> str:
    """An override value (as typed after ``--set key=``) of another type than ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (tuple, dict):
        return "abc"
    return {bool: "maybe", int: "1.5", float: "abc", str: "5"}[hint]


def _out_of_bounds(leaf: Leaf) -> list[Any]:
    """Values the leaf's bound refuses (none for an unbounded string, mapping or integer)."""
    spec = leaf.spec
    if isinstance(spec, tuple):
        return ["not-a-choice"]
    if isinstance(leaf.value, (str, dict)) or leaf.value is None:
        return []
    scalars = [_beyond(spec, end) for end in ("low", "high") if math.isfinite(getattr(spec, end))]
    if spec.text == "any" and leaf.hint is not int:
        scalars.append(math.nan)
    if not isinstance(leaf.value, list):
        return scalars
    bad = [[scalar, *leaf.value[1:]] for scalar in scalars]
    if typing.get_args(leaf.hint)[-1] is Ellipsis:
        bad.append([])
    if spec.order is not None:
        bad.append([leaf.value[1] + 1, leaf.value[1]])
    return bad


def _beyond(spec: Bound, end: str) -> float:
    """The nearest refused number past the ``end`` of ``spec`` (the end itself when it is open)."""
    if end == "low":
        return spec.low if spec.low_open else spec.low - 1
    return spec.high if spec.high_open else spec.high + 1


def _raw(value: Any) -> str:
    """``value`` as yaml reads it back from an override."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_raw, value)) + "]"
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and value.is_integer():  # 0, not 0.0: an int field is out of bounds, not of type
        return str(int(value))
    return str(value)


def _refused(leaf: Leaf, raw: str) -> str:
    """The one-line error of loading the leaf's settings with ``key=raw``; it names the key."""
    root = leaf.key.partition(".")[0]
    with pytest.raises(UsageError) as error:
        LOADERS[root]([f"{leaf.key}={raw}"])
    message = str(error.value)
    assert "\n" not in message and leaf.key in message, message
    return message


@pytest.mark.parametrize("leaf", LEAVES, ids=[leaf.key for leaf in LEAVES])
def test_a_wrong_type_is_one_line_naming_the_key(leaf):
    _refused(leaf, _wrong_type(leaf.hint))


OUT_OF_BOUNDS = [(leaf, _raw(value)) for leaf in NEEDS_BOUND for value in _out_of_bounds(leaf)]


@pytest.mark.parametrize("leaf, raw", OUT_OF_BOUNDS, ids=[f"{leaf.key}={raw}" for leaf, raw in OUT_OF_BOUNDS])
def test_an_out_of_bound_value_is_one_line_naming_the_key_and_what_is_accepted(leaf, raw):
    message = _refused(leaf, raw)
    assert "must" in message and "got" in message, message


def test_the_yaml_values_are_in_bounds():
    for loader in LOADERS.values():
        loader([])


def test_bound_texts():
    assert [bound("in (0, 1]").accepts(x) for x in (0, 0.5, 1, 1.5)] == [False, True, True, False]
    assert [bound(">= 1").accepts(x) for x in (0, 1)] == [False, True]
    assert [bound("< 180").accepts(x) for x in (180, -1e9)] == [False, True]
    assert not bound("any").accepts(math.nan) and bound("any").accepts(-math.inf)
    assert bound("> 0", order="<").problem((0.5, 0.5)) == "must be [low, high] with low < high, got [0.5, 0.5]"
    for text in ("positive", "in [0 1]", ">=1"):
        with pytest.raises(ValueError, match="is not 'any'"):
            bound(text)


@pytest.mark.parametrize("args, key", [
    (["train-teacher", "--set", "train.ppo.gamma=2"], "train.ppo.gamma must be in (0, 1], got 2.0"),
    (["train-teacher", "--modality", "state", "--set", "train.networks.state.mlp=[]"], "train.networks.state.mlp"),
    (["train-teacher", "--set", "task.adr.ranges.friction_scale.final=[1.2,0.3]"], "task.adr.ranges.friction_scale.final"),
    (["eval", "--set", "task.physics_dt=0"], "task.physics_dt must be > 0, got 0.0"),
    (["bench", "--set", "task.rewards.reach_sharpness=-1"], "task.rewards.reach_sharpness must be > 0, got -1.0"),
    (["distill", "--teacher", "scripted", "--set", "distill.learning_rate=-1"], "distill.learning_rate must be > 0"),
    (["distill", "--teacher", "scripted", "--set", "distill.stereo.heads=0"], "distill.stereo.heads must be >= 1"),
])  # fmt: skip
def test_the_cli_refuses_before_building_anything(args, key, tmp_path, capsys, no_env):
    run_dir = ["--run-dir", str(tmp_path / "run")] if args[0] in ("train-teacher", "distill") else []
    code, out, err = run_cli([*args, *run_dir], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], err
    assert not (tmp_path / "run").exists()
