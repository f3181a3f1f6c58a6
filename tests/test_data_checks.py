"""Bad input is refused before any compute: one sentence naming the file and the fix, exit 2, nothing written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dl4mic.data.check import check_data, check_image
from dl4mic.errors import UserError

from helpers import cli, copy_pairs, tree, write


@pytest.fixture
def pairs(tmp_path, samples):
    return copy_pairs(samples / "train", tmp_path / "data", ["fov01.tif", "fov04.tif"])


def refused(tmp_path, capsys, *args, expect: str):
    """Run `dl4mic train`, assert exit 2 with one sentence naming `expect`, and that nothing was written."""
    before = tree(tmp_path)
    code = cli(*args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and expect in err, err
    assert len(err.splitlines()) == 1
    assert tree(tmp_path) == before
    return err


def train_args(tmp_path, source, target, network="care2d"):
    return ["train", network, "--source", source, "--target", target, "--model", tmp_path / "model"]


def test_empty_folder(tmp_path, capsys, pairs):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(tmp_path, capsys, *train_args(tmp_path, empty, pairs[1]), expect=str(empty))


def test_unpaired_names(tmp_path, capsys, pairs):
    src, tgt = pairs
    (tgt / "fov04.tif").rename(tgt / "other.tif")
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect="fov04.tif")
    assert "no target of the same name" in err


def test_shape_mismatch(tmp_path, capsys, pairs):
    src, tgt = pairs
    write(tgt / "fov04.tif", np.ones((100, 120), np.uint8))
    refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(tgt / "fov04.tif"))


def test_rgb_given_to_gray_network(tmp_path, capsys, pairs):
    src, tgt = pairs
    write(src / "fov04.tif", np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(src / "fov04.tif"))
    assert "RGB" in err and "8-bit" in err


def test_stack_given_to_2d_network(tmp_path, capsys, pairs):
    src, tgt = pairs
    write(src / "fov04.tif", np.random.default_rng(0).integers(0, 255, (5, 256, 256), dtype=np.uint8))
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(src / "fov04.tif"))
    assert "2D network" in err


def test_labels_given_as_mask(tmp_path, capsys, pairs):
    src, _ = pairs
    masks = tmp_path / "masks"
    labels = np.zeros((256, 256), np.uint16)
    labels[10:20, 10:20], labels[40:60, 40:60], labels[100:110, 5:30] = 1, 2, 3
    write(masks / "fov01.tif", labels)
    write(masks / "fov04.tif", labels)
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, masks, "unet2d"), expect=str(masks / "fov01.tif"))
    assert "binary masks" in err


def test_binary_mask_given_as_labels(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[5:10, 5:10] = mask[30:40, 30:40] = 255
    with pytest.raises(UserError, match="instance labels"):
        check_image(tmp_path / "m.tif", mask, {"kind": "labels", "ndim": 2}, "stardist2d")
    labels = mask.astype(np.uint16)
    labels[30:40, 30:40] = 2
    assert check_image(tmp_path / "m.tif", labels, {"kind": "labels", "ndim": 2}, "stardist2d") == "YX"


def test_corrupt_tiff(tmp_path, capsys, pairs):
    src, tgt = pairs
    (src / "fov04.tif").write_bytes(b"II*\x00garbage" * 10)
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(src / "fov04.tif"))
    assert "cannot be read" in err


def test_non_image_file(tmp_path, capsys, pairs):
    src, tgt = pairs
    (src / "notes.txt").write_text("not an image")
    refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(src / "notes.txt"))


def test_constant_and_nan_images(tmp_path, pairs):
    src, tgt = pairs
    write(src / "fov04.tif", np.full((256, 256), 7, np.uint8))
    with pytest.raises(UserError, match="constant"):
        check_data("care2d", src, tgt)
    bad = np.ones((256, 256), np.float32)
    bad[3, 3] = np.nan
    write(src / "fov04.tif", bad)
    with pytest.raises(UserError, match="NaN"):
        check_data("care2d", src, tgt)


def test_hidden_files_ignored(tmp_path, pairs):
    src, tgt = pairs
    (src / ".DS_Store").write_bytes(b"\x00\x01junk")
    (src / ".ipynb_checkpoints").mkdir()
    shutil.copy(src / "fov01.tif", src / ".ipynb_checkpoints" / "fov01-checkpoint.tif")
    (tgt / "._fov01.tif").write_bytes(b"resource fork")
    summary = check_data("care2d", src, tgt)
    assert [p[0].name for p in summary.pairs] == ["fov01.tif", "fov04.tif"]


def test_existing_model_needs_overwrite(tmp_path, capsys, pairs):
    src, tgt = pairs
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.yaml").write_text("network: care2d\n")
    (model / "keep.txt").write_text("user file")
    err = refused(tmp_path, capsys, *train_args(tmp_path, src, tgt), expect=str(model))
    assert "--overwrite" in err


def test_model_inside_input_folder_refused(tmp_path, capsys, pairs):
    src, tgt = pairs
    code = cli("train", "care2d", "--source", src, "--target", tgt, "--model", src / "model")
    assert code == 2 and "inside the input folder" in capsys.readouterr().err
    assert not (src / "model").exists()


def test_check_data_cli_ok(tmp_path, capsys, pairs):
    assert cli("check-data", "care2d", "--source", pairs[0], "--target", pairs[1]) == 0
    out = capsys.readouterr().out
    assert "OK: 2 pairs for care2d" in out and "uint8" in out


def test_bad_parameter_value(tmp_path, capsys, pairs):
    code = cli(*train_args(tmp_path, *pairs), "--param", "depth=banana")
    assert code == 2 and "depth" in capsys.readouterr().err
    code = cli(*train_args(tmp_path, *pairs), "--patch-size", "99999")
    assert code == 2 and "patch_size" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
