"""StarDist 3D (Weigert et al., WACV 2020): star-convex polyhedra for nuclei in Z stacks.

The network is stardist 0.9.2's `Config3D` U-Net model rebuilt in PyTorch on StarDist 2D's module
(`StarDistModule(dims=3)`): max-pooling to the prediction grid, a U-Net of depth 2 with 32 filters
pooling by 2 along every axis, a 128-channel 3x3x3 convolution and the probability / `n_rays` distance
heads. Rays are `Rays_GoldenSpiral(n_rays)` scaled by the objects' anisotropy, and the grid follows it
(stardist's rule: 1 along an axis whose anisotropy exceeds 1.5, else 2). The loss, patch selection and
threshold optimisation are StarDist 2D's.

The anisotropy is fixed at training: given (`anisotropy=2.2,1,1`), else from the voxel size the files
record, else from the median extents of the training objects (stardist's `calculate_extents` rule).

Prediction never holds the 96 distance maps of a whole stack: each tile keeps the distances of the
voxels whose probability passes the threshold (as stardist's sparse prediction does), and one
non-maximum suppression runs on the candidates of the whole stack, so a nucleus on a tile border is
found once and whole. Geometry (`star_dist3D`, `non_maximum_suppression_3d_sparse`,
`polyhedron_to_label`, `stardist.matching`) comes from the stardist package, which needs no
TensorFlow for it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..errors import UserError
from ..tiling import DEFAULT_TILE, iter_tiles, output_crop
from .base import Outputs
from .stardist2d import StarDist2D, as_label_image, object_table, sigmoid

#: an axis whose objects are this much shorter (in voxels) than the longest axis is not subsampled
GRID_ANISOTROPY_LIMIT = 1.5
GRID_CHOICES = (1, 2, 4, 8)
#: candidates kept on validation stacks (the threshold search starts at half the highest probability)
VALIDATION_FLOOR = 0.05
#: grid voxels at the stack's border that seed no object (stardist's `b=2`)
BORDER = 2
#: shortest ray kept (the reference's floor: polyhedra need positive distances)
MIN_DIST = 1e-3
#: label files read to measure the objects' extents when the voxel size is unknown
MAX_EXTENT_FILES = 64


# ----------------------------------------------------------------------------------------------- parameters

def _triplet(value, name: str, cast, example: str):
    """'auto' -> None; '2.2,1,1', [2.2, 1, 1] or one number for every axis -> a tuple of 3."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    items = value.replace("x", ",").split(",") if isinstance(value, str) else (
        list(value) if isinstance(value, (list, tuple)) else [value])
    try:
        values = tuple(cast(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or any(v <= 0 for v in values):
        raise UserError(f"Parameter {name}={value!r} needs 3 positive numbers (Z, Y, X) or auto; give e.g. "
                        f"--param {name}={example}.")
    return values


def _as_text(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def anisotropy_from_spacing(spacing) -> tuple[float, float, float] | None:
    """Objects look shorter along an axis with larger voxels by the ratio of voxel sizes."""
    if not spacing or len(spacing) != 3:
        return None
    smallest = min(float(s) for s in spacing)
    return tuple(round(float(s) / smallest, 4) for s in spacing)


def anisotropy_from_labels(label_stacks) -> tuple[float, float, float] | None:
    """stardist's rule: the median bounding-box extent of the objects per axis (median per stack, then
    over stacks); anisotropy = the longest median extent / each axis's."""
    from scipy import ndimage

    medians = []
    for labels in label_stacks:
        boxes = [b for b in ndimage.find_objects(np.asarray(labels).astype(np.int64, copy=False)) if b is not None]
        if boxes:
            medians.append(np.median([[s.stop - s.start for s in b] for b in boxes], axis=0))
    if not medians:
        return None
    extents = np.median(np.stack(medians), axis=0)
    return tuple(round(float(extents.max() / max(e, 1e-6)), 4) for e in extents)


def grid_from_anisotropy(anisotropy) -> tuple[int, int, int]:
    return tuple(1 if a > GRID_ANISOTROPY_LIMIT else 2 for a in anisotropy)


@lru_cache(maxsize=8)
def golden_spiral_rays(n_rays: int, anisotropy: tuple[float, float, float]):
    from stardist.rays3d import Rays_GoldenSpiral

    return Rays_GoldenSpiral(int(n_rays), anisotropy=tuple(float(a) for a in anisotropy))


# ----------------------------------------------------------------------------------------------- targets

def stardist3d_targets(labels: np.ndarray, rays, grid: tuple, anisotropy: tuple) -> np.ndarray:
    """(B, 1, Z, Y, X) label patches -> (B, 1 + n_rays, Z/gz, Y/gy, X/gx) float32: [object probability
    (the anisotropic distance transform normalised per object, subsampled), distances along `rays`]."""
    from stardist.geometry import star_dist3D
    from stardist.utils import edt_prob

    labels = np.asarray(labels)
    b = labels.shape[0]
    sub = tuple(slice(0, None, g) for g in grid)
    shape = tuple(-(-n // g) for n, g in zip(labels.shape[2:], grid))
    out = np.empty((b, 1 + len(rays)) + shape, np.float32)
    for i in range(b):
        lbl = np.ascontiguousarray(labels[i, 0], dtype=np.uint16)
        out[i, 0] = edt_prob(lbl, anisotropy=anisotropy)[sub]
        out[i, 1:] = np.moveaxis(star_dist3D(lbl, rays, grid=grid, mode="cpp"), -1, 0)
    return out


# ----------------------------------------------------------------------------------------------- prediction

class Candidates(NamedTuple):
    """A stack's prediction with bounded memory: the probability map on the grid, and the grid voxels
    above a floor with their probability and ray distances (what non-maximum suppression needs)."""

    prob: np.ndarray    # (z, y, x) on the grid
    index: np.ndarray   # (n, 3) grid coordinates
    score: np.ndarray   # (n,)
    dist: np.ndarray    # (n, n_rays)


def predict_candidates(run, image: np.ndarray, tile, geometry, floor: float) -> Candidates:
    """Tiled prediction of one normalised stack keeping only voxels with probability above `floor`; the
    last tile along an axis overlaps its neighbour, so voxels already taken are skipped."""
    prob = seen = None
    index, score, dist = [], [], []
    for shape, dst, core in iter_tiles(run, image, tile, geometry.halo, geometry.multiple, geometry.out_scale):
        if prob is None:
            prob, seen = np.zeros(shape, np.float32), np.zeros(shape, bool)
        p = sigmoid(core[0])
        prob[dst] = p
        keep = (p > floor) & ~seen[dst]
        seen[dst] = True
        if keep.any():
            where = np.nonzero(keep)
            index.append(np.stack([w + s.start for w, s in zip(where, dst)], axis=1))
            score.append(p[keep])
            dist.append(np.maximum(MIN_DIST, core[1:][:, keep].T).astype(np.float32))
    crop = output_crop(image.shape[-3:], geometry.out_scale)
    prob = prob[crop]
    if not index:
        return Candidates(prob, np.zeros((0, 3), np.int64), np.zeros(0, np.float32),
                          np.zeros((0, core.shape[0] - 1), np.float32))
    index, score, dist = np.concatenate(index), np.concatenate(score), np.concatenate(dist)
    inside = np.all(index < np.array(prob.shape), axis=1)
    return Candidates(prob, index[inside], score[inside], dist[inside])


def instances3d(cand: Candidates, rays, grid: tuple, shape: tuple, prob_thresh: float,
                nms_thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-maximum suppression of the candidates above `prob_thresh` (none seeded within `BORDER` grid
    voxels of the stack's faces, as the reference) and polyhedron rendering. Returns (labels int32 of
    `shape`, centres (n, 3) in voxels, scores (n,)); label k is the k-th kept polyhedron by score."""
    from stardist.geometry import polyhedron_to_label
    from stardist.nms import non_maximum_suppression_3d_sparse

    n = np.array(cand.prob.shape)
    keep = (cand.score > prob_thresh) & np.all((cand.index >= BORDER) & (cand.index < n - BORDER), axis=1)
    if not keep.any():
        return np.zeros(shape, np.int32), np.zeros((0, 3)), np.zeros(0, np.float32)
    points = cand.index[keep] * np.array(grid)
    points, scores, dists, _ = non_maximum_suppression_3d_sparse(cand.dist[keep], cand.score[keep], points, rays,
                                                                 nms_thresh=nms_thresh)
    labels = polyhedron_to_label(dists, points, rays, shape=tuple(shape), prob=scores, verbose=False)
    return labels, points, scores


# ----------------------------------------------------------------------------------------------- network

class StarDist3D(StarDist2D):
    name = "stardist3d"
    dims = 3

    def resolve(self, params, spacing, data=None):
        """Fix the anisotropy (given, voxel size, or the training objects' extents) and the grid."""
        params = dict(params)
        anisotropy = _triplet(params.get("anisotropy"), "anisotropy", float, "2.2,1,1")
        if anisotropy is None:
            anisotropy = anisotropy_from_spacing(spacing)
        if anisotropy is None and data is not None:
            pairs = [t for _, t in data.summary.pairs if t is not None][:MAX_EXTENT_FILES]
            from ..data.io import read_image

            anisotropy = anisotropy_from_labels(read_image(t) for t in pairs)
        anisotropy = anisotropy or (1.0, 1.0, 1.0)
        grid = _triplet(params.get("grid"), "grid", int, "1,2,2") or grid_from_anisotropy(anisotropy)
        if any(g not in GRID_CHOICES for g in grid):
            raise UserError(f"Parameter grid={_as_text(grid)} must use factors from {list(GRID_CHOICES)} per axis; "
                            f"give e.g. --param grid=1,2,2.")
        params["anisotropy"], params["grid"] = _as_text(anisotropy), _as_text(grid)
        return params

    def grid(self, params):
        return _triplet(params["grid"], "grid", int, "1,2,2") or (1, 2, 2)

    def anisotropy(self, params) -> tuple[float, float, float]:
        return _triplet(params["anisotropy"], "anisotropy", float, "2.2,1,1") or (1.0, 1.0, 1.0)

    def rays(self, params):
        return golden_spiral_rays(int(params["n_rays"]), self.anisotropy(params))

    def training_batch(self, x, y, rng, params):
        return x, stardist3d_targets(y, self.rays(params), self.grid(params), self.anisotropy(params))

    def validation_prediction(self, run, image, params):
        return predict_candidates(run, image, DEFAULT_TILE[3], self.geometry(params), VALIDATION_FLOOR)

    def render(self, prediction, shape, params, prob_thresh, nms_thresh):
        return instances3d(prediction, self.rays(params), self.grid(params), shape, prob_thresh, nms_thresh)[0]

    def predict_raw(self, run, image, tile, geometry, config):
        return predict_candidates(run, image, tile, geometry, _thresholds(config)[0])

    def outputs(self, raw_output, image, normalizer, source_range, config):
        params = config["parameters"]
        prob_thresh, nms_thresh = _thresholds(config)
        labels, _, scores = instances3d(raw_output, self.rays(params), self.grid(params), image.shape[-3:],
                                        prob_thresh, nms_thresh)
        return Outputs({"labels": (as_label_image(labels), "ZYX")}, {"objects": object_table(labels, scores)})

    def report_items(self, config):
        p = config["parameters"]
        return super().report_items(config) + [("anisotropy (Z, Y, X) / grid", f"{p['anisotropy']} / {p['grid']}")]


def _thresholds(config: dict) -> tuple[float, float]:
    p = config["parameters"]
    return float(config.get("prob_thresh", p["prob_thresh"])), float(config.get("nms_thresh", p["nms_thresh"]))
