"""SciJava script parameters (`#@` lines), and running Fiji's menu scripts outside Fiji.

Fiji fills a script's `#@` parameters from a dialog; here they are filled from
a dict with the same Java types Fiji passes (a java.io.File for File parameters),
so the scripts themselves are exercised against ImageJ 1.x rather than a copy of
their logic: in real Jython 2.7 (`jython.py`, as Fiji runs them) or in this
CPython through JPype (`run_script`, for tests that reach into the JVM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

_LINE = re.compile(r"^#@(?P<io>input|output|both)?\s*(?P<type>[\w.]+)\s*(?:\((?P<attrs>.*)\))?\s*(?P<name>\w+)\s*$")
_ATTR = re.compile(r'\s*(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|\{[^}]*\}|[^,]+)\s*(?:,|$)')
KINDS = {"File": "file", "ImagePlus": "image", "String": "str", "boolean": "bool", "Boolean": "bool",
         **dict.fromkeys(("int", "Integer", "long", "Long", "short", "Short", "byte"), "int"),
         **dict.fromkeys(("float", "Float", "double", "Double"), "float")}
SERVICE_TYPES = {"LogService", "StatusService", "UIService", "Context", "ImageJ", "CommandService",
                 "DatasetService", "OpService", "ScriptService"}


@dataclass
class Parameter:
    type: str
    name: str
    io: str = "input"
    attrs: dict = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return bool(self.attrs.get("required", True)) and self.type not in SERVICE_TYPES

    @property
    def default(self):
        return self.attrs.get("value")

    @property
    def choices(self):
        return self.attrs.get("choices")

    @property
    def kind(self) -> str:
        """file, image, int, float, bool, str or object: how the value is typed for the script."""
        return _kind(self.type)


def _value(text: str):
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1].replace('\\"', '"')
    if text.startswith("{"):
        return [_value(t) for t in re.findall(r'"(?:[^"\\]|\\.)*"|[^,{}\s]+', text)]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_header(text: str) -> list[Parameter]:
    """The `#@` parameters of a script, in order."""
    params = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("#@"):
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise ValueError(f"line {number}: cannot parse script parameter {line!r}")
        attrs = {}
        if match["attrs"]:
            pos = 0
            body = match["attrs"]
            while pos < len(body):
                am = _ATTR.match(body, pos)
                if not am:
                    raise ValueError(f"line {number}: cannot parse attributes {body!r}")
                attrs[am[1]] = _value(am[2])
                pos = am.end()
        params.append(Parameter(match["type"], match["name"], match["io"] or "input", attrs))
    return params


def _kind(type_name: str) -> str:
    return KINDS.get(type_name.split(".")[-1], "object")


def fill_parameters(path: str | Path, values: dict | None = None) -> tuple[str, list[tuple[Parameter, object]]]:
    """A script's text and its input parameters with their values (given, else the default), checked as
    Fiji's dialog would: unknown names, missing required values and values outside `choices` are user errors.
    An ImagePlus left out is None: the script gets the current image."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    params = parse_header(text)
    values = dict(values or {})
    unknown = set(values) - {p.name for p in params}
    if unknown:
        raise UserError(f"{path.name} has no parameter {sorted(unknown)[0]!r}; "
                        f"its parameters are {', '.join(p.name for p in params)}.")
    filled = []
    for p in params:
        if p.io == "output":
            continue
        value = values[p.name] if p.name in values else p.default
        if value is None and p.required and p.kind != "image":
            raise UserError(f"{path.name} needs a value for {p.name}; pass {p.name}=... .")
        if p.kind == "str" and value is not None:
            value = str(value)
            if p.choices and value not in p.choices:
                raise UserError(f"{p.name}={value!r} is not one of {p.choices}; pick one of those.")
        filled.append((p, value))
    return text, filled


def _convert(param: Parameter, value, gateway):
    """A value as the Java type Fiji passes (JPype side)."""
    if value is None:
        if param.kind == "image":
            from ij import WindowManager

            return WindowManager.getCurrentImage()
        return None
    if param.kind == "file":
        from java.io import File

        return File(str(value))
    if param.kind in ("int", "float", "bool"):
        return {"int": int, "float": float, "bool": bool}[param.kind](value)
    if param.kind == "image" and gateway is not None and not hasattr(value, "getProcessor"):
        return gateway.image(value, param.name)
    return value


def run_script(path: str | Path, values: dict | None = None, gateway=None) -> dict:
    """Run a menu script in this process (CPython + JPype) with its parameters filled; returns its #@output
    values. `dl4mic.fiji.jython` runs the same scripts in real Jython 2.7, as Fiji does."""
    text, filled = fill_parameters(path, values)
    from .jylib import ensure_importable

    ensure_importable()  # the scripts import dl4mic_ij, dl4mic_run, dl4mic_boxes as in Fiji
    namespace = {"__name__": "__main__", "__file__": str(path)}
    for p, value in filled:
        namespace[p.name] = _convert(p, value, gateway)
    exec(compile(text, str(path), "exec"), namespace)
    params = parse_header(text)
    return {p.name: namespace.get(p.name) for p in params if p.io in ("output", "both")}


def script_paths() -> list[Path]:
    """The menu scripts shipped with dl4mic (fiji-scripts/)."""
    from .install import SCRIPTS_DIR

    return sorted(SCRIPTS_DIR.glob("*.py"))
