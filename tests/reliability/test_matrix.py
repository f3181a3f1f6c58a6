"""The bad-input matrix: every command refuses bad input with exit code 2, one sentence naming the file (or
parameter) and the fix, no traceback, and nothing written or changed (the whole work folder is hashed
before and after). Each case builds its bad input in a fresh folder from small real-looking data."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import cli

CASES = {}


def case(name, *expected):
    """Register a case: `fn(root, models) -> argv`; the message must contain each of `expected` (texts,
    or callables of root giving a text, such as a file name)."""
    def register(fn):
        CASES[name] = (fn, expected)
        return fn
    return register


# --- data ------------------------------------------------------------------------------------------

def blobs(seed=0, shape=(64, 64)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.uint16)
    for i in range(1, 6):
        cy, cx = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 30] = i
    image = (labels > 0) * 150.0 + rng.normal(30, 8, shape)
    return image.astype(np.float32), labels


def pairs(root, n=3, kind="mask", shape=(64, 64), name="img"):
    """source/ and target/ folders of n pairs: target kind mask (0/255), labels or image."""
    for i in range(n):
        image, labels = blobs(i, shape)
        target = {"mask": (labels > 0).astype(np.uint8) * 255, "labels": labels,
                  "image": image * 0.5}[kind]
        for folder, data in (("source", image), ("target", target)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / folder / f"{name}{i}.tif", data)
    return root / "source", root / "target"


def tree_hash(root: Path) -> dict:
    """Every file and folder under root with its content hash (links by their target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny trained U-Net 2D and StarDist 2D (a few steps: what matters is that they load)."""
    root = tmp_path_factory.mktemp("matrix-models")
    s, t = pairs(root / "unet", kind="mask")
    tiny = ["--param", "epochs=1", "--param", "steps_per_epoch=1", "--param", "batch_size=2", "--param",
            "patch_size=32", "--param", "depth=1", "--param", "filters=4", "--param", "val_split=0.34",
            "--progress", "none"]
    assert cli("train", "unet2d", "--source", s, "--target", t, "--model", root / "unet2d", *tiny) == 0
    s, t = pairs(root / "sd", kind="labels")
    assert cli("train", "stardist2d", "--source", s, "--target", t, "--model", root / "stardist2d", *tiny,
               "--param", "n_rays=8", "--param", "conv_after_unet=8") == 0
    return root


def model_copy(models, root, network="unet2d"):
    dst = root / f"model_{network}"
    shutil.copytree(models / network, dst)
    return dst


# --- check-data and train: folders ----------------------------------------------------------------------

@case("check-data: the source folder does not exist", "missing")
def _(root, models):
    return ["check-data", "unet2d", "--source", root / "missing"]


@case("check-data: the source folder is empty", "source")
def _(root, models):
    (root / "source").mkdir()
    return ["check-data", "unet2d", "--source", root / "source"]


@case("check-data: the source folder holds no images", "source")
def _(root, models):
    (root / "source").mkdir()
    (root / "source" / "notes.txt").write_text("not an image")
    return ["check-data", "unet2d", "--source", root / "source"]


@case("check-data: a source has no target of the same name", "img2.tif")
def _(root, models):
    s, t = pairs(root)
    (t / "img2.tif").unlink()
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: source and target shapes differ", "img1.tif")
def _(root, models):
    s, t = pairs(root)
    tifffile.imwrite(t / "img1.tif", np.zeros((32, 64), np.uint8))
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a source image holds NaN", "img0.tif")
def _(root, models):
    s, t = pairs(root)
    image = tifffile.imread(s / "img0.tif")
    image[3, 3] = np.nan
    tifffile.imwrite(s / "img0.tif", image)
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a source image holds infinity", "img1.tif")
def _(root, models):
    s, t = pairs(root)
    image = tifffile.imread(s / "img1.tif")
    image[0, 0] = np.inf
    tifffile.imwrite(s / "img1.tif", image)
    return ["check-data", "care2d", "--source", s, "--target", t]


@case("check-data: a zero-byte image file", "img0.tif")
def _(root, models):
    s, t = pairs(root)
    (s / "img0.tif").write_bytes(b"")
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a corrupt TIFF (random bytes)", "img1.tif")
def _(root, models):
    s, t = pairs(root)
    (s / "img1.tif").write_bytes(np.random.default_rng(0).bytes(4000))
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a truncated TIFF", "img2.tif")
def _(root, models):
    s, t = pairs(root)
    data = (s / "img2.tif").read_bytes()
    (s / "img2.tif").write_bytes(data[: len(data) // 3])
    return ["check-data", "unet2d", "--source", s, "--target", t]


def huge_tiff(path, side=40_000):
    """A 1x1 16-bit TIFF whose header then says side x side pixels in one strip (3.0 GiB for 40,000²):
    consistent enough that a reader believes it."""
    import struct

    tifffile.imwrite(path, np.zeros((1, 1), np.uint16), metadata=None)
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    values = {256: side, 257: side, 278: side, 279: side * side * 2}  # width, length, rows/strip, strip bytes
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in values:
            struct.pack_into("<HHII", data, entry, tag, 4, 1, values[tag])
    path.write_bytes(bytes(data))
    return path


# cases run with this environment: a 1 GiB memory limit stands in for a header larger than the machine
CASE_ENV = {}


@case("check-data: a TIFF header declaring more pixels than memory", "img1.tif", "GiB")
def _(root, models):
    s, t = pairs(root)
    huge_tiff(s / "img1.tif")
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("predict: a TIFF header declaring more pixels than memory", "huge.tif", "GiB")
def _(root, models):
    (root / "in").mkdir()
    return ["predict", models / "unet2d", "--input", huge_tiff(root / "in" / "huge.tif"), "--output", root / "out"]


for _name in ("check-data: a TIFF header declaring more pixels than memory",
              "predict: a TIFF header declaring more pixels than memory"):
    CASE_ENV[_name] = {"DL4MIC_MAX_IMAGE_BYTES": str(2**30)}


@case("check-data: a one-pixel image", "img0.tif")
def _(root, models):
    s, t = pairs(root)
    tifffile.imwrite(s / "img0.tif", np.ones((1, 1), np.float32))
    tifffile.imwrite(t / "img0.tif", np.ones((1, 1), np.uint8))
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a dangling symlink among the images", "img9.tif")
def _(root, models):
    s, t = pairs(root)
    (s / "img9.tif").symlink_to(root / "nowhere.tif")
    (t / "img9.tif").symlink_to(root / "nowhere.tif")
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: instance labels where U-Net needs binary masks", "img0.tif", "binary")
def _(root, models):
    s, t = pairs(root, kind="labels")
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: negative labels for StarDist", "img0.tif")
def _(root, models):
    s, t = pairs(root, kind="labels")
    labels = tifffile.imread(t / "img0.tif").astype(np.int16)
    labels[labels == 2] = -2
    tifffile.imwrite(t / "img0.tif", labels)
    return ["check-data", "stardist2d", "--source", s, "--target", t]


@case("check-data: fractional labels for StarDist", "img1.tif")
def _(root, models):
    s, t = pairs(root, kind="labels")
    tifffile.imwrite(t / "img1.tif", tifffile.imread(t / "img1.tif").astype(np.float32) * 0.5)
    return ["check-data", "stardist2d", "--source", s, "--target", t]


@case("check-data: binary masks where StarDist needs instance labels", "img0.tif")
def _(root, models):
    s, t = pairs(root, kind="mask")
    return ["check-data", "stardist2d", "--source", s, "--target", t]


@case("check-data: an RGB mask for U-Net", "img0.tif")
def _(root, models):
    s, t = pairs(root, kind="mask")
    tifffile.imwrite(t / "img0.tif", np.stack([tifffile.imread(t / "img0.tif")] * 3, -1), photometric="rgb")
    return ["check-data", "unet2d", "--source", s, "--target", t]


@case("check-data: a 2D image for a 3D network", "img0.tif")
def _(root, models):
    s, t = pairs(root, kind="mask")
    return ["check-data", "unet3d", "--source", s, "--target", t]


@case("check-data: --axes of the wrong length", "--axes")
def _(root, models):
    s, t = pairs(root)
    return ["check-data", "unet2d", "--source", s, "--target", t, "--axes", "ZYX"]


@case("check-data: --axes with an unknown letter", "--axes")
def _(root, models):
    s, t = pairs(root)
    return ["check-data", "unet2d", "--source", s, "--target", t, "--axes", "QX"]


@case("check-data: a CARE target missing", "--target")
def _(root, models):
    s, t = pairs(root, kind="image")
    return ["check-data", "care2d", "--source", s]


# --- train: parameters and model folders ----------------------------------------------------------------

@case("train: an unknown network", "unetzz")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unetzz", "--source", s, "--target", t, "--model", root / "m"]


@case("train: a parameter out of range", "epochs")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--param", "epochs=0"]


@case("train: a parameter of the wrong type", "batch_size")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--param", "batch_size=many"]


@case("train: an unknown parameter", "epochz")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--param", "epochz=3"]


@case("train: a --param without a value", "epochs")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--param", "epochs"]


@case("train: a patch larger than the images", "patch")
def _(root, models):
    s, t = pairs(root, shape=(48, 48))
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--param", "patch_size=256"]


@case("train: the model folder exists", "--overwrite")
def _(root, models):
    s, t = pairs(root)
    model_copy(models, root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "model_unet2d"]


@case("train: the model folder is inside the source folder", "source")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", s / "m"]


@case("train: --resume without a checkpoint", "checkpoint")
def _(root, models):
    m = model_copy(models, root)
    (m / "checkpoint.pt").unlink()
    return ["train", "unet2d", "--model", m, "--resume"]


@case("train: --from a folder that does not exist", "no_model")
def _(root, models):
    s, t = pairs(root)
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--from", root / "no_model"]


@case("train: --from a model of another network", "stardist2d")
def _(root, models):
    s, t = pairs(root)
    sd = model_copy(models, root, "stardist2d")
    return ["train", "unet2d", "--source", s, "--target", t, "--model", root / "m", "--from", sd]


@case("train: no --source", "--source")
def _(root, models):
    return ["train", "unet2d", "--model", root / "m"]


# --- model folders: tampered, corrupt weights ------------------------------------------------------------

@case("qc: a folder without model.yaml", "model.yaml")
def _(root, models):
    s, t = pairs(root)
    (root / "empty").mkdir()
    return ["qc", root / "empty", "--source", s, "--target", t]


@case("predict: model.yaml is not valid YAML", "model.yaml")
def _(root, models):
    m = model_copy(models, root)
    (m / "model.yaml").write_text("network: unet2d\n  bad: [indent\n")
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: model.yaml carries a python object tag", "model.yaml")
def _(root, models):
    m = model_copy(models, root)
    text = (m / "model.yaml").read_text()
    (m / "model.yaml").write_text("evil: !!python/object/apply:os.system ['touch pwned']\n" + text)
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: model.yaml names an unknown network", "model.yaml")
def _(root, models):
    m = model_copy(models, root)
    text = (m / "model.yaml").read_text().replace("network: unet2d", "network: resnet9000", 1)
    (m / "model.yaml").write_text(text)
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: a model folder from a newer dl4mic (model format 99)", "model.yaml", "newer dl4mic", "update dl4mic")
def _(root, models):
    m = model_copy(models, root)
    text = (m / "model.yaml").read_text()
    assert "\nformat: 1\n" in text
    (m / "model.yaml").write_text(text.replace("\nformat: 1\n", "\nformat: 99\n", 1))
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("export: model.yaml's format is not a number", "model.yaml", "format")
def _(root, models):
    m = model_copy(models, root)
    text = (m / "model.yaml").read_text()
    (m / "model.yaml").write_text(text.replace("\nformat: 1\n", "\nformat: two\n", 1))
    return ["export", m, "--output", root / "bundle.zip"]


@case("predict: model.yaml is empty", "model.yaml")
def _(root, models):
    m = model_copy(models, root)
    (m / "model.yaml").write_text("")
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: model.yaml is a list, not a mapping", "model.yaml")
def _(root, models):
    m = model_copy(models, root)
    (m / "model.yaml").write_text("- network\n- unet2d\n")
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: zero-byte weights", "best.pt")
def _(root, models):
    m = model_copy(models, root)
    (m / "weights" / "best.pt").write_bytes(b"")
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: corrupt weights (random bytes)", "best.pt")
def _(root, models):
    m = model_copy(models, root)
    (m / "weights" / "best.pt").write_bytes(np.random.default_rng(1).bytes(5000))
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: truncated weights", "best.pt")
def _(root, models):
    m = model_copy(models, root)
    data = (m / "weights" / "best.pt").read_bytes()
    (m / "weights" / "best.pt").write_bytes(data[: len(data) // 2])
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: weights missing", "best.pt")
def _(root, models):
    m = model_copy(models, root)
    (m / "weights" / "best.pt").unlink()
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


@case("predict: weights that pickle code", "best.pt")
def _(root, models):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    m = model_copy(models, root)
    (m / "weights" / "best.pt").write_bytes(pickle.dumps(Evil()))
    s, _ = pairs(root)
    return ["predict", m, "--input", s, "--output", root / "out"]


# --- predict: inputs and outputs --------------------------------------------------------------------------

@case("predict: the input does not exist", "nothing.tif")
def _(root, models):
    return ["predict", models / "unet2d", "--input", root / "nothing.tif", "--output", root / "out"]


@case("predict: the output folder is inside the input folder", "--output")
def _(root, models):
    s, _ = pairs(root)
    return ["predict", models / "unet2d", "--input", s, "--output", s / "out"]


@case("predict: an output file exists already", "--overwrite")
def _(root, models):
    s, _ = pairs(root)
    (root / "out").mkdir()
    tifffile.imwrite(root / "out" / "img0_mask.tif", np.zeros((4, 4), np.uint8))
    return ["predict", models / "unet2d", "--input", s / "img0.tif", "--output", root / "out"]


@case("predict: an RGB image into a one-channel model", "img0.tif")
def _(root, models):
    (root / "in").mkdir()
    tifffile.imwrite(root / "in" / "img0.tif", np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    return ["predict", models / "unet2d", "--input", root / "in" / "img0.tif", "--output", root / "out"]


@case("predict: a --tile that is not a number", "--tile")
def _(root, models):
    s, _ = pairs(root)
    return ["predict", models / "unet2d", "--input", s, "--output", root / "out", "--tile", "big"]


@case("predict: an input holding NaN", "img0.tif")
def _(root, models):
    s, _ = pairs(root)
    image = tifffile.imread(s / "img0.tif")
    image[:] = np.nan
    tifffile.imwrite(s / "img0.tif", image)
    return ["predict", models / "unet2d", "--input", s / "img0.tif", "--output", root / "out"]


@case("predict: a corrupt input image", "img0.tif")
def _(root, models):
    (root / "in").mkdir()
    (root / "in" / "img0.tif").write_bytes(b"II*\x00" + b"\xff" * 100)
    return ["predict", models / "unet2d", "--input", root / "in" / "img0.tif", "--output", root / "out"]


# --- bundles --------------------------------------------------------------------------------------------

def one_image(root):
    """An input folder with one image, apart from the bundle under test."""
    (root / "in").mkdir()
    tifffile.imwrite(root / "in" / "a.tif", blobs()[0])
    return root / "in"


def evil_zip(path, member, data=b"x", symlink=False):
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(member)
        if symlink:
            info.external_attr = (0o120777 << 16)
        zf.writestr(info, data)
        zf.writestr("rdf.yaml", "format_version: 0.5.4\ntype: model\n")
    return path


@case("predict: a bundle with path traversal", "..")
def _(root, models):
    return ["predict", evil_zip(root / "evil.zip", "../../escaped.txt"), "--input", one_image(root), "--output", root / "o"]


@case("predict: a bundle with an absolute member path", "/etc")
def _(root, models):
    return ["predict", evil_zip(root / "evil.zip", "/etc/evil.txt"), "--input", one_image(root), "--output", root / "o"]


@case("predict: a bundle with a symlink member", "link")
def _(root, models):
    return ["predict", evil_zip(root / "evil.zip", "link", b"/etc/passwd", symlink=True), "--input", one_image(root),
            "--output", root / "o"]


@case("predict: a bundle without rdf.yaml", "rdf")
def _(root, models):
    with zipfile.ZipFile(root / "b.zip", "w") as zf:
        zf.writestr("weights.pt", b"123")
    return ["predict", root / "b.zip", "--input", one_image(root), "--output", root / "o"]


@case("predict: a zip that is not a zip", "fake.zip")
def _(root, models):
    (root / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip at all")
    return ["predict", root / "fake.zip", "--input", one_image(root), "--output", root / "o"]


@case("predict: a bundle from another tool (no dl4mic config)", "dl4mic")
def _(root, models):
    with zipfile.ZipFile(root / "foreign.zip", "w") as zf:
        zf.writestr("rdf.yaml", "format_version: 0.5.4\ntype: model\nname: other\n")
    return ["predict", root / "foreign.zip", "--input", one_image(root), "--output", root / "o"]


# --- export ---------------------------------------------------------------------------------------------

@case("export: an output that is not a .zip", ".zip")
def _(root, models):
    return ["export", models / "unet2d", "--output", root / "bundle.tar"]


@case("export: a bundle instead of a model folder", "bundle")
def _(root, models):
    (root / "b.zip").write_bytes(b"")
    return ["export", root / "b.zip"]


@case("export: the output exists", "--overwrite")
def _(root, models):
    (root / "b.zip").write_bytes(b"keep me")
    return ["export", models / "unet2d", "--output", root / "b.zip"]


@case("export --zoo: placeholder authors", "authors")
def _(root, models):
    return ["export", models / "unet2d", "--output", root / "b.zip", "--zoo", "--description", "x"]


# --- fiji and profile ------------------------------------------------------------------------------------

@case("fiji rois: the labels file does not exist", "none_labels.tif")
def _(root, models):
    return ["fiji", "rois", root / "none_labels.tif"]


@case("fiji rois: the output exists", "--output")
def _(root, models):
    tifffile.imwrite(root / "a_labels.tif", blobs()[1])
    (root / "a_rois.zip").write_bytes(b"keep")
    return ["fiji", "rois", root / "a_labels.tif"]


@case("fiji labels: --like image missing", "like.tif")
def _(root, models):
    (root / "r_rois.zip").write_bytes(b"")
    return ["fiji", "labels", root / "r_rois.zip", "--like", root / "like.tif"]


@case("fiji boxes: a CSV without box columns", "boxes.csv")
def _(root, models):
    (root / "boxes.csv").write_text("a,b\n1,2\n")
    return ["fiji", "boxes", root / "boxes.csv"]


@case("fiji install: a folder that is not Fiji", "Fiji")
def _(root, models):
    (root / "NotFiji").mkdir()
    return ["fiji", "install", "--fiji", root / "NotFiji"]


@case("profile set: an invalid ORCID", "0000-0002-1825-0098")
def _(root, models):
    os.environ["DL4MIC_PROFILE"] = str(root / "profile.yaml")
    return ["profile", "set", "--author", "Ada; Lab; 0000-0002-1825-0098"]


# --- the test ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_sentence_and_changes_nothing(name, models, tmp_path, capsys, caplog,
                                                                   monkeypatch):
    fn, expected = CASES[name]
    for key, value in CASE_ENV.get(name, {}).items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "work dir"  # a space in every path: quoting must never be the problem
    root.mkdir()
    argv = fn(root, models)
    before = tree_hash(root)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:  # what a terminal would show beside the sentence
        warnings.simplefilter("always")
        code = cli(*argv)
    out, err = capsys.readouterr()
    noise = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noise, noise
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    message = lines[0]
    for text in expected:
        text = text(root) if callable(text) else text
        assert str(text) in message, (text, message)
    assert tree_hash(root) == before, "the refused command wrote or changed files"
