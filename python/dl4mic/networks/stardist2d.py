"""StarDist 2D (Schmidt et al., MICCAI 2018): star-convex polygons for nuclei instance segmentation.

The network is the reference StarDist 2D model rebuilt in PyTorch: the input is max-pooled to the
prediction `grid` (two 3x3 convolutions before each pooling), a U-Net laid out as CSBDeep's
`unet_block`, a 3x3 convolution with `conv_after_unet` channels and two 1x1 heads: the object
probability (one channel, a logit here) and `n_rays` distances from each grid pixel to the object's
outline, in input pixels. The loss is the reference one: binary cross-entropy on the probability
(target: the normalised Euclidean distance transform of each object) plus `dist_loss_weight` times
the mean absolute error of the distances weighted by that target, with a small penalty on distances
predicted on background.

Geometry comes from the `stardist` package, which needs no TensorFlow for it: star distances and
`edt_prob` for the targets, non-maximum suppression and polygon rendering for predictions, and
`stardist.matching` for threshold optimisation and QC.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.normalize import scale
from .base import Network, Outputs
from .unet import BATCH_NORM, CONV, MAX_POOL, UNet, keras_init

#: thresholds the reference tries for NMS; IoU levels whose mean matching accuracy is maximised
NMS_CANDIDATES = (0.3, 0.4, 0.5)
IOU_LEVELS = (0.3, 0.5, 0.7)
#: above this fraction of candidate pixels the model is deemed untrained and thresholds are not optimised
MAX_CANDIDATE_FRACTION = 0.5
#: labels a uint16 image can hold
MAX_UINT16 = 65535


# ----------------------------------------------------------------------------------------------- model

def _conv(cin: int, cout: int, k: int, batch_norm: bool, dims: int = 2) -> list[nn.Module]:
    layers: list[nn.Module] = [CONV[dims](cin, cout, k, padding=k // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(BATCH_NORM[dims](cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


def grid_pools(grid: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The max-pool factors that bring the input to the prediction grid, as the reference builds them:
    halve every axis not yet at its grid factor, until all are (grid (1, 2, 2) -> [(1, 2, 2)])."""
    pooled, pools = [1] * len(grid), []
    while tuple(pooled) != tuple(grid):
        pool = tuple(2 if g > p else 1 for g, p in zip(grid, pooled))
        pooled = [p * q for p, q in zip(pooled, pool)]
        pools.append(pool)
    return pools


class StarDistModule(nn.Module):
    """Input (B, 1, *S) -> (B, 1 + n_rays, *S/grid): probability logit, then ray distances (2D: S = H, W;
    3D with `dims=3`: S = Z, Y, X and `grid` one factor per axis).

    With `bundle_output` (what a bioimage.io / DeepImageJ bundle runs; same state dict) the output is
    (B, 1 + n_rays, *S): channel 0 the object probability (sigmoid applied), channels 1.. the ray
    distances in input pixels, upsampled from the grid by repetition -- the layout StarDist's own export
    (`upsample_grid=True`) and its DeepImageJ post-processing macro expect."""

    def __init__(self, n_rays: int = 32, grid=2, depth: int = 3, filters: int = 32, kernel_size: int = 3,
                 batch_norm: bool = False, conv_after_unet: int = 128, bundle_output: bool = False, dims: int = 2):
        super().__init__()
        self.config = {"n_rays": n_rays, "grid": grid, "depth": depth, "filters": filters,
                       "kernel_size": kernel_size, "batch_norm": batch_norm, "conv_after_unet": conv_after_unet,
                       "dims": dims}
        self.grid = tuple(grid) if isinstance(grid, (tuple, list)) else (int(grid),) * dims
        self.n_rays, self.bundle_output = n_rays, bundle_output
        pre: list[nn.Module] = []
        c = 1
        for pool in grid_pools(self.grid):
            pre += _conv(c, filters, kernel_size, batch_norm, dims) + _conv(filters, filters, kernel_size, batch_norm, dims)
            pre.append(MAX_POOL[dims](pool))
            c = filters
        self.pre = nn.Sequential(*pre)
        self.unet = UNet(c, None, depth=depth, filters=filters, kernel_size=kernel_size, batch_norm=batch_norm,
                         dims=dims)
        c = self.unet.out_width
        self.features = nn.Sequential(*_conv(c, conv_after_unet, kernel_size, False, dims)) if conv_after_unet > 0 \
            else nn.Identity()
        c = conv_after_unet if conv_after_unet > 0 else c
        self.prob = CONV[dims](c, 1, 1)
        self.dist = CONV[dims](c, n_rays, 1)
        keras_init(self)  # as the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.unet(self.pre(x)))
        if not self.bundle_output:
            return torch.cat([self.prob(h), self.dist(h)], dim=1)
        out = torch.cat([torch.sigmoid(self.prob(h)), self.dist(h)], dim=1)
        if any(g > 1 for g in self.grid):
            out = nn.functional.interpolate(out, scale_factor=tuple(float(g) for g in self.grid), mode="nearest")
        return out


# ----------------------------------------------------------------------------------------------- loss

def stardist_loss(dist_weight: float = 0.2, background_reg: float = 1e-4) -> Callable:
    """The reference loss on (B, 1 + n_rays, h, w) predictions and targets [prob, dist...]:
    BCE(prob) + dist_weight * (mean(prob * |d - d^|) / mean(prob) + background_reg * mean((1 - prob) * |d^|))."""

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob_t, dist_t = target[:, :1], target[:, 1:]
        logit, dist_p = pred[:, :1], pred[:, 1:]
        bce = nn.functional.binary_cross_entropy_with_logits(logit, prob_t)
        err = (dist_t - dist_p).abs()
        dist = (prob_t * err).mean() / (prob_t.mean() + 1e-7)
        if background_reg > 0:
            dist = dist + background_reg * ((1 - prob_t) * dist_p.abs()).mean()
        return bce + dist_weight * dist

    return loss


# ----------------------------------------------------------------------------------------------- targets

def prepare_labels(labels: np.ndarray) -> np.ndarray:
    """Training labels as StarDist wants them: holes filled, values that fit uint16 (relabelled if not)."""
    from stardist.utils import fill_label_holes

    labels = np.asarray(labels)
    if labels.size and labels.max() > MAX_UINT16:
        from skimage.segmentation import relabel_sequential

        labels = relabel_sequential(labels.astype(np.int64))[0]
    return fill_label_holes(labels.astype(np.uint16, copy=False)).astype(np.uint16, copy=False)


def stardist_targets(labels: np.ndarray, n_rays: int, grid: int) -> np.ndarray:
    """(B, 1, P, P) label patches -> (B, 1 + n_rays, P/grid, P/grid) float32: [object probability, distances]."""
    from stardist.geometry import star_dist
    from stardist.utils import edt_prob

    labels = np.asarray(labels)
    b, _, p, q = labels.shape
    out = np.empty((b, 1 + n_rays, -(-p // grid), -(-q // grid)), np.float32)
    for i in range(b):
        lbl = np.ascontiguousarray(labels[i, 0], dtype=np.uint16)
        out[i, 0] = edt_prob(lbl[::grid, ::grid])
        out[i, 1:] = np.moveaxis(star_dist(lbl, n_rays, mode="cpp", grid=(grid, grid)), -1, 0)
    return out


def foreground_crop(foreground_prob: float, jitter: bool, tries: int = 16) -> Callable:
    """Patch selection for training (2D and 3D): with probability `foreground_prob` a patch that contains
    an object (uniform over such patches, as the reference's `train_foreground_only`), else anywhere; then,
    with `jitter`, the reference example's intensity augmentation x * U(0.6, 2) + U(-0.2, 0.2). The region
    restricts the first spatial axis (Y in 2D, Z in 3D)."""

    def crop(x, y, region, patch, rng):
        spatial = x.shape[-len(patch):]
        lows = (region.start,) + (0,) * (len(patch) - 1)
        highs = (region.stop - patch[0],) + tuple(n - p for n, p in zip(spatial[1:], patch[1:]))
        want_fg = y is not None and rng.random() < foreground_prob
        sl = None
        for _ in range(tries if want_fg else 1):
            starts = [int(rng.integers(lo, hi + 1)) for lo, hi in zip(lows, highs)]
            sl = tuple(slice(a, a + p) for a, p in zip(starts, patch))
            if not want_fg or y[sl].any():
                break
        else:  # few objects: centre a patch around a random foreground pixel of the region
            where = np.nonzero(y[region.start:region.stop])
            if where[0].size:
                j = int(rng.integers(where[0].size))
                centre = [int(w[j]) for w in where]
                centre[0] += region.start
                starts = [min(max(c - int(rng.integers(p)), lo), hi)
                          for c, p, lo, hi in zip(centre, patch, lows, highs)]
                sl = tuple(slice(a, a + p) for a, p in zip(starts, patch))
        px, py = x[(Ellipsis,) + sl], (y[sl] if y is not None else None)
        if jitter:
            px = (px * np.float32(rng.uniform(0.6, 2.0)) + np.float32(rng.uniform(-0.2, 0.2))).astype(np.float32)
        return px, py

    return crop


# ----------------------------------------------------------------------------------------------- instances

def sigmoid(a: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(a, -60, 60)))).astype(np.float32)


def instances(prob: np.ndarray, dist: np.ndarray, shape: tuple, grid: int, prob_thresh: float,
              nms_thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-maximum suppression over the whole image and polygon rendering.

    `prob` (h, w) and `dist` (n_rays, h, w) on the grid (a view of the raw output; only pixels above
    `prob_thresh` are copied). Returns (labels int32 of `shape`, points (n, 2) in pixels, scores (n,));
    label k is the k-th kept polygon (sorted by score, descending); a polygon hidden by better ones
    leaves no pixel."""
    from stardist.geometry import polygons_to_label
    from stardist.nms import non_maximum_suppression

    points, scores, dists = non_maximum_suppression(np.moveaxis(dist, 0, -1), prob, grid=(grid, grid),
                                                    prob_thresh=prob_thresh, nms_thresh=nms_thresh)
    labels = polygons_to_label(dists, points, shape=tuple(shape), prob=scores)
    return labels, points, scores


def object_table(labels: np.ndarray, scores: np.ndarray) -> list[dict]:
    """One row per label present in a 2D or 3D label image: label, centroid per axis (`centroid_z`,
    `centroid_y`, `centroid_x`, pixels), size (`area` in 2D, `volume` in 3D, pixels) and score. Works
    object by object in its bounding box, so memory stays small for large images."""
    from scipy import ndimage

    axes = "ZYX"[-labels.ndim:]
    size = "area" if labels.ndim == 2 else "volume"
    rows = []
    for value, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        where = np.nonzero(labels[box] == value)
        row = {"label": value}
        row.update({f"centroid_{a.lower()}": float(w.mean() + b.start) for a, w, b in zip(axes, where, box)})
        row[size] = int(where[0].size)
        row["score"] = float(scores[value - 1]) if value <= len(scores) else float("nan")
        rows.append(row)
    return rows


def as_label_image(labels: np.ndarray) -> np.ndarray:
    """uint16 when the labels fit (as ImageJ reads them), else uint32."""
    return labels.astype(np.uint16 if (labels.size == 0 or labels.max() <= MAX_UINT16) else np.uint32)


def optimize_thresholds(predictions: list, truths: list[np.ndarray], render: Callable,
                        nms_threshs=NMS_CANDIDATES, iou_threshs=IOU_LEVELS, measure: str = "accuracy",
                        tol: float = 1e-2, maxiter: int = 20) -> dict:
    """The reference's `optimize_thresholds`: for each NMS threshold, a golden-section search of the
    probability threshold in [max_prob / 2, max_prob] maximising `measure` averaged over `iou_threshs`
    (stardist.matching on whole images or stacks); the best pair wins. `predictions[i][0]` is the
    probability map of image i; `render(prediction, shape, prob_thresh, nms_thresh)` gives its labels."""
    from scipy.optimize import minimize_scalar
    from stardist.matching import matching_dataset

    max_prob = max(float(np.max(p[0])) for p in predictions)
    bracket = (max_prob / 2, max_prob)
    per_nms = []
    for nms in nms_threshs:
        values: dict[float, float] = {}

        def fn(thr, nms=nms, values=values):
            t = float(np.clip(thr, *bracket))
            if t not in values:
                pred = [render(p, y.shape, t, nms) for p, y in zip(predictions, truths)]
                stats = matching_dataset(truths, pred, thresh=list(iou_threshs), show_progress=False, parallel=False)
                values[t] = float(np.mean([s._asdict()[measure] for s in stats]))
            return -values[t]

        opt = minimize_scalar(fn, method="golden", bracket=bracket, tol=tol, options={"maxiter": maxiter})
        per_nms.append({"nms_thresh": float(nms), "prob_thresh": float(np.clip(opt.x, *bracket)),
                        measure: float(-opt.fun)})
    best = max(per_nms, key=lambda r: r[measure])
    return {"prob_thresh": best["prob_thresh"], "nms_thresh": best["nms_thresh"], "value": best[measure],
            "measure": measure, "iou_thresholds": list(iou_threshs), "per_nms": per_nms}


# ----------------------------------------------------------------------------------------------- network

def receptive_radius(kernel_size: int, depth: int, grid: int, conv_after_unet: int) -> int:
    """Input pixels each side that reach one output pixel of `StarDistModule`, along an axis with this
    grid factor (the U-Net pools by 2 along every axis)."""
    k = int(kernel_size) // 2
    r, s = 0, 1
    while s < grid:  # 2 convs + pool
        r += 2 * k * s + s
        s *= 2
    for _ in range(depth):
        r += 2 * k * s + s
        s *= 2
    r += 2 * k * s  # middle
    for _ in range(depth):
        s //= 2
        r += 2 * k * s + s  # nearest up-sampling misaligns by up to one coarse pixel
    if conv_after_unet > 0:
        r += k * s
    return r


class StarDist2D(Network):
    """StarDist 2D; StarDist 3D (`stardist3d.py`) shares everything but the geometry of its shapes."""

    name = "stardist2d"

    def grid(self, params) -> tuple[int, ...]:
        return (int(params["grid"]),) * self.dims

    def build(self, params):
        grid = self.grid(params)
        return StarDistModule(n_rays=int(params["n_rays"]), grid=grid[0] if self.dims == 2 else grid,
                              depth=int(params["depth"]), filters=int(params["filters"]),
                              kernel_size=int(params["kernel_size"]), batch_norm=bool(params["batch_norm"]),
                              conv_after_unet=int(params["conv_after_unet"]), dims=self.dims)

    def _multiple(self, params) -> tuple[int, ...]:
        return tuple(g * 2 ** int(params["depth"]) for g in self.grid(params))

    def halo(self, params):
        r = [receptive_radius(params["kernel_size"], int(params["depth"]), g, int(params.get("conv_after_unet", 0)))
             for g in self.grid(params)]
        return tuple(int(-(-(ri + m) // m) * m) for ri, m in zip(r, self._multiple(params)))

    def out_scale(self, params):
        return tuple(Fraction(1, g) for g in self.grid(params))

    def geometry(self, params, spacing=None):
        return replace(super().geometry(params, spacing), multiple=self._multiple(params))

    def qc_task(self):
        return "instance"

    def prepare(self, normalizer, params):
        def prepare(source, target):
            y = prepare_labels(target) if target is not None else None
            return scale(source, *normalizer.source_range(source)), y

        return prepare

    def patch_crop(self, params):
        return foreground_crop(float(params["foreground_prob"]),
                               bool(params["augment"]) and bool(params["intensity_jitter"]))

    def training_batch(self, x, y, rng, params):
        return x, stardist_targets(y, int(params["n_rays"]), int(params["grid"]))

    def loss(self, params):
        return stardist_loss(float(params["dist_loss_weight"]), float(params["background_reg"]))

    # validation maps and rendering: dense maps in 2D; StarDist 3D keeps candidates only
    def validation_prediction(self, run, image, params):
        """What `render` needs of one whole validation image: (probability map, distance maps) on the grid."""
        from ..tiling import DEFAULT_TILE, predict_tiled

        g = self.geometry(params)
        raw = predict_tiled(run, image, DEFAULT_TILE[self.dims], g.halo, g.multiple, g.out_scale)
        return sigmoid(raw[0]), raw[1:]

    def render(self, prediction, shape, params, prob_thresh, nms_thresh) -> np.ndarray:
        """Labels of one image from its `validation_prediction` at these thresholds."""
        prob, dist = prediction
        return instances(prob, dist, shape, int(params["grid"]), prob_thresh, nms_thresh)[0]

    def finalize(self, predict_batches, val_batches, params, val_images=None):
        """Optimise (prob_thresh, nms_thresh) on the whole validation images, as the reference does."""
        defaults = {"prob_thresh": float(params["prob_thresh"]), "nms_thresh": float(params["nms_thresh"])}
        images = val_images() if val_images is not None else []
        if not params.get("optimize_thresholds", True) or not images:
            why = "disabled" if not params.get("optimize_thresholds", True) else "no validation images"
            return {**defaults, "thresholds": {"optimized": False, "reason": why}}

        def run(window):
            return predict_batches([window])[0]

        preds = [self.validation_prediction(run, x, params) for x, _ in images]
        truths = [np.asarray(y) for _, y in images]
        max_prob = max(float(p[0].max()) for p in preds)
        if max_prob <= 0.05:
            return {**defaults, "thresholds": {"optimized": False, "reason": "no object predicted on validation"}}
        candidates = sum(int(np.count_nonzero(p[0] > max_prob / 2)) for p in preds) / sum(p[0].size for p in preds)
        if candidates > MAX_CANDIDATE_FRACTION:  # an untrained model: NMS over most pixels would take very long
            return {**defaults, "thresholds": {"optimized": False, "reason": f"the model does not separate objects "
                                               f"from background yet ({candidates:.0%} of pixels above half the "
                                               f"highest probability); train longer"}}
        result = optimize_thresholds(preds, truths, lambda pred, shape, t, nms: self.render(pred, shape, params, t, nms))
        if result["value"] <= 0:
            return {**defaults, "thresholds": {"optimized": False, "reason": "no object matched on validation",
                                               "n_images": len(images), **result}}
        return {"prob_thresh": round(result["prob_thresh"], 6), "nms_thresh": result["nms_thresh"],
                "thresholds": {"optimized": True, "n_images": len(images), **result}}

    def export_module(self, module: StarDistModule) -> nn.Module:
        """The graph a bundle holds: sigmoid probability + distances at input resolution (`bundle_output`);
        `bundle_config` and `postprocessing_macro` give the rest of the bundle."""
        bundle = StarDistModule(**module.config, bundle_output=True)
        bundle.load_state_dict(module.state_dict())
        return bundle.eval()

    def outputs(self, raw_output, image, normalizer, source_range, config):
        params = config["parameters"]
        grid = int(params["grid"])
        prob_thresh = float(config.get("prob_thresh", params["prob_thresh"]))
        nms_thresh = float(config.get("nms_thresh", params["nms_thresh"]))
        prob = sigmoid(raw_output[0])
        labels, points, scores = instances(prob, raw_output[1:], image.shape[-2:], grid, prob_thresh, nms_thresh)
        return Outputs({"labels": (as_label_image(labels), "YX")}, {"objects": object_table(labels, scores)})

    def output_keys(self, config):
        return ["labels", "objects"]

    def report_items(self, config):
        from ..reports.sections import stardist_thresholds

        return [("thresholds (prob / NMS)", stardist_thresholds(config))] if "prob_thresh" in config else []

    def export_spec(self, config):
        return stardist_export(config)


# ----------------------------------------------------------------------------------------------- export

def stardist_export(config: dict):
    """The bundle: probability + distances at input resolution and StarDist's config; in 2D the NMS macro
    DeepImageJ runs after the network. No DeepImageJ macro does StarDist 3D's NMS, so a 3D bundle says
    where its objects come from instead."""
    from .export_specs import ExportSpec, unet_words

    p = config["parameters"]
    n_rays, prob, nms = int(p["n_rays"]), float(config["prob_thresh"]), float(config["nms_thresh"])
    three_d = (config.get("geometry") or {}).get("axes") == "ZYX"
    shape = "polyhedra" if three_d else "polygons"
    if three_d:
        where = (f"DeepImageJ runs this network in Fiji and gives the two maps, but not StarDist 3D's non-maximum "
                 f"suppression (no Fiji plugin has it): `dl4mic predict BUNDLE.zip` or dl4mic's Fiji Predict "
                 f"script turn the maps into the label stack, per-slice ROIs and an object table, with this "
                 f"model's thresholds, probability {prob:g} and overlap {nms:g}, optimised on the validation stacks.")
    else:
        where = (f"in Fiji the attached macro `{MACRO_NAME}` runs StarDist's NMS (StarDist plugin needed) with this "
                 f"model's thresholds, probability {prob:g} and overlap {nms:g}, optimised on the validation images. "
                 f"`dl4mic predict BUNDLE.zip` writes the label image, ROIs and an object table directly.")
    grid = "x".join(str(g) for g in _grid_list(p, 3 if three_d else 2))
    extra = {} if three_d else {"attachments": {MACRO_NAME: postprocessing_macro(config)},
                                "dij_postprocess": {"spec": "ij.IJ::runMacroFile", "kwargs": MACRO_NAME}}
    return ExportSpec(
        output_id="prob_dist", output_units="probability and ray distances (pixels)",
        output_description=f"Channel 0: object probability; channels 1-{n_rays}: ray distances to the outline (pixels).",
        units_note=(f"The output holds StarDist's two maps at the input's resolution: the object probability and "
                    f"{n_rays} ray distances. Objects come from non-maximum suppression of the star-convex "
                    f"{shape}: {where}"),
        loss=(f"binary cross-entropy on the object probability + {p['dist_loss_weight']} x probability-weighted "
              f"mean absolute error of the ray distances"),
        architecture=(f"StarDist {'3D' if three_d else '2D'}: {grid} grid, {unet_words(config)} backbone, "
                      f"{n_rays} rays" + (f", anisotropy {p['anisotropy']}" if three_d else "")),
        channel_names=("prob",) + tuple(f"dist_{i}" for i in range(n_rays)),
        extra_config={"stardist": bundle_config(config)}, **extra)


def _grid_list(p: dict, dims: int) -> list[int]:
    """The grid per axis from model.yaml (2D: one integer; 3D: 'gz,gy,gx')."""
    g = p["grid"]
    return [int(v) for v in str(g).split(",")] if dims == 3 else [int(g)] * 2


POSTPROCESSING_MACRO = """\
//*******************************************************************
// StarDist 2D post-processing for DeepImageJ, written by dl4mic.
// Adapted from StarDist's bioimage.io export (stardist/bioimageio_utils.py, BSD-3-Clause), itself
// adapted from https://github.com/deepimagej/imagej-macros (StarDist2D_Post-processing.ijm).
// Needs the StarDist and DeepImageJ plugins. The image to process is the model's output: channel 1
// the object probability, channels 2.. the ray distances.
//*******************************************************************
getDimensions(width, height, channels, slices, frames);
name=getTitle();

probThresh={prob};
nmsThresh={nms};

run("Make Substack...", "channels=1");
rename("scores");

selectWindow(name);
run("Delete Slice", "delete=channel");
selectWindow(name);
run("Properties...", "channels=" + maxOf(channels, slices) - 1 + " slices=1 frames=1 pixel_width=1.0000 pixel_height=1.0000 voxel_depth=1.0000");
rename("distances");

run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], args=['prob':'scores', 'dist':'distances', 'probThresh':'" + probThresh + "', 'nmsThresh':'" + nmsThresh + "', 'outputType':'Both', 'excludeBoundary':'2', 'roiPosition':'Stack', 'verbose':'false'], process=[false]");
"""

MACRO_NAME = "stardist_postprocessing.ijm"


def postprocessing_macro(config: dict) -> str:
    """The DeepImageJ post-processing macro with the model's thresholds (attach as `MACRO_NAME`)."""
    return (POSTPROCESSING_MACRO.replace("{prob}", f"{float(config['prob_thresh']):.6g}")
            .replace("{nms}", f"{float(config['nms_thresh']):.6g}"))


def bundle_config(config: dict) -> dict:
    """`config.stardist` of a bioimage.io bundle, in the layout StarDist's own export writes (thresholds,
    the Config2D / Config3D fields that describe this network, the 2D post-processing macro's file name)."""
    import stardist

    p = config["parameters"]
    three_d = (config.get("geometry") or {}).get("axes") == "ZYX"
    dims = 3 if three_d else 2
    grid = _grid_list(p, dims)
    patch = p["patch_size"] if isinstance(p["patch_size"], list) else [int(p["patch_size"])] * dims
    described = {
        "axes": "ZYXC" if three_d else "YXC", "n_dim": dims, "n_channel_in": 1, "n_channel_out": 1 + int(p["n_rays"]),
        "n_rays": int(p["n_rays"]), "grid": grid, "backbone": "unet", "n_classes": None,
        "unet_n_depth": int(p["depth"]), "unet_n_filter_base": int(p["filters"]),
        "unet_kernel_size": [int(p["kernel_size"])] * dims, "unet_n_conv_per_depth": 2, "unet_pool": [2] * dims,
        "unet_batch_norm": bool(p["batch_norm"]), "net_conv_after_unet": int(p["conv_after_unet"]),
        "train_patch_size": [int(v) for v in patch], "train_dist_loss": "mae",
        "train_loss_weights": [1.0, float(p["dist_loss_weight"])],
        "train_background_reg": float(p["background_reg"]),
        "train_foreground_only": float(p["foreground_prob"]),
    }
    out = {"stardist_version": stardist.__version__, "python_version": stardist.__version__,
           "thresholds": {"prob": float(config["prob_thresh"]), "nms": float(config["nms_thresh"])}}
    if three_d:
        from .stardist3d import golden_spiral_rays

        anisotropy = [float(v) for v in str(p["anisotropy"]).split(",")]
        described.update({"anisotropy": anisotropy,
                          "rays_json": golden_spiral_rays(int(p["n_rays"]), tuple(anisotropy)).to_json()})
    else:
        out["postprocessing_macro"] = MACRO_NAME
    out["config"] = described
    out["upsampled_output"] = any(g > 1 for g in grid)  # the bundle's output is at input resolution (bundle_output)
    return out
