"""Fixtures for the Fiji bridge: one ImageJ 1.x JVM per test session, a display for the ROI Manager.

Outside CI, tests that need ImageJ or a display skip when those are missing; in CI
(`CI` set) they fail instead, so the bridge is always proven against real ImageJ.
"""

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

IN_CI = bool(os.environ.get("CI"))


def _missing(reason):
    if IN_CI:
        pytest.fail(reason + " (CI must install imagej and xvfb and run pytest under xvfb-run)")
    pytest.skip(reason)


def _need_display():
    if not os.environ.get("DISPLAY"):
        _missing("no DISPLAY for ImageJ windows; run pytest under xvfb-run -a")


@pytest.fixture(scope="session")
def ij():
    """The ImageJ 1.x gateway (scyjava + Debian's ij.jar)."""
    from dl4mic.errors import UserError
    from dl4mic.fiji.gateway import connect

    try:
        return connect()
    except UserError as exc:
        _missing(str(exc))


@pytest.fixture
def display(ij):
    """A display for ImageJ windows (the ROI Manager); tests run under `xvfb-run -a`."""
    _need_display()
    from java.awt import GraphicsEnvironment

    if GraphicsEnvironment.isHeadless():
        _missing("the JVM was started headless; start pytest with DISPLAY set")
    return ij


@pytest.fixture
def rm(display):
    """An empty ROI Manager, and no open images, before and after the test."""
    from ij import IJ, WindowManager

    import dl4mic_ij

    def clean():
        dl4mic_ij.roi_manager(reset=True)
        for i in list(WindowManager.getIDList() or []):
            imp = WindowManager.getImage(i)
            if imp is not None:
                imp.changes = False
                imp.close()
        IJ.resetEscape()

    clean()
    yield dl4mic_ij.roi_manager()
    clean()


@pytest.fixture(scope="session")
def labels():
    """Touching objects, a ring with a hole, a two-part object, a diagonal pair, a large label value."""
    lab = np.zeros((48, 64), np.uint16)
    lab[3:15, 4:16] = 5
    lab[6:11, 8:12] = 0            # the ring's hole
    lab[30:35, 50:54] = 5          # second part of label 5
    lab[20:32, 4:10] = 7           # 7 and 8 touch
    lab[20:32, 10:17] = 8
    lab[40, 30] = 9                # diagonal two-pixel object
    lab[41, 31] = 9
    lab[36:44, 40:47] = 1000
    lab[38:42, 42:45] = 1001       # an object inside another's hole
    return lab


FAKE_DL4MIC = textwrap.dedent('''
    """A stand-in for the dl4mic command that logs its argv (the exact command line a dialog produces)."""
    import json, os, sys
    with open(os.environ["FAKE_DL4MIC_LOG"], "a") as fh:
        fh.write(json.dumps(sys.argv[1:]) + "\\n")
    print(json.dumps({"event": "done"}), flush=True)
''')


@pytest.fixture
def fake_dl4mic(tmp_path, monkeypatch):
    """Route the scripts' dl4mic calls to FAKE_DL4MIC (CLI mode); returns a reader of the logged argv lists."""
    script = tmp_path / "fake_dl4mic.py"
    script.write_text(FAKE_DL4MIC)
    log = tmp_path / "argv.log"
    monkeypatch.setenv("DL4MIC_COMMAND", json.dumps([sys.executable, str(script)]))
    monkeypatch.setenv("DL4MIC_FIJI_MODE", "cli")
    monkeypatch.setenv("FAKE_DL4MIC_LOG", str(log))

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


SCRIPTS = Path(__file__).resolve().parents[2] / "fiji-scripts"


@pytest.fixture(scope="session")
def jython_fiji(tmp_path_factory):
    """A Fiji.app made by `dl4mic fiji install` whose menu scripts run in Jython 2.7 (Debian's jython + ij.jar)."""
    from dl4mic.errors import UserError
    from dl4mic.fiji.jython import JythonFiji, find_jython_jar

    try:
        find_jython_jar()
    except UserError as exc:
        _missing(str(exc))
    return JythonFiji(tmp_path_factory.mktemp("fiji"))


@pytest.fixture
def jython(jython_fiji):
    """The Jython Fiji, with a display for the ROI Manager (pytest runs under xvfb-run -a)."""
    _need_display()
    return jython_fiji
