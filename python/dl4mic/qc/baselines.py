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
* Instance segmentation: the Otsu mask (same polarity rule) split into objects two ways:
  connected components (`otsu`), and a watershed of its distance transform (`watershed`), which
  separates touching round objects that connected components merge (see `distance_watershed`).
* Volumes (Z, Y, X): the Gaussian filter is 3D (per-axis sigma for anisotropic voxels, see
  `choose_sigma`), Otsu takes one threshold per stack, instances are 3D connected components
  (26-connected) and the watershed's distances are in physical units when the voxel size is known.
"""

from __future__ import annotations

import numpy as np

from .metrics import restoration_metrics

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


def polarity_counts(bright_mask, true_mask) -> dict:
    """Pixel (voxel) counts (tp, fp, fn) of the bright Otsu mask and of its complement against the truth,
    computed from the bright mask alone (no inverted copy of a large stack). Sum them over images with
    `choose_polarity`."""
    b = np.asarray(bright_mask, bool)
    t = np.asarray(true_mask, bool)
    if b.shape != t.shape:
        raise ValueError(f"mask {b.shape} and truth {t.shape} differ in shape")
    n_b, n_t, both = int(np.count_nonzero(b)), int(np.count_nonzero(t)), int(np.count_nonzero(b & t))
    return {"bright": (both, n_b - both, n_t - both),
            "dark": (n_t - both, b.size - n_b - n_t + both, both)}


def choose_polarity(counts) -> str:
    """"bright" or "dark": the polarity with the better IoU pooled over the images' `polarity_counts`."""
    iou = {}
    for name in ("bright", "dark"):
        tp, fp, fn = (sum(c[name][i] for c in counts) for i in range(3))
        iou[name] = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    return "bright" if iou["bright"] >= iou["dark"] else "dark"


def otsu_baseline(images, true_masks, axes: str | None = None) -> tuple[list[np.ndarray], str, list[float]]:
    """Otsu masks of every image (or volume: one threshold per stack) in the polarity ("bright"/"dark")
    with the better pooled IoU. `axes`: one layout for all images, see `gray`."""
    bright, thresholds = zip(*(otsu_masks(im, axes) for im in images)) if len(images) else ((), ())
    polarity = choose_polarity([polarity_counts(b, m) for b, m in zip(bright, true_masks)])
    masks = [b if polarity == "bright" else ~b for b in bright]
    return masks, polarity, list(thresholds)


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """uint16 labels when the largest id fits (what Fiji and StarDist write), else uint32: never wraps."""
    labels = np.asarray(labels)
    return labels.astype(np.uint16 if labels.max(initial=0) < 2 ** 16 else np.uint32, copy=False)


def _full_structure(ndim: int) -> np.ndarray:
    """Pixels touching by a face, an edge or a corner are neighbours (8-connected 2D, 26-connected 3D)."""
    from scipy.ndimage import generate_binary_structure

    return generate_binary_structure(ndim, ndim)


def connected_components(mask: np.ndarray) -> np.ndarray:
    """Objects of a mask as its connected components (8-connected in 2D, 26-connected in 3D)."""
    from scipy.ndimage import label

    mask = np.asarray(mask, bool)
    out = np.zeros(mask.shape, np.int32)  # int32: half the memory of the default int64 on big stacks
    label(mask, structure=_full_structure(mask.ndim), output=out)
    return compact_labels(out)


def otsu_instances(image: np.ndarray, polarity: str = "bright", axes: str | None = None) -> np.ndarray:
    """Connected components of the Otsu mask: the instance segmentation baseline. Volumes give 3D
    components (26-connected: voxels touching by a face, edge or corner form one object)."""
    mask, _ = otsu_masks(image, axes)
    return connected_components(mask if polarity == "bright" else ~mask)


# Peaks of the distance transform lower than this many (finest) voxels above the saddle that joins them
# to a higher peak are noise of the mask's border, not object centres (see `distance_watershed`).
PEAK_DYNAMIC_VOXELS = 1.5


def _sampling(spacing, ndim: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    sp = tuple(float(v) for v in np.ravel(spacing))
    if len(sp) != ndim or not all(np.isfinite(v) and v > 0 for v in sp):
        raise ValueError(f"spacing {tuple(spacing)} must be {ndim} positive numbers, one per spatial axis")
    return sp


def _padded_box(box: tuple, shape: tuple, pad: int = 1) -> tuple:
    """A bounding box grown by `pad` inside the image, so the object is ringed by background where the
    image goes on (the distance transform must not take the crop's edge for object)."""
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def _markers(distance: np.ndarray, sampling: tuple[float, ...]) -> tuple[np.ndarray, int]:
    """Watershed seeds of one object's distance transform (labels 1..n, and n); see `distance_watershed`."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima

    h = PEAK_DYNAMIC_VOXELS * min(sampling)
    if distance.max() < h:
        return np.zeros(distance.shape, np.int32), 0
    tops, n = ndi.label(h_maxima(distance, h), structure=_full_structure(distance.ndim))
    if n <= 1:
        return tops, n
    ids = np.arange(1, n + 1)
    height = np.asarray(ndi.maximum(distance, tops, ids), np.float64)  # radius of each peak's inscribed ball
    centre = np.asarray(ndi.center_of_mass(tops > 0, tops, ids), np.float64) * np.asarray(sampling)
    kept: list[int] = []
    for i in np.argsort(-height, kind="stable"):
        if kept and np.any(np.linalg.norm(centre[kept] - centre[i], axis=1) < height[kept]):
            continue  # inside the largest ball of a higher peak: the same object
        kept.append(int(i))
    lut = np.zeros(n + 1, np.int32)
    lut[np.asarray(kept) + 1] = np.arange(1, len(kept) + 1)
    return lut[tops], len(kept)


def distance_watershed(mask: np.ndarray, spacing=None) -> np.ndarray:
    """Objects of a mask split by a watershed of its Euclidean distance transform: the baseline that
    separates touching round objects (nuclei) which connected components merge.

    Each connected component (26-connected in 3D) is processed in its own bounding box, so a large
    stack never needs a full-size float copy. Its distance to the background is computed in physical
    units when `spacing` (voxel size per axis, e.g. (z, y, x) µm) is known, so an anisotropic stack
    with coarse Z is split like an isotropic one; without it every axis counts one unit per pixel.
    Seeds are peaks of that distance, and -distance is flooded from them inside the component.

    Which peaks count as separate objects (the minimum peak distance rule):
    * a peak lower than 1.5 voxels (`PEAK_DYNAMIC_VOXELS`, finest axis) above the saddle joining it to a
      higher peak is dropped (h-maxima): one-voxel bumps of a noisy Otsu border make such shallow peaks,
      while two touching nuclei of radius r meet in a neck, so their peaks rise far above the saddle;
    * a peak closer to a higher peak than that peak's height is merged into it: the height is the
      radius of the largest ball inside the object there, so the peak lies inside the same object's
      core (an elongated or lumpy nucleus), whereas two touching round nuclei have centres about two
      radii apart. The distance between peaks thus scales with the objects themselves; no pixel
      distance is tuned (a fixed one over-splits large nuclei and merges small ones).
    A component with fewer than two seeds stays one object."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    mask = np.asarray(mask, bool)
    sampling = _sampling(spacing, mask.ndim) or (1.0,) * mask.ndim
    full = _full_structure(mask.ndim)
    components = np.zeros(mask.shape, np.int32)
    ndi.label(mask, structure=full, output=components)
    out = np.zeros(mask.shape, np.int32)
    next_id = 1
    for k, box in enumerate(ndi.find_objects(components), 1):
        if box is None:
            continue
        box = _padded_box(box, mask.shape)
        obj = components[box] == k
        if obj.all():  # the whole image is one object: no background to measure a distance to
            seeds, n = None, 1
        else:
            distance = ndi.distance_transform_edt(obj, sampling=sampling)
            seeds, n = _markers(distance, sampling)
        target = out[box]  # a view: writing into it fills `out`
        if n <= 1:
            target[obj] = next_id
            next_id += 1
            continue
        # full connectivity, as the component's: every voxel of it is reached from some seed
        split = watershed(-distance, seeds, mask=obj, connectivity=mask.ndim)
        target[obj] = split[obj] + (next_id - 1)
        next_id += n
    return compact_labels(out)


def otsu_watershed_instances(image: np.ndarray, polarity: str = "bright", axes: str | None = None,
                             spacing=None) -> np.ndarray:
    """Distance-transform watershed of the Otsu mask (`distance_watershed`): the second instance baseline."""
    mask, _ = otsu_masks(image, axes)
    return distance_watershed(mask if polarity == "bright" else ~mask, spacing)
