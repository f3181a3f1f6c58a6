"""`dl4mic fiji install`: put the menu scripts into a Fiji and record which dl4mic to call.

Scripts go to Fiji.app/scripts/Plugins/dl4mic/ (menu Plugins > dl4mic); the
shared modules, the recorded command and the networks' basic parameters go to
Fiji.app/jars/Lib/, which is on Fiji's Jython path.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from ..data.io import atomic_path
from ..errors import UserError
from .jylib import JYLIB_DIR, MODULES

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"  # -> the repository's fiji-scripts/
MENU = ("scripts", "Plugins", "dl4mic")
LIB = ("jars", "Lib")


def dl4mic_command(python: str | Path) -> list[str]:
    """How Fiji should call dl4mic: the console script beside `python` if there is one, else `python -m dl4mic`."""
    python = Path(python)
    for name in ("dl4mic", "dl4mic.exe"):
        script = python.parent / name
        if script.is_file():
            return [str(script)]
    return [str(python), "-m", "dl4mic"]


def specs_for_fiji() -> dict:
    """Each network's title, summary and basic parameters, for the Train dialog."""
    from ..specs import list_specs

    out = {}
    for spec in list_specs():
        params = []
        for p in spec.parameters:
            if p.level != "basic":
                continue
            params.append({"name": p.name, "type": p.type, "default": p.default, "help": p.help,
                           "choices": list(p.choices) if p.choices else None,
                           "range": list(p.range) if p.range else None})
        out[spec.name] = {"title": spec.title, "task": spec.task, "summary": spec.summary,
                          "target": spec.has_target, "parameters": params}
    return out


def with_network_choices(script: str) -> str:
    """The script with its `network` choices set to the networks this dl4mic has (Train's menu)."""
    from ..specs import spec_names

    choices = ", ".join(f'"{n}"' for n in spec_names())
    return re.sub(r"(?m)^(#@ String \(.*choices=)\{[^}]*\}(.*\bnetwork)$", rf"\g<1>{{{choices}}}\g<2>", script)


def _write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def install_scripts(fiji_dir: str | Path, python: str | Path | None = None) -> list[Path]:
    """Copy the menu scripts and shared modules into `fiji_dir`; returns the files written."""
    fiji = Path(fiji_dir).expanduser()
    if not fiji.is_dir() or not ((fiji / "jars").is_dir() or (fiji / "plugins").is_dir()):
        raise UserError(f"{fiji} is not a Fiji installation (it has no jars/ or plugins/ folder); "
                        "give the Fiji.app folder, e.g. --fiji ~/Fiji.app.")
    menu = fiji.joinpath(*MENU)
    lib = fiji.joinpath(*LIB)
    written = []
    for src in sorted(SCRIPTS_DIR.glob("*.py")):
        dst = menu / src.name
        with atomic_path(dst) as tmp:
            tmp.write_text(with_network_choices(src.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(dst)
    for name in MODULES:
        written.append(_copy(JYLIB_DIR / name, lib / name))
    python = Path(python or sys.executable)
    config = {"python": str(python), "command": dl4mic_command(python)}
    _write_json(lib / "dl4mic-fiji.json", config)
    _write_json(lib / "dl4mic-specs.json", specs_for_fiji())
    written += [lib / "dl4mic-fiji.json", lib / "dl4mic-specs.json"]
    return written


def _copy(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst
