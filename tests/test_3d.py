"""The 3D networks on the N-D spine (care3d, unet3d, n2v3d) on crops of real stacks: axes and voxel size
from the files, training, tiled prediction equal to one pass in Z, Y and X, QC, plane-by-plane prediction
of 2D models on stacks, refusals, and resume after SIGKILL. Tiny sizes; the file runs in about 2 minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import yaml

import dl4mic
from dl4mic.data.io import read_image, read_meta, write_tiff
from dl4mic.predict.model import load_model

from helpers import cli, write

TINY3D = {"steps_per_epoch": 2, "batch_size": 2, "patch_size": [8, 32, 32], "depth": 1, "filters": 4,
          "val_patches": 2, "precision": "float32"}
SPACING = (0.29, 0.26, 0.26)


def _log(model):
    import csv

    with open(model / "training" / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def care3d_data(tmp_path_factory, shared_data):
    """Crops (12, 48, 48) of the semi-synthetic CARE 3D pairs, written with their ImageJ calibration."""
    root = tmp_path_factory.mktemp("care3d")
    base = shared_data / "care3d_cells3d_semisynthetic"
    for split, names in (("train", ["q_r0c0", "q_r0c1"]), ("test", ["q_r1c1"])):
        for kind in ("low", "high"):
            for n in names:
                a = read_image(base / split / kind / f"{n}.tif")
                write_tiff(root / split / kind / f"{n}.tif", a[20:32, 40:88, 40:88], "ZYX", spacing=SPACING)
    return root


@pytest.fixture(scope="module")
def care3d_model(tmp_path_factory, care3d_data):
    model = tmp_path_factory.mktemp("m") / "care3d"
    dl4mic.train("care3d", source=care3d_data / "train" / "low", target=care3d_data / "train" / "high", model=model,
                 epochs=2, params=TINY3D, progress="none")
    return model


@pytest.fixture(scope="module")
def bbbc_data(tmp_path_factory, shared_data):
    """Three BBBC050 stacks (crops of 16 planes) with binary masks, and one for testing."""
    root = tmp_path_factory.mktemp("bbbc")
    base = shared_data / "bbbc050_mouse_embryo_nuclei_3d"
    names = sorted(p.name for p in (base / "train" / "images").iterdir())[:3]
    for split, files in (("train", names), ("test", sorted(p.name for p in (base / "test" / "images").iterdir())[:1])):
        for kind in ("images", "masks_binary"):
            for n in files:
                write(root / split / kind / n, read_image(base / split / kind / n)[18:34, :96, :96])
    return root


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_care3d_records_axes_spacing_and_predicts_calibrated_stacks(care3d_model, care3d_data, tmp_path):
    config = yaml.safe_load((care3d_model / "model.yaml").read_text())
    assert config["axes"] == "ZYX" and config["spacing"] == pytest.approx(list(SPACING))
    assert config["geometry"]["patch"] == [8, 32, 32] and config["geometry"]["multiple"] == [2, 2, 2]
    out = tmp_path / "out"
    assert cli("predict", care3d_model, "--input", care3d_data / "test" / "low", "--output", out) == 0
    pred = tifffile.imread(out / "q_r1c1.tif")
    assert pred.shape == (12, 48, 48) and pred.dtype == np.float32
    meta = read_meta(out / "q_r1c1.tif")
    assert meta.axes == "ZYX" and meta.spacing == pytest.approx(SPACING)
    high = read_image(care3d_data / "test" / "high" / "q_r1c1.tif")
    assert 0.2 * high.mean() < pred.mean() < 5 * high.mean()  # in the targets' units, not normalised


def test_care3d_qc_scores_volumes_beside_baselines(care3d_model, care3d_data, tmp_path):
    summary = dl4mic.qc(care3d_model, care3d_data / "test" / "low", care3d_data / "test" / "high",
                        output=tmp_path / "qc", progress="none")
    assert summary["test_data"]["n_images"] == 1
    assert set(summary["metrics"]) == {"model", "input", "gaussian"}
    assert all(np.isfinite(summary["metrics"]["model"][k]) for k in ("ssim", "psnr", "nrmse"))
    assert len(summary["gaussian_sigma"]) == 3  # per axis, isotropic in µm
    assert tifffile.imread(tmp_path / "qc" / "predictions" / "q_r1c1.tif").shape == (12, 48, 48)
    assert (tmp_path / "qc" / "example.png").is_file() and (tmp_path / "qc" / "report.pdf").is_file()


@pytest.mark.parametrize("network,params", [("care3d", {}), ("unet3d", {"batch_norm": True}),
                                            ("n2v3d", {"variant": "n2v2"}), ("unet3d", {"pool_z": "no", "depth": 2})])
def test_3d_tiled_prediction_equals_one_pass(tmp_path, network, params):
    """A stack larger than one tile along Z, Y and X gives the single-pass result within 1e-4 of its range."""
    import torch

    from dl4mic.networks import get_network
    from dl4mic.tiling import predict_tiled
    from dl4mic.specs import load_spec

    net = get_network(network)
    p = load_spec(network).resolve({"filters": 4, "depth": 2, **params})
    torch.manual_seed(0)
    module = net.build(p).eval()
    for m in module.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)

    def run(a):
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    g = net.geometry(p)
    stack = np.random.default_rng(1).random((27, 70, 61), dtype=np.float32)
    whole = predict_tiled(run, stack, None, g.halo, g.multiple, g.out_scale)
    tiled = predict_tiled(run, stack, (8, 24, 24), g.halo, g.multiple, g.out_scale)
    assert whole.shape == tiled.shape == (whole.shape[0], 27, 70, 61)
    assert np.abs(tiled - whole).max() <= 1e-4 * float(whole.max() - whole.min())


def test_unet3d_trains_predicts_and_beats_nothing_silently(bbbc_data, tmp_path):
    model = dl4mic.train("unet3d", source=bbbc_data / "train" / "images", target=bbbc_data / "train" / "masks_binary",
                         model=tmp_path / "u3", epochs=1, params=TINY3D, progress="none")
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["axes"] == "ZYX" and config["spacing"] is None and 0.05 <= config["threshold"] <= 0.95
    out = tmp_path / "out"
    assert cli("predict", model, "--input", bbbc_data / "test" / "images", "--output", out) == 0
    name = next((bbbc_data / "test" / "images").iterdir()).stem
    for suffix, dtype in (("_prob", np.float32), ("_mask", np.uint8), ("_labels", np.uint16)):
        a = tifffile.imread(out / f"{name}{suffix}.tif")
        assert a.shape == (16, 96, 96) and a.dtype == dtype
    summary = dl4mic.qc(model, bbbc_data / "test" / "images", bbbc_data / "test" / "masks_binary",
                        output=tmp_path / "qc", progress="none")
    assert {"iou", "dice"} <= set(summary["metrics"]["model"]) and "otsu" in summary["metrics"]
    assert 0.05 <= summary["qc_threshold"] <= 0.95


def test_multiclass_unet3d(tmp_path):
    """Class masks 0/1/2: softmax over three channels, a class map, per-class IoU/Dice in QC."""
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:12, :40, :40]
    for split in ("train", "test"):
        for i in range(2 if split == "train" else 1):
            classes = np.zeros((12, 40, 40), np.uint8)
            cy, cx = rng.integers(10, 30, size=2)
            classes[(yy - cy) ** 2 + (xx - cx) ** 2 < 40] = 1
            classes[(zz > 6) & (xx < 10)] = 2
            image = (classes * 60 + rng.normal(20, 10, classes.shape)).astype(np.float32)
            tifffile.imwrite(_mkdir(tmp_path / split / "images") / f"s{i}.tif", image)
            tifffile.imwrite(_mkdir(tmp_path / split / "classes") / f"s{i}.tif", classes)
    model = dl4mic.train("unet3d", source=tmp_path / "train" / "images", target=tmp_path / "train" / "classes",
                         model=tmp_path / "m", epochs=1, params={**TINY3D, "n_classes": 2, "val_split": 0.5},
                         progress="none")
    out = load_model(model).predict(read_image(tmp_path / "test" / "images" / "s0.tif"))
    assert out.images["probability"][1] == "CZYX" and out["probability"].shape == (3, 12, 40, 40)
    assert out["classes"].dtype == np.uint8 and out["classes"].max() <= 2
    summary = dl4mic.qc(model, tmp_path / "test" / "images", tmp_path / "test" / "classes", output=tmp_path / "qc",
                        progress="none")
    assert {"iou", "dice", "iou_c1", "iou_c2"} <= set(summary["metrics"]["model"])


def test_class_masks_beyond_n_classes_are_refused(tmp_path, capsys):
    tifffile.imwrite(_mkdir(tmp_path / "i") / "a.tif", np.random.default_rng(0).random((12, 40, 40), np.float32))
    tifffile.imwrite(_mkdir(tmp_path / "m") / "a.tif", np.arange(12 * 40 * 40).reshape(12, 40, 40) % 4)
    assert cli("check-data", "unet3d", "--source", tmp_path / "i", "--target", tmp_path / "m") == 2
    assert "n_classes" in capsys.readouterr().err


def test_n2v3d_from_noisy_stacks_caps_default_patch_and_runs_qc_without_truth(tmp_path, shared_data):
    base = shared_data / "n2v3d_real_noisy_stacks"
    src = _mkdir(tmp_path / "noisy")
    for name in ("neubias_drosophila_nuclear_envelope.tif", "neubias_chromosomes.tif"):
        tifffile.imwrite(src / name, read_image(base / "train" / "images" / name)[:, :64, :64])
    model = dl4mic.train("n2v3d", source=src, model=tmp_path / "n2v", epochs=1,
                         params={"steps_per_epoch": 2, "batch_size": 2, "filters": 4, "val_patches": 2,
                                 "precision": "float32"}, progress="none")
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["geometry"]["patch"] == [12, 64, 64]  # the default 32x64x64 capped to the 14-plane stack
    assert any("capped" in n or "larger than the smallest" in n for n in config["notes"])
    summary = dl4mic.qc(model, src, None, output=tmp_path / "qc", progress="none")
    assert summary["ground_truth"] is False and np.isfinite(summary["metrics"]["model"]["residual_lag1"])


def test_explicit_patch_too_large_is_refused_with_the_fix(care3d_data, tmp_path, capsys):
    assert cli("train", "care3d", "--source", care3d_data / "train" / "low", "--target", care3d_data / "train" / "high",
               "--model", tmp_path / "m", "--patch-size", "16,64,64") == 2
    err = capsys.readouterr().err
    assert "smaller than the patch size" in err and "--patch-size" in err and not (tmp_path / "m").exists()


def test_2d_model_predicts_a_stack_plane_by_plane_and_says_so(tmp_path, care3d_data, samples, capsys):
    from helpers import TINY, copy_pairs

    src, tgt = copy_pairs(samples / "train", tmp_path / "d", ["fov01.tif", "fov04.tif"])
    model = dl4mic.train("care2d", source=src, target=tgt, model=tmp_path / "c2", epochs=1, params=TINY,
                         progress="none")
    out = tmp_path / "out"
    assert cli("predict", model, "--input", care3d_data / "test" / "low", "--output", out) == 0
    assert "one by one" in capsys.readouterr().out
    pred = tifffile.imread(out / "q_r1c1.tif")
    assert pred.shape == (12, 48, 48)
    assert read_meta(out / "q_r1c1.tif").spacing == pytest.approx(SPACING)


def test_3d_model_refuses_a_2d_image(care3d_model, samples, tmp_path, capsys):
    assert cli("predict", care3d_model, "--input", samples / "test" / "noisy", "--output", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "3D network" in err and "fov17.tif" in err and len(err.splitlines()) == 1


def test_3d_network_refuses_2d_training_images(samples, tmp_path, capsys):
    assert cli("check-data", "care3d", "--source", samples / "train" / "noisy", "--target",
               samples / "train" / "clean") == 2
    assert "is a 2D image" in capsys.readouterr().err


def test_sigkill_during_3d_training_then_resume_gives_a_continuous_log(tmp_path, care3d_data):
    model = tmp_path / "model"
    params = [f"--param={k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in TINY3D.items()]
    cmd = [sys.executable, "-m", "dl4mic.cli", "train", "care3d", "--source", str(care3d_data / "train" / "low"),
           "--target", str(care3d_data / "train" / "high"), "--model", str(model), "--epochs", "60",
           "--progress", "none", *params]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (model / "training" / "log.csv").is_file() and len(_log(model)) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_log(model))
    assert 2 <= done < 60, "the kill should land mid-run"
    assert cli("train", "care3d", "--model", model, "--resume", "--epochs", done + 2, "--progress", "none") == 0
    assert [int(r["epoch"]) for r in _log(model)] == list(range(1, done + 3))
