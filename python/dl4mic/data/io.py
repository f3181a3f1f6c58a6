"""Image files: listing, reading (TIFF/PNG/JPEG, any bit depth), axes and voxel size, atomic writing.

Axes and voxel size are data: `read_meta` takes them from ImageJ or OME-TIFF metadata where the
file records them, and falls back to the documented shape rule (`infer_axes`) only where it does not.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

TIFF_EXTS = {".tif", ".tiff"}
IMAGE_EXTS = TIFF_EXTS | {".png", ".jpg", ".jpeg"}
HIDDEN_PREFIXES = (".", "_")  # .DS_Store, .ipynb_checkpoints, ._macos forks, __MACOSX


def is_hidden(path: Path) -> bool:
    return any(part.startswith(HIDDEN_PREFIXES) for part in path.parts[-1:])


def list_images(folder: str | Path, role: str = "source") -> list[Path]:
    """Image files of a folder, sorted by name; hidden files ignored; other files refused."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"The {role} folder {folder} does not exist; give the folder that holds your {role} images.")
    if folder.is_file():
        return [folder]
    files, others = [], []
    for p in sorted(folder.iterdir()):
        if is_hidden(p) or p.is_dir():
            continue
        (files if p.suffix.lower() in IMAGE_EXTS else others).append(p)
    if others:
        raise UserError(f"{others[0]} is not an image (TIFF, PNG or JPEG); move it out of the {role} folder {folder}.")
    if not files:
        raise UserError(f"The {role} folder {folder} holds no images; put TIFF, PNG or JPEG files in it.")
    return files


def _unreadable(path: Path, exc: Exception) -> UserError:
    return UserError(f"{path} cannot be read as an image ({type(exc).__name__}); "
                     f"re-save it as TIFF (e.g. in Fiji: File > Save As > Tiff) or remove it.")


def image_byte_limit() -> int:
    """The most one image read at once may take: half this machine's physical memory, since its float32
    copy and the network need room too ($DL4MIC_MAX_IMAGE_BYTES sets it)."""
    if os.environ.get("DL4MIC_MAX_IMAGE_BYTES"):
        return int(float(os.environ["DL4MIC_MAX_IMAGE_BYTES"]))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return 1 << 62


def _declared_bytes(path: Path) -> int | None:
    """What the file's header says its pixels take, read without loading them (None: unknown)."""
    try:
        if path.suffix.lower() in TIFF_EXTS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return int(np.prod(series.shape, dtype=np.float64) * np.dtype(series.dtype).itemsize)
        from PIL import Image

        with Image.open(path) as im:
            return im.width * im.height * max(len(im.getbands()), 1) * 4
    except Exception:  # a broken header: read_image names the file
        return None


def _png_chunks_fit(path: Path) -> bool:
    """Whether every PNG chunk's declared length fits in the file: Pillow allocates what a chunk declares
    (fuzzing found a 374-byte PNG that made it allocate 64 MiB; a length field allows 2 GiB)."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return True  # not a PNG inside: Pillow names it below
        pos = 8
        while pos + 8 <= size:
            fh.seek(pos)
            length, kind = struct.unpack(">I4s", fh.read(8))
            if pos + 12 + length > size:
                return False
            if kind == b"IEND":
                break
            pos += 12 + length
    return True


def read_image(path: str | Path) -> np.ndarray:
    """Pixel data as stored (dtype kept); refuses corrupt or unreadable files with the fix, and files whose
    header declares more pixels than half this machine's memory, before allocating anything."""
    path = Path(path)
    declared = _declared_bytes(path)
    if declared is not None and declared > image_byte_limit():
        raise UserError(f"{path} declares {declared / 2**30:.1f} GiB of pixels, more than the "
                        f"{image_byte_limit() / 2**30:.1f} GiB one image may take on this machine; crop or split it (Fiji: Image > Crop, "
                        f"Image > Stacks > Tools > Make Substack) or check that the file is not damaged.")
    if path.suffix.lower() == ".png" and not _png_chunks_fit(path):
        raise UserError(f"{path} cannot be read as an image (a PNG chunk is longer than the file: it is "
                        f"truncated or damaged); re-save it as TIFF or remove it.")
    try:
        if path.suffix.lower() in TIFF_EXTS:
            import tifffile

            data = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("P", "LA", "RGBA", "CMYK", "YCbCr"):
                    im = im.convert("RGBA" if im.mode in ("LA", "RGBA") else "RGB")
                data = np.asarray(im)
            if data.ndim == 3 and data.shape[-1] == 4:
                data = data[..., :3]
    except Exception as exc:  # tifffile/PIL raise many types for broken files
        raise _unreadable(path, exc) from None
    data = np.asarray(data)
    if data.size == 0:
        raise UserError(f"{path} cannot be read as an image (it holds no pixels; the file may be truncated); "
                        f"re-save it as TIFF or remove it.")
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    return data


def infer_axes(shape: tuple, override: str | None = None) -> str:
    """Axes letters for a shape, for files whose metadata do not say (the documented rule users rely on).

    2 dims: YX. 3 dims: YXC if the last is 3 or 4 and the first > 4 (RGB/RGBA), CYX if the first is <= 4
    and the other two > 16 (a few leading channels), else ZYX. 4 dims: ZYXC if the last is 3 or 4, CZYX
    if the first is <= 4, else TZYX. More dims are refused. `override` (upper-cased) replaces the rule.
    """
    if override:
        override = override.upper()
        if len(override) != len(shape):
            raise UserError(f"Axes {override!r} do not fit an image of shape {shape}; give one letter per dimension.")
        return override
    nd = len(shape)
    if nd == 2:
        return "YX"
    if nd == 3:
        if shape[-1] in (3, 4) and shape[0] > 4:
            return "YXC"
        if shape[0] <= 4 and shape[1] > 16 and shape[2] > 16:
            return "CYX"
        return "ZYX"
    if nd == 4:
        if shape[-1] in (3, 4):
            return "ZYXC"
        return "CZYX" if shape[0] <= 4 else "TZYX"
    raise UserError(f"Images with {nd} dimensions are not supported; save one 2D or 3D image per file.")


def channels_first(image: np.ndarray, axes: str | None = None) -> np.ndarray:
    """An image as networks, normalisation and metrics see it: the channel axis (if any) first, the others
    in their order: YX and ZYX stay, YXC and CYX become CYX, ZCYX (ImageJ's order) and CZYX become CZYX.
    Without `axes`, the stated rule of `infer_axes` decides."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    ax = axes or infer_axes(image.shape)
    return np.moveaxis(image, ax.index("C"), 0) if "C" in ax and ax.index("C") > 0 else image


def dtype_range(dtype: np.dtype) -> float | None:
    """Full data range of an integer dtype (PSNR/SSIM use it); None for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.max) - float(min(info.min, 0))
    return None


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs should be readable like any file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def staging_folder(target: str | Path) -> Path:
    """A new hidden folder beside `target` to build it in (`.NAME.staging-HOST-PID-xxxx`), so a kill never
    leaves a half-made `target`. Staging folders that killed runs on this host left for the same target are
    removed first: a rerun leaves nothing behind."""
    import glob
    import shutil
    import socket

    from ..locks import pid_alive

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    prefix = f".{target.name}.staging-{host}-"
    for old in target.parent.glob(glob.escape(prefix) + "*"):
        pid = old.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=target.parent))


IMAGEJ_ORDER = "TZCYXS"  # tifffile writes ImageJ hyperstacks only with axes in this order


def _spatial(axes: str) -> str:
    return "".join(a for a in axes if a in "ZYX")


def write_tiff(path: str | Path, data: np.ndarray, axes: str | None = None,
               spacing: tuple[float, ...] | None = None) -> Path:
    """Atomic TIFF with ImageJ hyperstack metadata where ImageJ can represent the dtype and axes order.

    `spacing` is the voxel size in micrometres for the Z/Y/X axes of `axes` in that order; ImageJ files
    get ImageJ's calibration (X/YResolution, `unit=um`, `spacing` for Z), other TIFFs resolution tags in cm.
    """
    import tifffile

    data = np.asarray(data)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    if data.dtype == np.int64 or data.dtype == np.uint32 or data.dtype == np.int32:
        if data.size and data.min() >= 0 and data.max() <= 65535:
            data = data.astype(np.uint16)
        else:
            data = data.astype(np.float32)
    axes = axes or infer_axes(data.shape)
    size = None
    if spacing is not None:
        spacing = tuple(float(v) for v in spacing)
        if len(spacing) != len(_spatial(axes)) or not all(np.isfinite(v) and v > 0 for v in spacing):
            raise ValueError(f"spacing {spacing} must give one positive size per Z/Y/X axis of {axes!r}")
        size = dict(zip(_spatial(axes), spacing))
    imagej = data.dtype in (np.uint8, np.uint16, np.float32) and set(axes) <= set(IMAGEJ_ORDER)
    samples_last = axes.endswith("C") and data.shape[-1] in (3, 4)
    ordered = "".join(a for a in IMAGEJ_ORDER if a in axes) == axes  # tifffile refuses e.g. CZYX, YXC
    with atomic_path(path) as tmp:
        if imagej and ordered and not (samples_last and data.dtype == np.uint8):
            kw, meta = {}, {"axes": axes}
            if size:
                kw["resolution"] = (1.0 / size["X"], 1.0 / size["Y"])
                meta["unit"] = "um"
                if "Z" in size:
                    meta["spacing"] = size["Z"]
            tifffile.imwrite(tmp, data, imagej=True, metadata=meta, **kw)
        else:
            # explicit, else tifffile would store a leading dim of 3 or 4 (CYX) as planar RGB samples
            kw = {"photometric": "rgb" if samples_last else "minisblack"}
            if size:
                kw.update(resolution=(1e4 / size["X"], 1e4 / size["Y"]), resolutionunit="CENTIMETER")
            tifffile.imwrite(tmp, data, compression="zlib", **kw)
    return Path(path)


@dataclass(frozen=True)
class ImageMeta:
    """What a file says about its array: axes letters (T, Z, C, Y, X; RGB samples last as C), the voxel
    size in micrometres for its Z/Y/X axes in that order (None when uncalibrated), and where the axes
    came from ("imagej", "ome", "rule" or "override")."""

    axes: str
    spacing: tuple[float, ...] | None
    origin: str


# Micrometres per unit, as ImageJ (`unit=`, µ escaped as \u00B5 in its descriptions) and OME-XML write them.
UM_PER_UNIT = {"micron": 1.0, "microns": 1.0, "um": 1.0, "\u00b5m": 1.0, "\u03bcm": 1.0, "\\u00b5m": 1.0,
               "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
               "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6, "pm": 1e-6,
               "\u00c5": 1e-4, "angstrom": 1e-4, "inch": 25400.0}


def _um(unit) -> float | None:
    """Micrometres per `unit`; None for 'pixel', no unit, or units that are not lengths."""
    if unit is None:
        return None
    return UM_PER_UNIT.get(str(unit).strip()) or UM_PER_UNIT.get(str(unit).strip().lower())


def _letters(series_axes: str, imagej: bool) -> str | None:
    """tifffile's axes as ImageJ/OME letters: S (samples) -> C, ImageJ's I (a plain stack) -> Z."""
    axes = series_axes.replace("S", "C")
    if imagej:
        axes = axes.replace("I", "Z")
    if not set(axes) <= set("TZCYX") or len(set(axes)) != len(axes) or not {"Y", "X"} <= set(axes):
        return None
    return axes


def _imagej_spacing(tif, axes: str) -> tuple[float, ...] | None:
    """ImageJ calibration: y/x size = 1 / Y/XResolution, z size = `spacing` (1 unit if absent, as ImageJ)."""
    ij = tif.imagej_metadata or {}
    factor = _um(ij.get("unit"))
    if factor is None:
        return None
    tags = tif.pages[0].tags
    size = {}
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        t = tags.get(tag)
        num, den = t.value if t is not None else (1, 1)
        if not num or not den:
            return None
        size[letter] = den / num * factor
    size["Z"] = float(ij.get("spacing", 1.0)) * factor
    return tuple(size[a] for a in _spatial(axes))


def _ome_spacing(tif, axes: str) -> tuple[float, ...] | None:
    """OME-XML PhysicalSizeX/Y/Z of the first image (unit attributes default to micrometres)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(tif.ome_metadata)
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    out = []
    for a in _spatial(axes):
        value, factor = pixels.get(f"PhysicalSize{a}"), _um(pixels.get(f"PhysicalSize{a}Unit", "um"))
        if value is None or factor is None or not float(value) > 0:
            return None
        out.append(float(value) * factor)
    return tuple(out)


def _probe(path: Path) -> tuple[tuple, str | None, tuple[float, ...] | None, str]:
    """Shape of what `read_image` returns, and the axes/spacing/origin the metadata give (axes None: rule)."""
    try:
        if path.suffix.lower() in TIFF_EXTS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape = tuple(series.shape)
                kind = "imagej" if tif.is_imagej else "ome" if tif.is_ome else None
                axes = _letters(series.axes, kind == "imagej") if kind else None
                if axes is None or len(axes) != len(shape):
                    return shape, None, None, "rule"
                spacing = _imagej_spacing(tif, axes) if kind == "imagej" else _ome_spacing(tif, axes)
                return shape, axes, spacing, kind
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            gray = im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;")
            shape = (im.height, im.width) if gray else (im.height, im.width, 3)  # read_image drops alpha
        return shape, None, None, "rule"
    except Exception as exc:  # tifffile/PIL/XML raise many types for broken files
        raise _unreadable(path, exc) from None


def _meta(path: Path, shape: tuple, axes: str | None, spacing, origin: str, override: str | None) -> ImageMeta:
    if override:
        new = override.strip().upper()
        if (len(new) != len(shape) or not set(new) <= set("TZCYX") or len(set(new)) != len(new)
                or not {"Y", "X"} <= set(new)):
            raise UserError(f"{path} has shape {shape}, which axes {override!r} do not fit; give --axes with one "
                            f"letter per dimension from T, Z, C, Y, X, each once (e.g. ZYX or YXC).")
        if spacing is not None and len(spacing) != len(_spatial(new)):
            spacing = None
        return ImageMeta(new, spacing, "override")
    if axes is None:
        try:
            axes = infer_axes(shape)
        except UserError:
            raise UserError(f"{path} has {len(shape)} dimensions {shape}, which no rule fits; save one 2D or 3D "
                            f"image per file, or give --axes with one letter per dimension.") from None
        return ImageMeta(axes, None, "rule")
    return ImageMeta(axes, spacing, origin)


def read_meta(path: str | Path, override: str | None = None) -> ImageMeta:
    """Axes and voxel size of an image file from its metadata alone (pixels are not read)."""
    path = Path(path)
    return _meta(path, *_probe(path), override)


def read_image_with_meta(path: str | Path, axes: str | None = None) -> tuple[np.ndarray, ImageMeta]:
    """Pixels as `read_image` returns them, and the meta describing that array (axes: the user's override)."""
    path = Path(path)
    data = read_image(path)
    shape, found, spacing, origin = _probe(path)
    if tuple(shape) != data.shape:  # metadata describe another shape: trust the array, not the tags
        shape, found, spacing, origin = data.shape, None, None, "rule"
    return data, _meta(path, shape, found, spacing, origin, axes)
