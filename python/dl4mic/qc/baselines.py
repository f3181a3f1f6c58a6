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
"""

from __future__ import annotations

import numpy as np

from .metrics import restoration_metrics, segmentation_metrics

SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
SIGMA_PAIRS = 8


def gray(image: np.ndarray) -> np.ndarray:
    """Single-channel float view of an image (RGB/RGBA averaged over the last axis)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    return image


def affine_fit(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`a * image + b` with the least squared error to `target` (float64)."""
    x = np.asarray(image, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    vx = x.var()
    a = 0.0 if vx == 0 else float(np.mean((x - x.mean()) * (y - y.mean())) / vx)
    b = float(y.mean() - a * x.mean())
    return (a * np.asarray(image, dtype=np.float64) + b)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(image, dtype=np.float64), sigma)


def _as_target(image: np.ndarray, target: np.ndarray, fit: bool) -> np.ndarray:
    return affine_fit(image, target) if fit else np.asarray(image, dtype=np.float64)


def choose_sigma(sources, targets, data_range: float, sigmas=SIGMAS, fit: bool = False) -> tuple[float, dict]:
    """Sigma with the best mean SSIM on the first `SIGMA_PAIRS` pairs; also returns SSIM per sigma."""
    pairs = list(zip(sources, targets))[:SIGMA_PAIRS]
    scores = {}
    for s in sigmas:
        scores[float(s)] = float(np.mean([
            restoration_metrics(_as_target(gaussian(x, s), y, fit), y, data_range)["ssim"] for x, y in pairs]))
    best = max(scores, key=scores.get)
    return best, scores


def restoration_baselines(source: np.ndarray, target: np.ndarray, sigma: float, fit: bool = False) -> dict:
    """{"input": image, "gaussian": image} (affine-fitted to `target` if `fit`); {} if shapes differ."""
    if np.shape(source) != np.shape(target):
        return {}
    return {"input": _as_target(source, target, fit), "gaussian": _as_target(gaussian(source, sigma), target, fit)}


def otsu_masks(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(bright-foreground mask, Otsu threshold) of an image; the dark mask is its complement."""
    from skimage.filters import threshold_otsu

    g = gray(image)
    if g.max() == g.min():
        return np.zeros(g.shape, dtype=bool), float(g.min())
    t = float(threshold_otsu(g))
    return g > t, t


def otsu_baseline(images, true_masks) -> tuple[list[np.ndarray], str, list[float]]:
    """Otsu masks of every image in the polarity ("bright"/"dark") with the better pooled IoU."""
    bright, thresholds = zip(*(otsu_masks(im) for im in images)) if len(images) else ((), ())
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


def otsu_instances(image: np.ndarray, polarity: str = "bright") -> np.ndarray:
    """Connected components of the Otsu mask: the instance segmentation baseline."""
    from skimage.measure import label

    mask, _ = otsu_masks(image)
    return label(mask if polarity == "bright" else ~mask).astype(np.uint16)
