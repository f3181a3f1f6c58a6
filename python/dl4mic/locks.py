"""One dl4mic process per folder: a lock file, so that two trainings never write one model folder and two
predictions never write one output folder. A lock left by a killed process is detected and taken over."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError

LOCK_NAME = ".dl4mic.lock"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a dead one's lock or staging folder may be taken over)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class FolderLock:
    """`with FolderLock(folder, "train"):` holds `folder/.dl4mic.lock` (creating the folder if needed)."""

    def __init__(self, folder: str | Path, command: str):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / LOCK_NAME
        self.held = False

    def _holder(self) -> dict | None:
        """The lock's owner, or None when the lock is stale (its process is gone) or unreadable."""
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            pid, host = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if host == socket.gethostname() and not pid_alive(pid):
            return None
        return owner

    def __enter__(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._holder()
                if owner is not None:
                    raise UserError(f"{self.folder} is in use by another dl4mic {owner.get('command', '')} (process "
                                    f"{owner['pid']} on {owner['host']}, since {owner.get('started', '?')}); wait "
                                    f"for it to finish or stop it, or choose another folder.") from None
                stale = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
                try:  # only one process wins the rename of a stale lock; the others retry
                    os.replace(self.path, stale)
                    stale.unlink()
                except OSError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(record)
            self.held = True
            return self
        raise UserError(f"{self.folder} is being locked by several dl4mic processes at once; wait a moment and "
                        f"run the command again.")

    def __exit__(self, *exc) -> None:
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False


def locked(folder: str | Path, command: str, run):
    """`run()` while holding the folder's lock; a folder this call created is removed again when `run`
    fails before writing anything into it (a refused command leaves no trace)."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        with FolderLock(folder, command):
            return run()
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
