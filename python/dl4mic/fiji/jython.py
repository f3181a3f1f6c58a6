"""Run the Fiji menu scripts in real Jython 2.7 against ImageJ 1.x, as Fiji does, from Python.

Fiji runs `.py` menu scripts in Jython 2.7, whose standard library, unicode and
subprocess handling differ from CPython's. `JythonFiji` makes a Fiji.app folder
with `dl4mic fiji install`, then runs steps (open an image, run a menu script with
its `#@` inputs filled, run a little code as a user's hand would) in one Jython
JVM (`jython_driver.py`), and returns what a user would see: open images and the
ROI Manager's ROIs. Debian's `jython` and `imagej` packages provide the jars.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .gateway import find_ij_jar
from .install import LIB, MENU, install_scripts
from .scripting import fill_parameters

JYTHON_JAR_CANDIDATES = ("/usr/share/java/jython.jar", "/usr/share/jython/jython.jar")
DRIVER = Path(__file__).resolve().parent / "jython_driver.py"


def find_jython_jar() -> Path:
    """jython.jar from $DL4MIC_JYTHON_JAR or Debian's `jython` package."""
    for candidate in (os.environ.get("DL4MIC_JYTHON_JAR"), *JYTHON_JAR_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise UserError("Jython 2.7 (jython.jar) was not found; install it (Debian/Ubuntu: `apt-get install jython`) "
                    "or set DL4MIC_JYTHON_JAR=/path/to/jython.jar.")


def jython_command(ij_jar: str | Path | None = None) -> list[str]:
    """`java ... org.python.util.jython` with jython.jar and ij.jar on the class path (as in Fiji)."""
    jar = find_jython_jar()
    command = ["java", "-cp", os.pathsep.join([str(jar), str(find_ij_jar(ij_jar))])]
    home = Path("/usr/share/jython")  # Debian's python.home (registry, Lib links)
    if home.is_dir():
        command.append(f"-Dpython.home={home}")
    return command + ["-Dpython.console.encoding=UTF-8", "-Dfile.encoding=UTF-8", "org.python.util.jython"]


def open_step(path: str | Path) -> dict:
    """Open an image as File > Open does (it becomes the current image)."""
    return {"open": str(path)}


def code_step(source: str) -> dict:
    """Jython code run between scripts (IJ, WindowManager, RoiManager, dl4mic_ij and `record` in scope)."""
    return {"code": source}


# What a user does in the ROI Manager after review: select ROIs by name and delete them, then draw a
# polygon (the polygon tool's clicks) and add it, named `name`.
REVIEW_EDIT = '''
import jarray
from ij.gui import PolygonRoi, Roi
rm = RoiManager.getInstance()
names = [u"%%s" %% r.getName() for r in rm.getRoisAsArray()]
rm.setSelectedIndexes([names.index(n) for n in %(delete)r])
rm.runCommand("Delete")
xs, ys = [float(p[0]) for p in %(polygon)r], [float(p[1]) for p in %(polygon)r]
roi = PolygonRoi(jarray.array(xs, "f"), jarray.array(ys, "f"), Roi.POLYGON)
roi.setName(%(name)r)
rm.addRoi(roi)
'''


def review_edit_step(delete: list[str], polygon: list[tuple[float, float]], name: str = "drawn") -> dict:
    """Delete the ROIs named `delete` and add a polygon with vertices `polygon` ((x, y) in pixels) through the
    ROI Manager API, as a reviewing user does with Delete and the polygon tool."""
    return code_step(REVIEW_EDIT % {"delete": [str(n) for n in delete],
                                    "polygon": [(float(x), float(y)) for x, y in polygon], "name": name})


class JythonError(RuntimeError):
    """A step failed inside Jython (its traceback is in the message)."""


@dataclass
class JythonSession:
    """What the Jython run left: `state` (images, current, rois, steps_done, record, error) and its output."""

    state: dict
    stdout: str
    stderr: str

    @property
    def rois(self) -> list[dict]:
        return self.state["rois"]

    @property
    def images(self) -> dict[str, dict]:
        return {image["title"]: image for image in self.state["images"]}

    @property
    def current(self) -> str | None:
        """The title of the current image."""
        return self.state["current"]

    @property
    def record(self) -> dict:
        return self.state["record"]


class JythonFiji:
    """A Fiji.app folder made by `dl4mic fiji install`, whose menu scripts run in Jython 2.7 with ImageJ 1.x."""

    def __init__(self, root: str | Path, python: str | Path | None = None, install: bool = True):
        self.app = Path(root) / "Fiji.app"
        (self.app / "jars").mkdir(parents=True, exist_ok=True)
        if install:
            install_scripts(self.app, python=python or sys.executable)
        self.menu = self.app.joinpath(*MENU)
        self.lib = self.app.joinpath(*LIB)

    def script(self, name: str, values: dict | None = None, macro: str | None = None) -> dict:
        """A step running Plugins > dl4mic > `name` with its #@ inputs filled (defaults for those left out);
        `macro` answers the dialogs the script opens (ImageJ macro options, e.g. "epochs=2 augment")."""
        path = self.menu / name
        if not path.is_file():
            raise UserError(f"{path} is not an installed menu script; pick one of "
                            f"{', '.join(sorted(p.name for p in self.menu.glob('*.py')))}.")
        _, filled = fill_parameters(path, values)
        typed = {p.name: {"kind": p.kind, "value": None if value is None else
                          str(value) if p.kind == "file" else value} for p, value in filled}
        return {"script": str(path), "values": typed, "macro": macro}

    def run(self, steps: list[dict], timeout: float = 600, env: dict | None = None,
            check: bool = True) -> JythonSession:
        """Run the steps in one Jython JVM (windows and the ROI Manager carry over between steps)."""
        with tempfile.TemporaryDirectory(prefix="dl4mic-jython-") as tmp:
            request, state_path = Path(tmp) / "request.json", Path(tmp) / "state.json"
            request.write_text(json.dumps({"lib": str(self.lib), "steps": steps, "state": str(state_path)}))
            proc = subprocess.run(jython_command() + [str(DRIVER), str(request)], capture_output=True,
                                  text=True, timeout=timeout, env={**os.environ, **(env or {})},
                                  encoding="utf-8", errors="replace")
            if not state_path.is_file():
                raise JythonError(f"Jython exited with code {proc.returncode} before writing its state:\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            session = JythonSession(json.loads(state_path.read_text(encoding="utf-8")), proc.stdout, proc.stderr)
        error = session.state["error"]
        if check and error:
            raise JythonError(f"step {error['step']} failed in Jython: {error['traceback']}\n"
                              f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
        return session
