"""Pairing source and target files by name (ZeroCostDL4Mic convention: source/a.tif <-> target/a.tif)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .io import list_images


def pair_files(source: str | Path, target: str | Path | None) -> list[tuple[Path, Path | None]]:
    """(source, target) file pairs matched by file stem; any unpaired name is refused with the fix."""
    sources = list_images(source, "source")
    if target is None:
        return [(s, None) for s in sources]
    targets = list_images(target, "target")
    if Path(source).is_file() or Path(target).is_file():
        if not (Path(source).is_file() and Path(target).is_file()):
            raise UserError(f"Give the source ({source}) and the target ({target}) both as folders or both as files.")
        return [(sources[0], targets[0])]
    by_stem = {}
    for t in targets:
        if t.stem in by_stem:
            raise UserError(f"{t} and {by_stem[t.stem]} have the same name; keep one file per name in {target}.")
        by_stem[t.stem] = t
    pairs, missing = [], []
    for s in sources:
        t = by_stem.pop(s.stem, None)
        if t is None:
            missing.append(s)
        else:
            pairs.append((s, t))
    if missing:
        raise UserError(f"{missing[0]} has no target of the same name in {target}; "
                        f"add {Path(target) / (missing[0].stem + missing[0].suffix)} or remove the source file.")
    if by_stem:
        extra = next(iter(by_stem.values()))
        raise UserError(f"{extra} has no source of the same name in {source}; "
                        f"add the matching source image or remove the target file.")
    return pairs
