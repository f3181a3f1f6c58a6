"""3D and time-lapse results in ImageJ, read back through ij.jar under Jython: Predict.py opens a Z-stack,
a TZYX hyperstack or a TYX time-lapse with its dimensions and calibration, and puts one ROI per object and
plane into the ROI Manager at its Z/T position.

The models are trained for one step, then their output convolutions are set to constants (weights zero,
known biases), so that the objects they predict are known without a long training: U-Net foreground
everywhere (one object filling each frame), StarDist 3D star-convex spheres of a known radius.
"""

import numpy as np
import pytest
import tifffile

from dl4mic.data.io import write_tiff
from dl4mic.fiji.jython import open_step
from dl4mic.predict.rois import parse_name, read_roi_zip

from helpers import cli

SPACING = (2.0, 0.5, 0.5)  # Z, Y, X in µm
ONE_STEP = ["--param", "epochs=1", "--param", "steps_per_epoch=1", "--param", "batch_size=1", "--param", "depth=1",
            "--param", "filters=4", "--param", "val_split=0.5", "--progress", "none"]


def constant_outputs(model, **biases):
    """Zero the weights of the named output convolutions of a model folder and set their biases."""
    import torch

    for name in ("best.pt", "last.pt"):
        path = model / "weights" / name
        state = torch.load(path)
        for head, bias in biases.items():
            state[f"{head}.weight"].zero_()
            state[f"{head}.bias"].fill_(bias)
        torch.save(state, path)
    return model


def bbbc050_crops(shared_data, folder, shape=(16, 64, 64)):
    """Two BBBC050 mouse-embryo crops and their nucleus labels, as source/target folders."""
    root = shared_data / "bbbc050_mouse_embryo_nuclei_3d" / "train"
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True)
        for path in sorted((root / kind).glob("*.tif"))[:2]:
            crop = tifffile.imread(path)[tuple(slice(0, n) for n in shape)]
            write_tiff(folder / kind / path.name, crop, "ZYX", spacing=SPACING)
    return folder / "images", folder / "masks"


@pytest.fixture(scope="module")
def models(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("hyperstack-models")
    source, target = bbbc050_crops(shared_data, root / "data")
    binary = root / "data" / "binary"
    binary.mkdir()
    for path in sorted(target.iterdir()):
        write_tiff(binary / path.name, (tifffile.imread(path) > 0).astype(np.uint8) * 255, "ZYX", spacing=SPACING)
    flat_source, flat_target = root / "data" / "flat_images", root / "data" / "flat_masks"
    for src, dst in ((source, flat_source), (binary, flat_target)):
        dst.mkdir()
        for path in sorted(src.iterdir()):
            tifffile.imwrite(dst / path.name, tifffile.imread(path)[8])
    out = {}
    for network, src, tgt, patch in (("unet3d", source, binary, "16,32,32"), ("stardist3d", source, target, "16,32,32"),
                                     ("unet2d", flat_source, flat_target, "32")):
        extra = ["--param", "n_rays=32"] if network == "stardist3d" else []
        assert cli("train", network, "--source", src, "--target", tgt, "--model", root / network,
                   "--param", f"patch_size={patch}", *ONE_STEP, *extra) == 0
        out[network] = root / network
    constant_outputs(out["unet3d"], head=5.0)
    constant_outputs(out["unet2d"], head=5.0)
    constant_outputs(out["stardist3d"], prob=5.0, dist=12.0)
    out["source"] = source
    return out


def stack(models, tmp_path, kind):
    """The image to predict: a BBBC050 Z-stack, two of them as a TZYX time-lapse, or a TYX time-lapse."""
    volumes = [tifffile.imread(p) for p in sorted(models["source"].iterdir())]
    if kind == "ZYX":
        return write_tiff(tmp_path / "embryo.tif", volumes[0], "ZYX", spacing=SPACING)
    if kind == "TZYX":
        return write_tiff(tmp_path / "embryo_t.tif", np.stack(volumes), "TZYX", spacing=SPACING)
    return write_tiff(tmp_path / "embryo_tyx.tif", np.stack([v[8] for v in volumes] + [volumes[0][4]]), "TYX",
                      spacing=SPACING[1:])


CASES = {  # network, input axes -> (slices, frames) of the outputs
    "unet3d": ("unet3d", "ZYX", (16, 1)),
    "stardist3d": ("stardist3d", "ZYX", (16, 1)),
    "stardist3d_on_tzyx": ("stardist3d", "TZYX", (16, 2)),
    "unet2d_on_tyx": ("unet2d", "TYX", (1, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_jython_predictions_open_as_calibrated_hyperstacks_with_rois_on_their_planes(jython, models, tmp_path,
                                                                                     case):
    network, axes, (slices, frames) = CASES[case]
    image = stack(models, tmp_path, axes)
    out = tmp_path / "out"
    out.mkdir()
    session = jython.run([open_step(image), jython.script("Predict.py", {"model": models[network], "input": image,
                                                                         "output": out, "rois": True})])
    outputs = {title: info for title, info in session.images.items() if title != image.name}
    assert image.name in session.images and outputs
    for title, info in outputs.items():
        assert (info["slices"], info["frames"], info["channels"]) == (slices, frames, 1), title
        cal = info["calibration"]
        assert (cal["pixel_height"], cal["pixel_width"]) == pytest.approx(SPACING[1:]), title
        if slices > 1:
            assert cal["pixel_depth"] == pytest.approx(SPACING[0]), title
        assert cal["unit"] in ("µm", "um", "micron"), title
    # one ROI per object and plane, at its plane: Z on a Z-stack, Z and T on a hyperstack, T on a time-lapse
    (zip_path,) = out.glob("*_rois.zip")
    assert [r["name"] for r in session.rois] == [r.name for r in read_roi_zip(zip_path)]
    assert session.rois
    for roi in session.rois:
        label, z, t = parse_name(roi["name"]) or (None, None, None)
        if axes == "ZYX":
            assert roi["position"] == z and 1 <= z <= slices, roi
        elif axes == "TZYX":
            assert (roi["z"], roi["t"]) == (z, t) and 1 <= t <= frames, roi
        else:
            assert 1 <= roi["position"] <= frames, roi
    # the objects are on several planes, and on every frame of a time-lapse
    assert len({(r["z"], r["t"], r["position"]) for r in session.rois}) > 1
    if axes == "TZYX":
        assert {r["t"] for r in session.rois} == {1, 2}
    if axes == "TYX":
        assert {r["position"] for r in session.rois} == {1, 2, 3}
    if network.startswith("unet"):  # foreground everywhere: one object covering each plane
        assert len(session.rois) == slices * frames
        assert {r["area"] for r in session.rois} == {64 * 64}
