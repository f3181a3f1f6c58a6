"""Safe extraction of bundle zips: nothing is written outside the target folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..data.io import staging_folder
from ..errors import UserError

MAX_TOTAL_BYTES = 8 << 30  # refuse zip bombs beyond 8 GiB uncompressed


def cache_root() -> Path:
    """`$DL4MIC_CACHE/bundles`, default `~/.cache/dl4mic/bundles`."""
    base = os.environ.get("DL4MIC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "dl4mic") / "bundles"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# what zipfile raises for damaged archives (fuzzing found UnicodeDecodeError, NotImplementedError, IndexError)
DAMAGED_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError, NotImplementedError, IndexError,
               ValueError, EOFError, KeyError, RuntimeError, zlib.error)


def _damaged(zip_path: Path, exc: Exception) -> UserError:
    return UserError(f"{zip_path} is not a readable zip file ({type(exc).__name__}: it is damaged or truncated); "
                     f"download or export the bundle again.")


def check_members(zf: zipfile.ZipFile, zip_name: str) -> list[zipfile.ZipInfo]:
    """The zip's members, after refusing absolute paths, `..`, drive letters, links and special files."""
    total, members = 0, []
    for info in zf.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if (name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts
                or any(p in ("", ".") for p in parts[:-1])):
            raise UserError(f"{zip_name} contains the unsafe path {name!r} (outside its folder); "
                            f"refusing to extract it — use a bundle from a trusted source.")
        mode = (info.external_attr >> 16) & 0o170000
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UserError(f"{zip_name} contains {name!r}, a link or special file; refusing to extract it.")
        total += info.file_size
        members.append(info)
    if total > MAX_TOTAL_BYTES:
        raise UserError(f"{zip_name} would extract to {total / 2**30:.1f} GiB; refusing (limit 8 GiB).")
    return members


def safe_extract(zip_path: str | Path, target: str | Path) -> Path:
    """Extract `zip_path` into the new folder `target` (atomically: a temp folder renamed at the end).

    Every member must resolve inside `target`; otherwise nothing is extracted and UserError is raised."""
    zip_path, target = Path(zip_path), Path(target)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, *DAMAGED_ZIP) as exc:
        raise _damaged(zip_path, exc) from None
    with zf:
        members = check_members(zf, zip_path.name)
        tmp = staging_folder(target)
        try:
            root = tmp.resolve()
            for info in members:
                dest = (root / info.filename).resolve()
                if dest != root and root not in dest.parents:
                    raise UserError(f"{zip_path.name} contains the unsafe path {info.filename!r}; refusing to extract it.")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except DAMAGED_ZIP as exc:
                    raise _damaged(zip_path, exc) from None
            if target.exists():  # a concurrent extraction won the race; keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
