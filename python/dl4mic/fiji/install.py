"""`dl4mic fiji install` and `dl4mic fiji update-site`: the menu scripts in a Fiji, or on an update site.

Scripts go to Fiji.app/scripts/Plugins/dl4mic/ (menu Plugins > dl4mic); the
shared modules, the recorded command and the networks' basic parameters go to
Fiji.app/jars/Lib/, which is on Fiji's Jython path. An update site holds the
same files in the layout Fiji's updater downloads (each file as PATH-TIMESTAMP,
listed with its checksum in db.xml.gz), so that a lab hosts it and its users
add it under Help > Update... > Manage update sites; each user then records
their own dl4mic with `dl4mic fiji install --command-only`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

from ..data.io import atomic_path
from ..errors import UserError
from .jylib import JYLIB_DIR, MODULES

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"  # -> the repository's fiji-scripts/
MENU = ("scripts", "Plugins", "dl4mic")
LIB = ("jars", "Lib")
# the recorded command and the networks' parameters, in jars/Lib (the same names as in jylib/dl4mic_run.py)
CONFIG_NAME, SPECS_NAME = "dl4mic-fiji.json", "dl4mic-specs.json"


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


def fiji_files(python: str | Path | None = None) -> dict[str, bytes]:
    """{path inside Fiji.app: content} of everything dl4mic puts into a Fiji; `python=None` records the
    `dl4mic` on the PATH as the command (what an update site ships)."""
    files = {}
    for src in sorted(SCRIPTS_DIR.glob("*.py")):
        files["/".join(MENU + (src.name,))] = with_network_choices(src.read_text(encoding="utf-8")).encode("utf-8")
    for name in MODULES:
        files["/".join(LIB + (name,))] = (JYLIB_DIR / name).read_bytes()
    command = dl4mic_command(python) if python else ["dl4mic"]
    config = {"python": str(python) if python else None, "command": command}
    files["/".join(LIB + (CONFIG_NAME,))] = _json_bytes(config)
    files["/".join(LIB + (SPECS_NAME,))] = _json_bytes(specs_for_fiji())
    return files


def _json_bytes(data) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


def install_scripts(fiji_dir: str | Path, python: str | Path | None = None, command_only: bool = False) -> list[Path]:
    """Write the menu scripts, shared modules and recorded command into `fiji_dir`; returns the files written.
    `command_only` records only which dl4mic to call (after the scripts came from an update site)."""
    fiji = Path(fiji_dir).expanduser()
    if not fiji.is_dir() or not ((fiji / "jars").is_dir() or (fiji / "plugins").is_dir()):
        raise UserError(f"{fiji} is not a Fiji installation (it has no jars/ or plugins/ folder); "
                        "give the Fiji.app folder, e.g. --fiji ~/Fiji.app.")
    files = fiji_files(Path(python or sys.executable))
    if command_only:
        files = {path: data for path, data in files.items() if path.endswith(CONFIG_NAME)}
    written = []
    for path, data in files.items():
        dst = fiji / path
        with atomic_path(dst) as tmp:
            tmp.write_bytes(data)
        written.append(dst)
    return written


def updater_checksum(path: str, data: bytes) -> str:
    """The checksum Fiji's updater computes for a file that is not a .jar: SHA-1 of its path, then its bytes."""
    return hashlib.sha1(path.encode("ascii") + data).hexdigest()


def write_update_site(folder: str | Path, timestamp: str | None = None) -> list[str]:
    """Write (or update) an ImageJ update site in `folder`: each file as PATH-TIMESTAMP and db.xml.gz listing
    them. Files whose content did not change keep their version; changed ones get a new version and the old
    one is listed as a previous version (so Fiji offers the update). Returns the paths given a new version."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    timestamp = timestamp or time.strftime("%Y%m%d%H%M%S", time.gmtime())
    db_path = folder / "db.xml.gz"
    records = {}
    if db_path.is_file():
        root = ElementTree.fromstring(gzip.decompress(db_path.read_bytes()))
        records = {plugin.get("filename"): plugin for plugin in root.iter("plugin")}
    root = ElementTree.Element("pluginRecords")
    updated = []
    for path, data in sorted(fiji_files().items()):
        checksum = updater_checksum(path, data)
        old = records.get(path)
        current = old.find("version") if old is not None else None
        plugin = ElementTree.SubElement(root, "plugin", filename=path)
        if current is not None and current.get("checksum") == checksum:
            plugin.extend(list(old))  # unchanged: same version, same history
            continue
        ElementTree.SubElement(plugin, "version", checksum=checksum, timestamp=timestamp, filesize=str(len(data)))
        ElementTree.SubElement(plugin, "description").text = "dl4mic: deep learning for microscopy in Fiji"
        if old is not None:
            history = [e for e in old if e.tag == "previous-version"]
            if current is not None:
                history.insert(0, ElementTree.Element("previous-version", checksum=current.get("checksum"),
                                                      timestamp=current.get("timestamp")))
            plugin.extend(history)
        target = folder / f"{path}-{timestamp}"
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        updated.append(path)
    for path, old in records.items():  # files dl4mic no longer ships: obsolete from now on
        if path not in {p.get("filename") for p in root.iter("plugin")}:
            plugin = ElementTree.SubElement(root, "plugin", filename=path)
            current = old.find("version")
            history = [e for e in old if e.tag == "previous-version"]
            if current is not None:
                history.insert(0, ElementTree.Element("previous-version", checksum=current.get("checksum"),
                                                      timestamp=current.get("timestamp"),
                                                      **{"timestamp-obsolete": timestamp}))
            plugin.extend(history)
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")
    with atomic_path(db_path) as tmp:
        tmp.write_bytes(gzip.compress(xml, mtime=0))
    return updated
