"""A full disk: training, QC and export write onto a small tmpfs that fills up. Each stops with exit code 2
and one sentence, leaves no partial file, keeps what it wrote before intact (the last checkpoint loads), and
works once space is freed (`train --resume`, or the same QC/export again). Mounting needs root; without
it the tests are skipped, saying so."""

import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest
import torch

from .test_kills import ARGS, dl4mic, leftovers, log_rows, qc_argv
from .test_matrix import pairs


@pytest.fixture
def disk(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()}); the disk-full tests need root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves `leave` bytes free on `disk`."""
    free = shutil.disk_usage(disk).free
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return filler


def refused_for_space(done, folder):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "full" in lines[0] and str(folder) in lines[0] and "Traceback" not in done.stderr, \
        done.stderr


def train_argv(data, model):
    return dl4mic("train", "unet2d", "--source", data[0], "--target", data[1], "--model", model, *ARGS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return pairs(tmp_path_factory.mktemp("diskdata") / "data")


@pytest.mark.parametrize("leave", [60_000, pytest.param(120_000, marks=pytest.mark.slow)])
def test_training_on_a_full_disk_then_resume(disk, data, leave):
    model = disk / "model"
    filler = fill(disk, leave)
    done = subprocess.run(train_argv(data, model), capture_output=True, text=True, timeout=600)
    refused_for_space(done, model)
    assert not leftovers(model), leftovers(model)
    if (model / "checkpoint.pt").is_file():  # the previous checkpoint is intact
        torch.load(model / "checkpoint.pt", weights_only=True)
    filler.unlink()
    if (model / "checkpoint.pt").is_file():
        again = dl4mic("train", "unet2d", "--model", model, "--resume", "--progress", "none")
    else:
        again = train_argv(data, model) + ["--overwrite"]
    done = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [row["epoch"] for row in log_rows(model)] == ["1", "2", "3", "4"]
    assert not leftovers(model)


@pytest.mark.slow
def test_qc_and_export_on_a_full_disk_then_again(disk, data):
    model = disk / "model"
    done = subprocess.run(train_argv(data, model), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(model / "qc", ignore_errors=True)
    filler = fill(disk, 40_000)
    done = subprocess.run(qc_argv(data, model), capture_output=True, text=True, timeout=600)
    refused_for_space(done, model)
    assert not (model / "qc").exists() and not leftovers(model), leftovers(model)
    out = disk / "out" / "model.zip"
    done = subprocess.run(dl4mic("export", model, "--output", out), capture_output=True, text=True, timeout=600)
    refused_for_space(done, out)
    assert not out.exists() and not leftovers(out.parent)
    filler.unlink()
    for argv in (qc_argv(data, model), dl4mic("export", model, "--output", out)):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    assert (model / "qc" / "summary.json").is_file()
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
