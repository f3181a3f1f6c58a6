"""Modules shared with Fiji: `dl4mic fiji install` copies them into Fiji.app/jars/Lib (Jython's path).

They are written in the Python 2.7/3 common subset so that the menu scripts
(Jython in classic Fiji) and dl4mic's JVM gateway (CPython with JPype) run the
same ImageJ code. Import them by their top-level names after `ensure_importable()`.
"""

import sys
from pathlib import Path

JYLIB_DIR = Path(__file__).resolve().parent
MODULES = ("dl4mic_boxes.py", "dl4mic_ij.py", "dl4mic_run.py")


def ensure_importable() -> None:
    if str(JYLIB_DIR) not in sys.path:
        sys.path.insert(0, str(JYLIB_DIR))
