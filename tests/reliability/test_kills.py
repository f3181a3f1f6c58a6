"""Kill anywhere: SIGKILL a real `dl4mic train` at seeded random instants (start-up, inside an epoch, while
checkpoints, logs and the report are written), then recover as a user would (`--resume`, or the same command
with --overwrite when no checkpoint was written yet). The recovered model must equal an uninterrupted run
(weights bit for bit in float32, the same log rows), and no partial file may be left in the folder."""

import csv
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from .test_matrix import pairs

ARGS = ["--param", "epochs=4", "--param", "steps_per_epoch=3", "--param", "batch_size=2", "--param",
        "patch_size=32", "--param", "depth=1", "--param", "filters=4", "--param", "val_split=0.34",
        "--param", "precision=float32", "--param", "seed=7", "--progress", "none"]


def dl4mic(*args):
    return [sys.executable, "-m", "dl4mic", *map(str, args)]


def train_argv(data, model):
    return dl4mic("train", "unet2d", "--source", data[0], "--target", data[1], "--model", model, *ARGS)


def log_rows(model):
    with open(model / "training" / "log.csv") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def weights(model):
    return {name: torch.load(model / "weights" / f"{name}.pt", weights_only=True) for name in ("best", "last")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    data = pairs(root / "data")
    model = root / "reference"
    started = time.monotonic()
    subprocess.run(train_argv(data, model), check=True, capture_output=True, timeout=600)
    return data, model, time.monotonic() - started


def kill_and_recover(reference, tmp_path, delay):
    data, ref, _ = reference
    model = tmp_path / f"killed-{delay:.2f}"
    proc = subprocess.Popen(train_argv(data, model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (model / "checkpoint.pt").is_file():
        recover = dl4mic("train", "unet2d", "--model", model, "--resume", "--progress", "none")
    else:  # killed before the first checkpoint: start again, as the resume error says
        recover = train_argv(data, model) + ["--overwrite"]
    done = subprocess.run(recover, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (delay, done.stderr)
    assert log_rows(model) == log_rows(ref), delay  # continuous: every epoch once, the same losses
    got, want = weights(model), weights(ref)
    for name in want:
        assert got[name].keys() == want[name].keys()
        for key in want[name]:
            assert torch.equal(got[name][key], want[name][key]), (delay, name, key)
    leftovers = [p for p in model.rglob("*") if ".part" in p.name or p.name.startswith(".dl4mic.lock")]
    assert not leftovers, (delay, leftovers)


def delays(n, duration, seed):
    rng = random.Random(seed)
    return sorted(rng.uniform(0.5, duration) for _ in range(n))


def test_kill_anywhere_in_training_then_recover(reference, tmp_path):
    for delay in delays(3, reference[2], seed=1):
        kill_and_recover(reference, tmp_path, delay)


@pytest.mark.slow
def test_kill_anywhere_campaign_50_points(reference, tmp_path):
    points = delays(50, reference[2], seed=2)
    for delay in points:
        kill_and_recover(reference, tmp_path, delay)
    print(f"{len(points)} kill points from {points[0]:.2f} s to {points[-1]:.2f} s of a "
          f"{reference[2]:.1f} s training: all recovered")
