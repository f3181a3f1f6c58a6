"""Concurrent runs: a lock file makes a second `train` on one model folder, or a second `predict` into one
output folder, refuse in one sentence; a lock left by a killed process is detected and taken over."""

import json
import os
import signal
import subprocess
import sys
import time


import tifffile

from dl4mic.locks import LOCK_NAME

from helpers import cli
from .test_matrix import pairs

TINY = ["--param", "steps_per_epoch=2", "--param", "batch_size=2", "--param", "patch_size=32", "--param",
        "depth=1", "--param", "filters=4", "--param", "val_split=0.34", "--progress", "none"]


def wait_for(condition, timeout=120):
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.1)


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_train_on_a_model_folder_refuses_and_a_killed_ones_lock_is_taken_over(tmp_path, capsys):
    s, t = pairs(tmp_path / "data")
    model = tmp_path / "model"
    first = subprocess.Popen([sys.executable, "-m", "dl4mic", "train", "unet2d", "--source", str(s), "--target",
                              str(t), "--model", str(model), "--param", "epochs=500", *TINY],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (model / "checkpoint.pt").is_file())
        owner = json.loads((model / LOCK_NAME).read_text())
        assert owner["pid"] == first.pid and owner["command"] == "train"
        capsys.readouterr()
        assert cli("train", "unet2d", "--model", model, "--resume", "--progress", "none") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {model} is in use by another dl4mic train (process {first.pid}")
        assert len(err.splitlines()) == 1
        first.send_signal(signal.SIGKILL)  # killed: no chance to remove its lock
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert (model / LOCK_NAME).is_file()
    # the lock's process is gone: the next run takes it over and continues from the last checkpoint
    assert cli("train", "unet2d", "--model", model, "--resume", "--param", "epochs=3", "--progress", "none") in (0,)
    assert not (model / LOCK_NAME).exists()


def test_predict_into_an_output_folder_in_use_refuses_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    s, t = pairs(tmp_path / "data")
    model = tmp_path / "model"
    assert cli("train", "unet2d", "--source", s, "--target", t, "--model", model, "--param", "epochs=1", *TINY) == 0
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename,
                                                 "command": "predict", "started": "now"}))
        capsys.readouterr()
        assert cli("predict", model, "--input", s, "--output", out, "--progress", "none") == 2
        err = capsys.readouterr().err
        assert f"is in use by another dl4mic predict (process {sleeper.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing predicted
    finally:
        sleeper.kill()
        sleeper.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename, "command": "predict",
                                             "started": "earlier"}))
    assert cli("predict", model, "--input", s, "--output", out, "--progress", "none") == 0
    assert not (out / LOCK_NAME).exists() and len(list(out.glob("*_mask.tif"))) == 3
    # an unreadable lock (a crash between creating and writing it) is stale too
    fresh = tmp_path / "out2"
    fresh.mkdir()
    (fresh / LOCK_NAME).write_text("")
    assert cli("predict", model, "--input", s / "img0.tif", "--output", fresh, "--progress", "none") == 0
    assert tifffile.imread(fresh / "img0_mask.tif").shape == (64, 64) and not (fresh / LOCK_NAME).exists()

