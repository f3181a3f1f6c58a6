"""Simple methods scored beside the model on the same images, so users see whether deep learning helps.

The baselines are deliberately generous (tuned on the test targets), which is the honest side
to err on: a model that cannot beat a generous baseline is not worth its cost.

* Restoration: the raw input and a Gaussian filter of it, scored exactly like the model (same
  units, no fit) when input and target share units (denoising). When they do not (the model learnt
  a `fixed` target range, e.g. phase -> fluorescence), each baseline is first mapped to the target's
  intensities by the least-squares affine fit (a * x + b), since a raw input cannot be in the
  target's units. The Gaussian sigma is the one of `SIGMAS` with the best mean SSIM on (at most 8 of)
  the test pairs.
* Segmentation: Otsu's threshold of each image; the polarity (bright or dark foreground) is the
  one with the better IoU pooled over the test set, and is reported.
* Volumes (Z, Y, X): the Gaussian filter is 3D (per-axis sigma for anisotropic voxels, see
  `choose_sigma`), Otsu takes one threshold per stack and instances are 3D connected components.
"""

from __future__ import annotations

import numpy as np

from .metrics import restoration_metrics, segmentation_metrics

SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
SIGMA_PAIRS = 8


def gray(image: np.ndarray, axes: str | None = None) -> np.ndarray:
    """Single-channel float view of an image or volume: channels averaged (RGBA: alpha ignored).

    `axes` (letters Z, Y, X, C, e.g. "YX", "YXC", "CYX", "ZYX", "ZYXC") says which axis, if any, holds
    channels. Without it the historic 2D rule applies: a 3-axis array whose last axis has 3 or 4 entries
    is RGB(A). That guess cannot tell a (Z, Y, X) stack 3-4 pixels wide from colour, so callers with
    volumes pass `axes="ZYX"` (nothing is averaged then)."""
    image = np.asarray(image, dtype=np.float64)
    if axes is None:
        if not (image.ndim == 3 and image.shape[-1] in (3, 4)):
            return image
        axes = "YXC"
    axes = axes.upper().replace("S", "C")  # S: TIFF samples (RGB)
    if len(axes) != image.ndim:
        raise ValueError(f"axes {axes!r} do not fit an array of shape {image.shape}")
    if "C" not in axes:
        return image
    image = np.moveaxis(image, axes.index("C"), -1)
    return (image[..., :3] if image.shape[-1] == 4 else image).mean(axis=-1)


def affine_fit(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`a * image + b` with the least squared error to `target` (float64)."""
    x = np.asarray(image, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    vx = x.var()
    a = 0.0 if vx == 0 else float(np.mean((x - x.mean()) * (y - y.mean())) / vx)
    b = float(y.mean() - a * x.mean())
    return (a * np.asarray(image, dtype=np.float64) + b)


def gaussian(image: np.ndarray, sigma) -> np.ndarray:
    """Gaussian filter of an image (Y, X) or volume (Z, Y, X) of one channel (float64). `sigma` is one
    number (pixels, every axis) or one per axis, e.g. from `anisotropic_sigma` for anisotropic voxels."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float64)
    if np.ndim(sigma) == 0:
        return gaussian_filter(image, float(sigma))
    if len(sigma) != image.ndim:
        raise ValueError(f"sigma {tuple(sigma)} needs one value per axis of an image of shape {image.shape}")
    return gaussian_filter(image, tuple(float(v) for v in sigma))


def anisotropic_sigma(sigma: float, spacing) -> tuple[float, ...]:
    """Per-axis sigma (pixels) of a filter that is isotropic in physical space: `sigma` pixels along the
    finest axis, `sigma * spacing_min / spacing_axis` along the others (e.g. fewer pixels along a coarse Z).
    `spacing` is the voxel size per axis (e.g. µm, Z, Y, X)."""
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size == 0 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing {tuple(spacing)} must be positive numbers, one per axis")
    return tuple(float(sigma) * float(sp.min()) / float(v) for v in sp)


def _as_target(image: np.ndarray, target: np.ndarray, fit: bool) -> np.ndarray:
    return affine_fit(image, target) if fit else np.asarray(image, dtype=np.float64)


def choose_sigma(sources, targets, data_range: float, sigmas=SIGMAS, fit: bool = False,
                 spacing=None) -> tuple:
    """Sigma with the best mean SSIM on the first `SIGMA_PAIRS` pairs; also returns SSIM per sigma.

    Sources may be images or volumes. With `spacing` (voxel size per axis, e.g. (z, y, x) µm), each
    candidate sigma is in pixels along the finest axis and scaled per axis by `anisotropic_sigma`, so the
    filter is isotropic in physical space; the best is then returned as that per-axis tuple (ready for
    `gaussian` and `restoration_baselines`), while the SSIM scores stay keyed by the candidate sigma."""
    pairs = list(zip(sources, targets))[:SIGMA_PAIRS]
    scores = {}
    for s in sigmas:
        per_axis = s if spacing is None else anisotropic_sigma(s, spacing)
        scores[float(s)] = float(np.mean([
            restoration_metrics(_as_target(gaussian(x, per_axis), y, fit), y, data_range)["ssim"]
            for x, y in pairs]))
    best = max(scores, key=scores.get)
    return (best if spacing is None else anisotropic_sigma(best, spacing)), scores


def restoration_baselines(source: np.ndarray, target: np.ndarray, sigma, fit: bool = False) -> dict:
    """{"input": image, "gaussian": image} (affine-fitted to `target` if `fit`); {} if shapes differ.
    Images or volumes; `sigma` is a number or one per axis (as `choose_sigma` returns it)."""
    if np.shape(source) != np.shape(target):
        return {}
    return {"input": _as_target(source, target, fit), "gaussian": _as_target(gaussian(source, sigma), target, fit)}


def otsu_masks(image: np.ndarray, axes: str | None = None) -> tuple[np.ndarray, float]:
    """(bright-foreground mask, Otsu threshold) of an image; the dark mask is its complement.
    A volume gets one threshold from the histogram of the whole stack (3D Otsu), so planes agree.
    `axes`: see `gray` (needed only where a channel axis could be mistaken)."""
    from skimage.filters import threshold_otsu

    g = gray(image, axes)
    if g.max() == g.min():
        return np.zeros(g.shape, dtype=bool), float(g.min())
    t = float(threshold_otsu(g))
    return g > t, t


def otsu_baseline(images, true_masks, axes: str | None = None) -> tuple[list[np.ndarray], str, list[float]]:
    """Otsu masks of every image (or volume: one threshold per stack) in the polarity ("bright"/"dark")
    with the better pooled IoU. `axes`: one layout for all images, see `gray`."""
    bright, thresholds = zip(*(otsu_masks(im, axes) for im in images)) if len(images) else ((), ())
    counts = {"bright": [0, 0, 0], "dark": [0, 0, 0]}
    for b, m in zip(bright, true_masks):
        for name, pred in (("bright", b), ("dark", ~b)):
            s = segmentation_metrics(pred, m)
            for i, k in enumerate(("tp", "fp", "fn")):
                counts[name][i] += s[k]
    iou = {k: (tp / (tp + fp + fn) if tp + fp + fn else 1.0) for k, (tp, fp, fn) in counts.items()}
    polarity = "bright" if iou["bright"] >= iou["dark"] else "dark"
    masks = [b if polarity == "bright" else ~b for b in bright]
    return masks, polarity, list(thresholds)


def otsu_instances(image: np.ndarray, polarity: str = "bright", axes: str | None = None) -> np.ndarray:
    """Connected components of the Otsu mask: the instance segmentation baseline. Volumes give 3D
    components (26-connected: voxels touching by a face, edge or corner form one object)."""
    from skimage.measure import label

    mask, _ = otsu_masks(image, axes)
    return label(mask if polarity == "bright" else ~mask).astype(np.uint16)
