"""Point targets (data kind `points`): emitter positions of a localisation movie from ThunderSTORM CSV.

Positions are kept in nm, as ThunderSTORM writes them and as SMLM metrics report them; pixels are
x_nm / pixel size with the origin at the image corner (pixel i covers [i, i + 1)). Frames stay
1-based, as in ThunderSTORM and Fiji. Every problem is refused with one sentence naming the file and the fix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from .io import TIFF_EXTS

TOLERANCE_PX = 1.0  # how far (pixels) a fitted position may lie past the edge before it is refused
UNITS_NM = {"nm": 1.0, "um": 1000.0, "µm": 1000.0, "μm": 1000.0}
_HEADER = re.compile(r"^\s*([^\[\]]*?)\s*(?:\[\s*([^\]]*?)\s*\])?\s*$")


@dataclass
class Points:
    """Emitter positions of one movie: one entry per emitter, frames 1-based, x/y in nm."""

    frame: np.ndarray                      # (N,) int64, 1-based
    x_nm: np.ndarray                       # (N,) float64
    y_nm: np.ndarray                       # (N,) float64
    uncertainty_nm: np.ndarray | None = None
    source: Path | None = None
    line: np.ndarray | None = field(default=None, repr=False)  # CSV line of each emitter, for messages

    def __len__(self) -> int:
        return len(self.frame)

    def xy_nm(self) -> np.ndarray:
        """(N, 2) x, y in nm, the layout `qc.metrics.localisation_metrics` takes (with `frame`)."""
        return np.stack([self.x_nm, self.y_nm], axis=1).reshape(-1, 2)

    def xy_px(self, pixel_size_nm: float) -> np.ndarray:
        """(N, 2) x, y in pixels of the movie (origin at the image corner)."""
        return self.xy_nm() / float(pixel_size_nm)

    def per_frame(self, pixel_size_nm: float | None = None) -> dict[int, np.ndarray]:
        """{frame: (n, 2) x, y} for every frame with emitters, in nm (or pixels given the pixel size)."""
        xy = self.xy_nm() if pixel_size_nm is None else self.xy_px(pixel_size_nm)
        return {int(f): xy[self.frame == f] for f in np.unique(self.frame)}


def _column(name: str) -> tuple[str, str]:
    """('x', 'nm') from 'x [nm]' (quotes already removed by the csv module)."""
    m = _HEADER.match(name)
    base, unit = (m.group(1), m.group(2) or "") if m else (name, "")
    return base.strip().lower(), unit.strip().lower()


def read_thunderstorm(path: str | Path, pixel_size_nm: float | None = None) -> Points:
    """Positions from a ThunderSTORM CSV (quoted header or not; x/y in nm, µm or px, the last needing
    `pixel_size_nm`; optional frame (default 1) and uncertainty columns)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The positions file {path} does not exist; give the ThunderSTORM CSV of the movie.")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [(n, row) for n, row in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in row)]
    header = [c.strip() for c in rows[0][1]] if rows else []
    cols = {}
    for i, name in enumerate(header):
        cols.setdefault(_column(name)[0], (i, _column(name)[1]))
    if "x" not in cols or "y" not in cols:
        raise UserError(f"{path} has no x and y columns (found: {', '.join(header) or 'none'}); export the "
                        f"localisations from ThunderSTORM (columns 'x [nm]', 'y [nm]') or rename the columns.")
    scale = {}
    for axis in ("x", "y"):
        unit = cols[axis][1]
        if unit == "px":
            if pixel_size_nm is None:
                raise UserError(f"{path} gives {axis} in pixels ({header[cols[axis][0]]}); give the pixel size "
                                f"in nm so positions can be compared in nm.")
            scale[axis] = float(pixel_size_nm)
        elif unit in UNITS_NM:
            scale[axis] = UNITS_NM[unit]
        else:
            raise UserError(f"{path}: the column {header[cols[axis][0]]!r} gives no unit dl4mic knows; name it "
                            f"'{axis} [nm]' or '{axis} [px]'.")
    unc = next((k for k in ("uncertainty", "uncertainty_xy") if k in cols), None)
    lines = np.array([n for n, _ in rows[1:]], dtype=np.int64)
    values = {}
    for key in ("frame", "x", "y", unc):
        if key not in cols:
            continue
        i = cols[key][0]
        cells = [row[i].strip() if i < len(row) else "" for _, row in rows[1:]]
        try:
            arr = np.array(cells, dtype=np.float64) if cells else np.zeros(0)
            bad = ~np.isfinite(arr)
        except ValueError:
            arr, bad = None, None
        if arr is None or bad.any():
            k = next(j for j, c in enumerate(cells) if not _finite(c))
            raise UserError(f"{path} line {lines[k]}: {header[i]} is {cells[k]!r}, not a number; fix or delete "
                            f"that row.")
        values[key] = arr
    frame = values.get("frame", np.ones(len(lines)))
    if np.any(frame != np.round(frame)):
        k = int(np.flatnonzero(frame != np.round(frame))[0])
        raise UserError(f"{path} line {lines[k]}: frame {frame[k]:g} is not a whole number; "
                        f"give 1-based frame numbers.")
    unc_nm = None
    if unc:  # kept only where its unit converts to nm
        unit = cols[unc][1]
        factor = (float(pixel_size_nm) if pixel_size_nm else None) if unit == "px" else UNITS_NM.get(unit)
        unc_nm = values[unc] * factor if factor else None
    return Points(frame.astype(np.int64), values["x"] * scale["x"], values["y"] * scale["y"], unc_nm, path, lines)


def _finite(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def movie_shape(path: str | Path) -> tuple[int, int, int]:
    """(T, Y, X) of a single-channel movie from its header (a 2D image is one frame)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_EXTS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                dims = [(a, int(n)) for a, n in zip(series.axes, series.shape) if n > 1 or a in "YX"]
        else:
            from PIL import Image

            with Image.open(path) as im:
                dims = [("Y", im.size[1]), ("X", im.size[0])] + [("S", len(im.getbands()))] * (len(im.getbands()) > 1)
    except Exception as exc:  # PIL/tifffile raise many types for broken files
        raise UserError(f"{path} cannot be read as an image ({type(exc).__name__}); re-save it as TIFF "
                        f"or remove it.") from None
    axes = "".join(a for a, _ in dims)
    shape = tuple(n for _, n in dims)
    if len(dims) == 2:
        return (1,) + shape
    if len(dims) != 3 or axes[1:] != "YX" or axes[0] in "SC":
        raise UserError(f"{path} has shape {shape} (axes {axes}) but localisation needs one single-channel movie "
                        f"(T, Y, X); save one channel as a stack of frames (Fiji: Image > Hyperstacks > "
                        f"Reduce Dimensionality).")
    return shape


def check_points(points: Points, shape: Sequence[int], pixel_size_nm: float,
                 tolerance_px: float = TOLERANCE_PX) -> None:
    """Refuse frames outside the movie (T, Y, X) and positions outside its field of view at this pixel size."""
    n_frames, ny, nx = (int(s) for s in shape)
    src = points.source or "the positions"
    line = points.line if points.line is not None else np.arange(len(points)) + 2
    bad = (points.frame < 1) | (points.frame > n_frames)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        fix = ("ThunderSTORM numbers frames from 1, so add 1 to every frame if yours start at 0"
               if points.frame.min() == 0 else "check that the CSV belongs to this movie (ThunderSTORM numbers "
               "frames from 1)")
        raise UserError(f"{src} line {line[k]}: frame {points.frame[k]} is outside the movie's frames "
                        f"1..{n_frames}; {fix}.")
    tol = tolerance_px * pixel_size_nm
    for axis, values, n in (("x", points.x_nm, nx), ("y", points.y_nm, ny)):
        out = (values < -tol) | (values > n * pixel_size_nm + tol)
        if out.any():
            k = int(np.flatnonzero(out)[0])
            raise UserError(f"{src} line {line[k]}: {axis} = {values[k]:g} nm lies outside the field of view "
                            f"0..{n * pixel_size_nm:g} nm ({n} pixels of {pixel_size_nm:g} nm); check the pixel size "
                            f"or that the CSV belongs to this movie.")


def read_point_targets(movies: Sequence[Path], target: str | Path, pixel_size_nm: float) -> dict[str, Points]:
    """Checked positions of every movie, keyed by stem: `target` is a folder of CSVs named like the
    movies (movies/a.tif <-> positions/a.csv), or one CSV for a single movie."""
    target = Path(target)
    if not pixel_size_nm or pixel_size_nm <= 0:
        raise UserError(f"The pixel size {pixel_size_nm!r} nm is not positive; give the camera pixel size in nm "
                        f"(e.g. 100).")
    by_stem: dict[str, Path] = {}
    for m in movies:
        m = Path(m)
        if m.stem in by_stem:
            raise UserError(f"{m} and {by_stem[m.stem]} have the same name; keep one movie per name, because "
                            f"positions are paired with movies by name.")
        by_stem[m.stem] = m
    if target.is_file():
        if len(by_stem) != 1:
            raise UserError(f"{target} is one positions file for {len(by_stem)} movies; give the folder that holds "
                            f"one CSV per movie, named like the movie.")
        files = {next(iter(by_stem)): target}
    elif target.is_dir():
        files = {}
        for stem, m in by_stem.items():
            f = target / f"{stem}.csv"
            if not f.is_file():
                raise UserError(f"{m} has no positions file {f}; add the ThunderSTORM CSV of this movie or remove it.")
            files[stem] = f
    else:
        raise UserError(f"The positions {target} do not exist; give the folder of ThunderSTORM CSVs (one per movie).")
    out = {}
    for stem, f in files.items():
        points = read_thunderstorm(f, pixel_size_nm)
        check_points(points, movie_shape(by_stem[stem]), pixel_size_nm)
        out[stem] = points
    return out
