"""Progress for people (a bar on a terminal) and for programs (JSON lines for the Fiji side)."""

from __future__ import annotations

import json
import sys
from typing import Callable


class Cancelled(Exception):
    """Raised when a progress callback asks to stop (e.g. the user pressed cancel in Fiji)."""


class Progress:
    """Reports events; `mode` is auto | bar | json | none. `callback(event)` returning False cancels."""

    def __init__(self, mode: str = "auto", callback: Callable[[dict], bool | None] | None = None):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode, self.callback, self._bar = mode, callback, None

    def start(self, total: int, desc: str, initial: int = 0, unit: str = "epoch") -> None:
        self.emit({"event": "start", "total": total, "desc": desc, "initial": initial, "unit": unit})
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, event: dict, postfix: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if postfix:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items() if isinstance(v, float)})
        self.emit(event)

    def close(self, event: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if event:
            self.emit(event)

    def emit(self, event: dict) -> None:
        if self.mode == "json":
            print(json.dumps(event), flush=True)
        if self.callback is not None and self.callback(event) is False:
            raise Cancelled(event.get("event", ""))
