"""StarDist 3D: anisotropy and grid rules, targets, exact tiling, nuclei on every tile border and corner of a
stack found once and whole with bounded memory, predict outputs (calibrated labels, objects in pixels and
µm, TrackMate for time series), and a few training steps on stardist's own 3D test stack."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

import dl4mic
from dl4mic.data.io import read_image_with_meta, write_tiff
from dl4mic.errors import UserError
from dl4mic.networks import get_network
from dl4mic.networks import stardist3d as sd3
from dl4mic.predict.model import LoadedModel, load_model
from dl4mic.specs import load_spec
from dl4mic.tiling import predict_tiled

from helpers import cli, write_stardist_model

NET = get_network("stardist3d")
SMALL = {"depth": 1, "filters": 4, "conv_after_unet": 8, "n_rays": 32, "anisotropy": "2,1,1",
         "patch_size": "16,32,32"}


def small_params(**kw) -> dict:
    return NET.resolve(load_spec("stardist3d").resolve({**SMALL, **kw}), None)


def balls(shape, centres, radii) -> np.ndarray:
    """Ellipsoids (radii per axis, in voxels) labelled 1..n."""
    labels = np.zeros(shape, np.uint16)
    rz, ry, rx = radii
    zz, yy, xx = np.mgrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    ball = (zz / rz) ** 2 + (yy / ry) ** 2 + (xx / rx) ** 2 <= 1
    for i, (cz, cy, cx) in enumerate(centres, start=1):
        sl = (slice(cz - rz, cz + rz + 1), slice(cy - ry, cy + ry + 1), slice(cx - rx, cx + rx + 1))
        labels[sl][ball] = i
    return labels


def oracle(params):
    """A 'network' that predicts perfectly: each window's objects (bright balls) become the StarDist 3D
    targets on the grid (probability as a logit); a window sees only its own voxels, like a real tile."""
    from skimage.measure import label

    rays, grid, anisotropy = NET.rays(params), NET.grid(params), NET.anisotropy(params)

    def run(window):
        lbl = label(window[0, 0] > 0.5).astype(np.uint16)
        target = sd3.stardist3d_targets(lbl[None, None], rays, grid, anisotropy)[0]
        p = np.clip(target[0], 1e-4, 1 - 1e-4)
        target[0] = np.log(p / (1 - p))
        return target[None]

    return run


def write_model(folder, params, prob_thresh=0.5, nms_thresh=0.4):
    return write_stardist_model(folder, "stardist3d", params, prob_thresh, nms_thresh, axes="ZYX")


def border_stack(shape, tile, radii=(3, 6, 6)):
    """Balls centred on the tile borders and corners in Y and X (and between tiles in Z)."""
    z = shape[0] // 2
    centres = set()
    for b in range(tile, shape[1], tile):
        for a in range(tile // 2, shape[2], tile // 2):
            centres |= {(z, b, a), (z, a, b)}
    margin = max(radii[1:]) + 3
    centres = sorted(c for c in centres if all(margin <= v < n - margin for v, n in zip(c[1:], shape[1:])))
    # neighbours must not touch: keep centres at least a ball apart
    kept = []
    for c in centres:
        if all(max(abs(c[1] - k[1]), abs(c[2] - k[2])) > 2 * max(radii[1:]) + 2 for k in kept):
            kept.append(c)
    labels = balls(shape, kept, radii)
    return np.where(labels > 0, 200, 10).astype(np.uint8), labels


# ------------------------------------------------------------------------------------------ parameters

def test_anisotropy_and_grid_rules(tmp_path):
    spec = load_spec("stardist3d")
    p = NET.resolve(spec.resolve({}), (2.0, 0.5, 0.5))  # z step 4x the pixel size
    assert p["anisotropy"] == "4,1,1" and p["grid"] == "1,2,2"
    p = NET.resolve(spec.resolve({}), (0.5, 0.5, 0.5))
    assert p["anisotropy"] == "1,1,1" and p["grid"] == "2,2,2"
    p = NET.resolve(spec.resolve({"anisotropy": "2.2,1,1", "grid": "1,4,4"}), (1.0, 1.0, 1.0))  # given wins
    assert p["anisotropy"] == "2.2,1,1" and p["grid"] == "1,4,4"
    assert NET.resolve(p, None) == p  # stored values resolve to themselves (resume)
    labels = balls((40, 64, 64), [(10, 16, 16), (28, 44, 40)], (3, 7, 7))  # extents 7 x 15 x 15 voxels
    assert sd3.anisotropy_from_labels([labels]) == (round(15 / 7, 4), 1.0, 1.0)
    with pytest.raises(UserError, match="anisotropy=2.2,1,1"):
        NET.resolve(spec.resolve({"anisotropy": "2,1"}), None)
    with pytest.raises(UserError, match="grid=1,2,2"):
        NET.resolve(spec.resolve({"grid": "1,3,3"}), None)


def test_targets_follow_the_anisotropic_rays():
    p = small_params()
    labels = balls((16, 48, 48), [(8, 24, 24)], (3, 6, 6))[None, None]  # twice as short in Z: anisotropy 2
    t = sd3.stardist3d_targets(labels, NET.rays(p), NET.grid(p), NET.anisotropy(p))
    assert t.shape == (1, 33, 16, 24, 24) and t.dtype == np.float32
    assert t[0, 0, 8, 12, 12] == pytest.approx(1.0) and t[0, 0, 0, 0, 0] == 0
    rays = NET.rays(p).vertices  # directions in voxels, shortened along Z by the anisotropy
    dist = t[0, 1:, 8, 12, 12]
    reach = np.linalg.norm(rays * dist[:, None] * np.array([2.0, 1.0, 1.0]), axis=1)  # in isotropic units
    assert reach.min() > 6.0 and reach.max() < 8.5  # every ray ends on the surface (radius 6-7, voxel edges)


def test_model_shape_and_tiling_is_exact():
    p = small_params()
    module = NET.build(p).eval()
    g = NET.geometry(p)
    assert g.multiple == (2, 4, 4) and g.out_scale == (Fraction(1), Fraction(1, 2), Fraction(1, 2))
    with torch.no_grad():
        assert module(torch.zeros(1, 1, 8, 16, 24)).shape == (1, 33, 8, 8, 12)
    image = np.random.default_rng(2).random((22, 50, 46), dtype=np.float32)

    def run(w):
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(w))).numpy()

    whole = predict_tiled(run, image, None, g.halo, g.multiple, g.out_scale)
    tiled = predict_tiled(run, image, (8, 16, 16), g.halo, g.multiple, g.out_scale)
    assert whole.shape == (33, 22, 25, 23)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    cand = sd3.predict_candidates(run, image, (8, 16, 16), g, floor=0.0)
    assert cand.prob.shape == whole.shape[1:] and len(cand.score) == whole[0].size  # every voxel is a candidate
    order = np.ravel_multi_index(tuple(cand.index.T), cand.prob.shape)
    expected = np.maximum(sd3.MIN_DIST, whole[1:].reshape(32, -1).T)  # distances floored as in the reference
    np.testing.assert_allclose(cand.dist[np.argsort(order)], expected, atol=1e-5)


# ------------------------------------------------------------------------------------------ prediction

CHILD_TILED = """
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_stardist3d as T
from stardist.matching import matching
from dl4mic.predict.model import load_model

p = T.small_params(n_rays=96)
model = load_model(T.write_model(Path(sys.argv[2]) / "m", p))
model._run = T.oracle(p)
side = int(sys.argv[3])
image, truth = T.border_stack((24, side, side), 96)
model.predict(image[:, :64, :64], tile=(12, 32, 32))  # warm-up: imports outside the measurement
def hwm():  # peak resident memory (VmHWM) in KiB; writing 5 to clear_refs resets it to the current one
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
open("/proc/self/clear_refs", "w").write("5")
before = hwm()
result = model.predict(image, tile=(12, 96, 96))  # side / 96 tiles in Y and X, 2 in Z
after = hwm()
labels = result["labels"]
m = matching(truth, labels, thresh=0.7)
print(json.dumps({"n": int(truth.max()), "n_pred": int(m.n_pred), "tp": int(m.tp), "dtype": str(labels.dtype),
                  "shape": list(labels.shape), "objects": len(result["objects"]), "row": result["objects"][0],
                  "peak_mb": (after - before) / 1024, "dense_mb": 97 * 24 * (side // 2) ** 2 * 4 / 2**20}))
"""


def test_nuclei_on_tile_borders_are_found_once_and_whole_with_bounded_memory(tmp_path):
    """Balls on every tile border and corner of 24 x 288 x 288 and 24 x 480 x 480 stacks predicted in 3 x 3 x 2
    and 5 x 5 x 2 tiles: each is found once and whole (IoU > 0.7 with its ball), from one NMS over the whole
    stack. The extra memory (measured in a fresh process) is the tiles' (97 maps of one tile), not the
    stack's: it hardly grows from the small to the large stack, whose stitched 97 maps would take 512 MB;
    only candidates above the threshold keep their 96 distances."""
    runs = {}
    for side in (288, 480):
        out = subprocess.run([sys.executable, "-c", CHILD_TILED, str(Path(__file__).parent), str(tmp_path / str(side)),
                              str(side)], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        r = runs[side] = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["dtype"] == "uint16" and r["shape"] == [24, side, side]
        assert r["n_pred"] == r["n"] and r["tp"] == r["n"] and r["objects"] == r["n"], r
        assert set(r["row"]) == {"label", "centroid_z", "centroid_y", "centroid_x", "volume", "score"}
        assert r["row"]["volume"] > 300 and 0.5 < r["row"]["score"] <= 1
    small, large = runs[288], runs[480]
    assert large["n"] > 2 * small["n"] >= 30
    assert large["peak_mb"] < small["peak_mb"] + 60 and large["peak_mb"] < large["dense_mb"] / 2, runs


def test_predict_cli_writes_calibrated_labels_objects_in_microns_and_trackmate(tmp_path, monkeypatch):
    p = small_params()
    model = write_model(tmp_path / "m", p)
    monkeypatch.setattr(LoadedModel, "_run", lambda self, x: oracle(p)(x))
    image, truth = border_stack((16, 64, 64), 32)
    n = int(truth.max())
    inp = tmp_path / "in"
    inp.mkdir()
    write_tiff(inp / "stack.tif", image, "ZYX", spacing=(2.0, 0.5, 0.5))
    write_tiff(inp / "movie.tif", np.stack([image, np.roll(image, 4, axis=2)]), "TZYX", spacing=(2.0, 0.5, 0.5))
    out = tmp_path / "out"
    assert cli("predict", model, "--input", inp, "--output", out, "--tile", "8,32,32", "--rois") == 0
    names = sorted(f.name for f in out.iterdir())
    assert names == ["movie_labels.tif", "movie_objects.csv", "movie_rois.zip", "movie_trackmate.csv",
                     "stack_labels.tif", "stack_objects.csv", "stack_rois.zip"]
    labels, meta = read_image_with_meta(out / "stack_labels.tif")
    assert labels.dtype == np.uint16 and labels.shape == truth.shape and len(np.unique(labels)) - 1 == n
    assert meta.axes == "ZYX" and meta.spacing == pytest.approx((2.0, 0.5, 0.5))
    with open(out / "stack_objects.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["label", "centroid_z", "centroid_z_um", "centroid_y", "centroid_y_um", "centroid_x",
                             "centroid_x_um", "volume", "volume_um3", "score"] and len(rows) == n
    r = rows[0]
    assert float(r["centroid_z_um"]) == pytest.approx(2.0 * float(r["centroid_z"]), rel=1e-4)
    assert float(r["volume_um3"]) == pytest.approx(0.5 * float(r["volume"]), rel=1e-4)
    from dl4mic.predict.rois import read_roi_zip

    rois = read_roi_zip(out / "stack_rois.zip")  # one ROI per nucleus and slice it crosses, on that slice
    crossings = {(int(v), z + 1) for z in range(labels.shape[0]) for v in np.unique(labels[z]) if v}
    assert {(int(r.name.split(":")[0]), int(r.name.split(":")[1])) for r in rois} == crossings
    assert all(r.position == int(r.name.split(":")[1]) for r in rois) and len(rois) == len(crossings)
    movie, meta = read_image_with_meta(out / "movie_labels.tif")
    assert movie.shape == (2,) + truth.shape and meta.axes == "TZYX"
    with open(out / "movie_trackmate.csv", newline="") as fh:
        tm = list(csv.DictReader(fh))
    assert len(tm) == 2 * n and {t["FRAME"] for t in tm} == {"0", "1"}
    assert all(abs(float(t["Z"]) - truth.shape[0] // 2) < 0.5 for t in tm)  # the balls' plane, in voxels


def test_a_2d_image_is_refused(tmp_path):
    model = load_model(write_model(tmp_path / "m", small_params()))
    with pytest.raises(UserError, match="ZYX"):
        model.predict(np.zeros((64, 64), np.float32))


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def nuclei3d(tmp_path_factory):
    """stardist's own 3D test stack (31 x 61 x 57, 162 nuclei) and its mirror image, as two training pairs."""
    from stardist.data import test_image_nuclei_3d

    x, y = test_image_nuclei_3d(return_mask=True)
    root = tmp_path_factory.mktemp("nuclei3d")
    for name, (a, b) in {"a.tif": (x, y), "b.tif": (x[:, ::-1], y[:, ::-1])}.items():
        write_tiff(root / "images" / name, np.ascontiguousarray(a), "ZYX")
        write_tiff(root / "masks" / name, np.ascontiguousarray(b), "ZYX")
    return root


def test_train_predict_qc_smoke(tmp_path, nuclei3d):
    from dl4mic.qc.run import run_qc

    model = tmp_path / "sd3"
    dl4mic.train("stardist3d", source=nuclei3d / "images", target=nuclei3d / "masks", model=model, epochs=2,
                 params={"depth": 1, "filters": 8, "conv_after_unet": 16, "n_rays": 32, "steps_per_epoch": 3,
                         "batch_size": 1, "patch_size": "16,32,32", "val_patches": 2, "precision": "float32",
                         "val_split": 0.5}, progress="none")
    config = yaml.safe_load((model / "model.yaml").read_text())
    p = config["parameters"]
    assert p["anisotropy"] == "2.1429,1,1.0714" and p["grid"] == "1,2,2"  # from the nuclei's extents
    assert config["geometry"]["axes"] == "ZYX" and 0 < config["prob_thresh"] < 1 and "optimized" in config["thresholds"]
    out = load_model(model).predict(tifffile.imread(nuclei3d / "images" / "a.tif"))
    assert out["labels"].dtype == np.uint16 and out["labels"].shape == (31, 61, 57)
    summary = run_qc(model, nuclei3d / "images", nuclei3d / "masks", progress="none")
    assert summary["task"] == "instance" and "f1" in summary["means"]
