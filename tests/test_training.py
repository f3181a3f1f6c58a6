"""The training loop: model folder contents, resume after SIGKILL, transfer learning, portability."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

import dl4mic
from dl4mic.data.io import read_image
from dl4mic.predict.model import load_model

from helpers import TINY, cli, copy_pairs


def read_log(model):
    with open(model / "training" / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def care_data(tmp_path_factory, samples):
    root = tmp_path_factory.mktemp("care")
    return copy_pairs(samples / "train", root, ["fov01.tif", "fov04.tif", "fov07.tif"])


@pytest.fixture(scope="module")
def care_model(tmp_path_factory, care_data):
    model = tmp_path_factory.mktemp("models") / "care"
    dl4mic.train("care2d", source=care_data[0], target=care_data[1], model=model, epochs=2, params=TINY,
                 progress="none")
    return model


def test_model_folder_contents(care_model, care_data):
    for rel in ("model.yaml", "weights/best.pt", "weights/last.pt", "checkpoint.pt", "training/log.csv",
                "training/report.pdf"):
        assert (care_model / rel).is_file(), rel
    config = yaml.safe_load((care_model / "model.yaml").read_text())
    assert config["network"] == "care2d" and config["training"]["status"] == "finished"
    assert config["parameters"]["patch_size"] == 32 and config["parameters"]["depth"] == 2
    assert config["normalization"]["source"] == {"method": "percentile", "low": 1.0, "high": 99.8}
    assert config["data"]["n_pairs"] == 3 and len(config["data"]["val_files"]) == 1
    assert config["environment"]["torch"] and config["environment"]["cpu_count"] >= 1
    rows = read_log(care_model)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {"epoch", "loss", "val_loss", "lr", "seconds"}
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)


def test_restoration_output_in_target_units(care_model, samples):
    model = load_model(care_model)
    noisy = read_image(samples / "test" / "noisy" / "fov17.tif")
    restored = model.predict(noisy)["restored"]
    assert restored.dtype == np.float32 and restored.shape == noisy.shape
    # in the units of the 8-bit targets, not normalised to ~[0, 1]
    assert 5 < float(np.percentile(restored, 99)) < 400


def test_resume_after_sigkill(tmp_path, care_data):
    model = tmp_path / "model"
    params = [f"--param={k}={v}" for k, v in TINY.items()]
    cmd = [sys.executable, "-m", "dl4mic.cli", "train", "care2d", "--source", str(care_data[0]), "--target",
           str(care_data[1]), "--model", str(model), "--epochs", "40", "--progress", "none", *params]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (model / "training" / "log.csv").is_file() and len(read_log(model)) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(read_log(model))
    assert 2 <= done < 40, "the kill should land mid-run"
    assert cli("train", "care2d", "--model", model, "--resume", "--epochs", done + 3, "--progress", "none") == 0
    rows = read_log(model)
    assert [int(r["epoch"]) for r in rows] == list(range(1, done + 4))
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["training"]["status"] == "finished" and config["training"]["epochs_done"] == done + 3


def test_resume_refuses_new_parameters(tmp_path, care_model, capsys):
    model = tmp_path / "copy"
    shutil.copytree(care_model, model)
    assert cli("train", "care2d", "--model", model, "--resume", "--patch-size", "64") == 2
    assert "--resume continues" in capsys.readouterr().err


def test_transfer_learning_starts_from_best_lr(tmp_path, care_model, care_data):
    rows = read_log(care_model)
    best = min(rows, key=lambda r: float(r["val_loss"]))
    model = dl4mic.train("care2d", source=care_data[0], target=care_data[1], model=tmp_path / "tl", epochs=1,
                         params={**TINY, "learning_rate": 0.1}, from_model=care_model, progress="none")
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["parameters"]["learning_rate"] == pytest.approx(float(best["lr"]))
    assert config["transfer_from"] == str(care_model.resolve())
    assert float(read_log(model)[0]["lr"]) == pytest.approx(float(best["lr"]))


def test_copied_model_predicts_identically(tmp_path, care_model, samples):
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(care_model, copy)
    noisy = read_image(samples / "test" / "noisy" / "fov17.tif")
    a = load_model(care_model).predict(noisy)["restored"]
    b = load_model(copy).predict(noisy)["restored"]
    np.testing.assert_array_equal(a, b)


def test_seed_makes_training_reproducible(tmp_path, care_data):
    outs = []
    for name in ("a", "b"):
        m = dl4mic.train("care2d", source=care_data[0], target=care_data[1], model=tmp_path / name, epochs=1,
                         params=TINY, progress="none")
        outs.append(read_log(m)[0]["loss"])
    assert outs[0] == outs[1]


def test_json_progress_lines(tmp_path, care_data, capsys):
    assert cli("train", "care2d", "--source", care_data[0], "--target", care_data[1], "--model", tmp_path / "m",
               "--epochs", 2, "--progress", "json", *[f"--param={k}={v}" for k, v in TINY.items()]) == 0
    import json

    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and kinds[-1] == "done"
    assert events[1]["epochs"] == 2 and "val_loss" in events[1]


def test_time_limit_stops_early_and_keeps_best(tmp_path, care_data):
    model = dl4mic.train("care2d", source=care_data[0], target=care_data[1], model=tmp_path / "m", epochs=50,
                         params={**TINY, "max_minutes": 1e-4}, progress="none")
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["training"]["epochs_done"] == 1 and len(read_log(model)) == 1
    assert "time limit" in config["training"]["stopped_early"] and (model / "weights" / "best.pt").is_file()
