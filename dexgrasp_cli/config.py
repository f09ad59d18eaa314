"""Typed configuration: yaml files plus ``key=value`` overrides, validated into dataclasses.

Every key must be known, every value must have the field's type and meet its declared bound
(dexgrasp_tasks/bounds.py); anything else is a ``ConfigError`` with a one-line message naming the key
and what is accepted.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from dexgrasp_tasks.bounds import OutOfBounds
from dexgrasp_tasks.dextrah.settings import TaskSettings

# An installed package carries the configs as dexgrasp_cli/yaml/; a source tree (an editable
# install) has them beside the package.
_PACKAGED_YAML = Path(__file__).resolve().parent / "yaml"
CONFIG_DIR = _PACKAGED_YAML if _PACKAGED_YAML.is_dir() else Path(__file__).resolve().parents[1] / "yaml"
TASK_YAML = CONFIG_DIR / "task.yaml"
TRAIN_YAML = CONFIG_DIR / "train.yaml"
DISTILL_YAML = CONFIG_DIR / "distill.yaml"


class ConfigError(ValueError):
    """Invalid configuration; the message is one line."""


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item_types = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"{where} must have {len(item_types)} items, got {len(value)}")
        return tuple(_convert(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # yaml reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    raise ConfigError(f"{where} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping under key ``where``, rejecting unknown and missing keys
    and values outside their bounds."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key '{where}.{unknown[0]}'; accepted: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{where}.{name}'")
    try:
        return cls(**values)
    except OutOfBounds as err:
        raise ConfigError(err.at(where)) from None


def apply_override(tree: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in a nested mapping; the path must already exist."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} must look like key=value, e.g. task.episode_length=300")
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(node) if isinstance(node, dict) else "none"
            prefix = ".".join(parts[:depth]) or "top level"
            raise ConfigError(f"unknown key '{key}' in override; keys under {prefix}: {known}")
        if depth == len(parts) - 1:
            node[part] = yaml.safe_load(raw)
        else:
            node = node[part]


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid yaml: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    return data


def split_overrides(overrides: typing.Iterable[str], roots: tuple[str, ...]) -> dict[str, list[str]]:
    """``--set`` assignments grouped by their first key (``task``, ``train``), which must be known."""
    groups: dict[str, list[str]] = {root: [] for root in roots}
    for assignment in overrides:
        root = assignment.partition("=")[0].partition(".")[0]
        if root not in groups:
            raise ConfigError(f"unknown key '{assignment.partition('=')[0]}' in override; keys start with {' or '.join(roots)}")
        groups[root].append(assignment)
    return groups


def load_section(cls: type, root: str, path: Path, overrides: typing.Iterable[str] = ()) -> Any:
    """Dataclass ``cls`` from the ``root`` mapping of a yaml file, with ``root.x.y=value`` overrides."""
    return section_from_tree(cls, root, load_yaml(path), overrides, path.name)


def section_from_tree(cls: type, root: str, tree: dict, overrides: typing.Iterable[str] = (), source: str = "config") -> Any:
    """Dataclass ``cls`` from ``tree[root]`` (e.g. a config saved in a checkpoint), with overrides."""
    tree = copy.deepcopy(tree)
    for assignment in overrides:
        apply_override(tree, assignment)
    unknown = sorted(set(tree) - {root})
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in {source}; accepted: {root}")
    return from_dict(cls, tree.get(root), root)


def load_task_settings(overrides: typing.Iterable[str] = (), path: Path = TASK_YAML) -> TaskSettings:
    """The task settings from yaml, with ``task.x.y=value`` overrides applied."""
    return load_section(TaskSettings, "task", path, overrides)
