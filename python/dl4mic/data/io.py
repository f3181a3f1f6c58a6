"""Image files: listing, reading (TIFF/PNG/JPEG, any bit depth), axes inference, atomic writing."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
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


def read_image(path: str | Path) -> np.ndarray:
    """Pixel data as stored (dtype kept); refuses corrupt or unreadable files with the fix."""
    path = Path(path)
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
        raise UserError(f"{path} cannot be read as an image ({type(exc).__name__}); "
                        f"re-save it as TIFF (e.g. in Fiji: File > Save As > Tiff) or remove it.") from None
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
    """Axes letters for a shape: YX, ZYX, YXC (RGB/RGBA last), CYX (few leading channels)."""
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
    """A 2D image as networks, normalisation and metrics see it: (Y, X) stays, a multichannel (Y, X, C) or
    (C, Y, X) image becomes (C, Y, X)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    ax = axes or infer_axes(image.shape)
    return np.moveaxis(image, -1, 0) if ax == "YXC" else image


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


def write_tiff(path: str | Path, data: np.ndarray, axes: str | None = None) -> Path:
    """Atomic TIFF with ImageJ hyperstack metadata where ImageJ can represent the dtype."""
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
    imagej = data.dtype in (np.uint8, np.uint16, np.float32) and set(axes) <= set("TZCYXS")
    with atomic_path(path) as tmp:
        if imagej:
            if axes.endswith("C") and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
                tifffile.imwrite(tmp, data, photometric="rgb", compression="zlib")
            else:
                tifffile.imwrite(tmp, data, imagej=True, metadata={"axes": axes})
        else:
            tifffile.imwrite(tmp, data, compression="zlib")
    return Path(path)
