"""Kill anywhere: SIGKILL a real `dl4mic train` at seeded random instants (start-up, inside an epoch, while
checkpoints, logs and the report are written), then recover as a user would (`--resume`, or the same command
with --overwrite when no checkpoint was written yet). The recovered model must equal an uninterrupted run
(weights bit for bit in float32, the same log rows), and no partial file may be left in the folder.

QC and export are killed the same way: what a user would open (`qc/`, the bundle zip) is either absent or
complete at every instant, and a rerun succeeds and leaves no staging folder behind."""

import csv
import random
import shutil
import zipfile
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
    assert not leftovers(model), (delay, leftovers(model))


def leftovers(folder):
    return [p for p in folder.rglob("*") if ".part" in p.name or ".staging-" in p.name
            or p.name.startswith(".dl4mic.lock")]


def timed(argv):
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def kill_at(argv, delay):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def qc_argv(data, model):
    return dl4mic("qc", model, "--source", data[0], "--target", data[1], "--progress", "none")


def kill_qc_and_rerun(reference, tmp_path, delay):
    data, ref, _ = reference
    model = tmp_path / f"qc-{delay:.2f}"
    shutil.copytree(ref, model)
    kill_at(qc_argv(data, model), delay)
    if (model / "qc").exists():  # complete, or not there at all
        assert (model / "qc" / "summary.json").is_file() and (model / "qc" / "report.pdf").is_file(), delay
    timed(qc_argv(data, model))
    assert (model / "qc" / "summary.json").is_file() and (model / "qc" / "report.pdf").is_file()
    assert not leftovers(model), (delay, leftovers(model))


def export_argv(model, out):
    return dl4mic("export", model, "--output", out, "--overwrite")


def kill_export_and_rerun(reference, tmp_path, delay):
    _, ref, _ = reference
    out = tmp_path / f"export-{delay:.2f}" / "model.zip"
    out.parent.mkdir()
    kill_at(export_argv(ref, out), delay)
    if out.exists():  # complete, or not there at all
        with zipfile.ZipFile(out) as zf:
            assert zf.testzip() is None and "rdf.yaml" in zf.namelist(), delay
    timed(export_argv(ref, out))
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None and "rdf.yaml" in zf.namelist()
    assert not leftovers(out.parent), (delay, leftovers(out.parent))


@pytest.fixture(scope="module")
def durations(reference, tmp_path_factory):
    """How long an uninterrupted QC and export of the reference model take."""
    data, ref, _ = reference
    root = tmp_path_factory.mktemp("durations")
    model = root / "model"
    shutil.copytree(ref, model)
    return {"qc": timed(qc_argv(data, model)), "export": timed(export_argv(ref, root / "m.zip"))}


def delays(n, duration, seed):
    rng = random.Random(seed)
    return sorted(rng.uniform(0.5, duration) for _ in range(n))


def test_kill_anywhere_in_training_then_recover(reference, tmp_path):
    for delay in delays(3, reference[2], seed=1):
        kill_and_recover(reference, tmp_path, delay)


def test_kill_qc_then_rerun(reference, tmp_path):
    """One QC kill in `make test`: the export kills (slower: each export runs the bundle test) are in the
    campaign below."""
    data, ref, _ = reference
    model = tmp_path / "timed"
    shutil.copytree(ref, model)
    kill_qc_and_rerun(reference, tmp_path, delays(1, timed(qc_argv(data, model)), seed=3)[0])


@pytest.mark.slow
def test_kill_qc_and_export_campaign(reference, durations, tmp_path):
    qc_points, export_points = delays(15, durations["qc"], seed=5), delays(15, durations["export"], seed=6)
    for delay in qc_points:
        kill_qc_and_rerun(reference, tmp_path, delay)
    for delay in export_points:
        kill_export_and_rerun(reference, tmp_path, delay)
    print(f"{len(qc_points)} QC kill points from {qc_points[0]:.2f} s to {qc_points[-1]:.2f} s of a "
          f"{durations['qc']:.1f} s QC, {len(export_points)} export kill points from {export_points[0]:.2f} s "
          f"to {export_points[-1]:.2f} s of a {durations['export']:.1f} s export: all recovered")


@pytest.mark.slow
def test_kill_anywhere_campaign_50_points(reference, tmp_path):
    points = delays(50, reference[2], seed=2)
    for delay in points:
        kill_and_recover(reference, tmp_path, delay)
    print(f"{len(points)} kill points from {points[0]:.2f} s to {points[-1]:.2f} s of a "
          f"{reference[2]:.1f} s training: all recovered")
