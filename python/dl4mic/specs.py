"""Network specs from `model-specs/`: the single source for parameters, CLI options, dialogs and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

SPEC_DIR = Path(__file__).resolve().parent / "model_specs"
TRAINING_SPEC = "training"
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str
    level: str = "advanced"
    range: tuple | None = None
    choices: tuple | None = None

    def parse(self, value: Any) -> Any:
        """Convert a CLI/API value to the declared type and check its range or choices.

        Type `shape` (patch sizes) takes one integer for every axis (`64`) or one per axis (`16,64,64`,
        slowest axis first, as ZYX); it stays an int when one number is given."""
        if self.type == "shape":
            return self._parse_shape(value)
        try:
            if self.type == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    value = low in ("true", "1", "yes", "on")
                else:
                    value = bool(value)
            else:
                value = _TYPES[self.type](value)
        except (TypeError, ValueError):
            raise UserError(f"Parameter {self.name} must be of type {self.type}, not {value!r}; "
                            f"give e.g. {self.name}={self.default}.") from None
        if self.choices is not None and value not in self.choices:
            raise UserError(f"Parameter {self.name}={value!r} is not one of {list(self.choices)}; pick one of those.")
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            raise UserError(f"Parameter {self.name}={value} is outside {list(self.range)}; choose a value in that range.")
        return value

    def _parse_shape(self, value: Any) -> int | list[int]:
        items = value.replace("x", ",").split(",") if isinstance(value, str) else (
            list(value) if isinstance(value, (list, tuple)) else [value])
        try:
            sizes = [int(str(v).strip()) for v in items if str(v).strip()]
        except (TypeError, ValueError):
            sizes = []
        if not sizes or len(sizes) > 3:
            raise UserError(f"Parameter {self.name} must be one integer or one per axis like 16,64,64, not "
                            f"{value!r}; give e.g. {self.name}={self.default}.")
        for size in sizes:
            if self.range is not None and not (self.range[0] <= size <= self.range[1]):
                raise UserError(f"Parameter {self.name}={value} is outside {list(self.range)} along an axis; "
                                f"choose sizes in that range.")
        return sizes[0] if len(sizes) == 1 else sizes


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    task: str
    summary: str
    data: dict
    metrics: tuple
    parameters: tuple  # of Parameter, training ones first
    citations: tuple
    bioimageio: dict = field(default_factory=dict)
    limits: str = ""  # what the network cannot do (the bundle README's Limits)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.parameters)
        raise UserError(f"{self.name} has no parameter {name!r}; known parameters: {known}.")

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.parameters}

    def resolve(self, given: dict | None) -> dict:
        """All parameters: defaults overridden by `given` (typed and checked)."""
        values = self.defaults()
        for name, value in (given or {}).items():
            if value is None:
                continue
            values[name] = self.parameter(name).parse(value)
        return values

    @property
    def has_target(self) -> bool:
        return "target" in self.data


def _parameter(entry: dict) -> Parameter:
    return Parameter(
        name=entry["name"], type=entry["type"], default=entry["default"], help=entry["help"],
        level=entry.get("level", "advanced"),
        range=tuple(entry["range"]) if "range" in entry else None,
        choices=tuple(entry["choices"]) if "choices" in entry else None,
    )


_EXTRA_SPECS: dict[str, dict] = {}


def register_spec(raw: dict) -> None:
    """Add a spec given as the dict its YAML would hold (plug-in networks, tests of the protocol)."""
    _EXTRA_SPECS[raw["name"]] = raw
    load_spec.cache_clear()


def _read(name: str) -> dict:
    if name in _EXTRA_SPECS:
        return _EXTRA_SPECS[name]
    path = SPEC_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(spec_names())
        raise UserError(f"Unknown network {name!r}; choose one of: {known} (`dl4mic networks` lists them).")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def spec_names() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml") if p.stem != TRAINING_SPEC)


@lru_cache(maxsize=None)
def load_spec(name: str) -> Spec:
    raw = _read(name)
    overrides = raw.get("defaults", {}) or {}
    params = []
    for entry in _read(TRAINING_SPEC)["parameters"]:
        entry = dict(entry)
        if entry["name"] in overrides:
            entry["default"] = overrides[entry["name"]]
        params.append(_parameter(entry))
    params += [_parameter(e) for e in raw.get("parameters", [])]
    return Spec(
        name=raw["name"], title=raw["title"], task=raw["task"], summary=" ".join(raw["summary"].split()),
        data=raw["data"], metrics=tuple(raw.get("metrics", [])), parameters=tuple(params),
        citations=tuple(raw.get("citations", [])), bioimageio=raw.get("bioimageio", {}) or {},
        limits=" ".join(str(raw.get("limits") or "").split()),
    )


def list_specs() -> list[Spec]:
    return [load_spec(n) for n in spec_names()]
