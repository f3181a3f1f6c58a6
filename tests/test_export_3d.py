"""bioimage.io / DeepImageJ export of 3D networks (care3d, unet3d, n2v3d: BCZYX tensors with per-axis halo
and sizes, the voxel size on the space axes) and of multi-class U-Nets (softmax in the graph): each bundle
passes `bioimageio test` and the offline DeepImageJ check, and round-trips through `dl4mic predict`."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import tifffile

import dl4mic
from dl4mic.data.io import read_image_with_meta, read_meta, write_tiff
from dl4mic.errors import UserError
from dl4mic.export import bundle as B
from dl4mic.export import weights as W
from dl4mic.export.dij import DijIncompatible, check_axes, check_deepimagej, read_sample
from dl4mic.export.yamlio import load_yaml
from dl4mic.predict.model import load_model

from helpers import assert_zoo_ready, cli

FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
TINY3D = {"steps_per_epoch": 2, "batch_size": 2, "patch_size": [8, 32, 32], "depth": 1, "filters": 4,
          "val_patches": 2, "precision": "float32"}
SPACING = (0.29, 0.26, 0.26)  # µm (Z, Y, X) of the cells3d stacks
CASES = ["care3d", "unet3d", "n2v3d", "stardist3d", "multiclass"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DL4MIC_CACHE", str(tmp_path_factory.getbasetemp() / "dl4mic-cache"))


def _crop_folder(src, dst, names, crop, spacing=None):
    """Crops of real stacks, written with their ImageJ axes (and voxel size, when known)."""
    for name in names:
        data, meta = read_image_with_meta(src / name)
        write_tiff(dst / name, data[crop], "ZYX", spacing=spacing or meta.spacing)
    return dst


def _export(model):
    report = {}
    return model, dl4mic.export(model, report=report), report


@pytest.fixture(scope="module")
def care3d_data(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("care3d-data")
    src = shared_data / "care3d_cells3d_semisynthetic" / "train"
    names = sorted(p.name for p in (src / "low").iterdir())[:3]
    crop = np.s_[22:38, 40:88, 40:88]  # 16 x 48 x 48
    return (_crop_folder(src / "low", root / "low", names, crop),
            _crop_folder(src / "high", root / "high", names, crop))


@pytest.fixture(scope="module")
def care3d(tmp_path_factory, care3d_data):
    """Pooled in YX only (pool_z no): the Z axis gets its own multiple (1) and halo."""
    model = dl4mic.train("care3d", source=care3d_data[0], target=care3d_data[1],
                         model=tmp_path_factory.mktemp("care3d") / "care3d", epochs=1,
                         params={**TINY3D, "pool_z": "no", "val_split": 0.34}, progress="none")
    return _export(model)


@pytest.fixture(scope="module")
def unet3d_data(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("unet3d-data")
    src = shared_data / "bbbc050_mouse_embryo_nuclei_3d" / "train"
    names = ["Emb01_t301.tif", "Emb01_t401.tif", "Emb01_t501.tif"]
    crop = np.s_[14:38, 38:86, 38:86]  # 24 x 48 x 48, with nuclei in every crop
    return (_crop_folder(src / "images", root / "images", names, crop),
            _crop_folder(src / "masks_binary", root / "masks", names, crop))


@pytest.fixture(scope="module")
def unet3d(tmp_path_factory, unet3d_data):
    """Pooled along Z too (pool_z yes), with 3D batch norm."""
    model = dl4mic.train("unet3d", source=unet3d_data[0], target=unet3d_data[1],
                         model=tmp_path_factory.mktemp("unet3d") / "unet3d", epochs=1,
                         params={**TINY3D, "pool_z": "yes", "val_split": 0.34}, progress="none")
    return _export(model)


@pytest.fixture(scope="module")
def n2v3d_data(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("n2v3d-data")
    src = shared_data / "n2v3d_real_noisy_stacks" / "train" / "images"
    data = read_image_with_meta(src / "neubias_chromosomes.tif")[0]  # 40 x 152 x 126
    for i, (z, y, x) in enumerate([(4, 20, 20), (20, 80, 60)]):
        write_tiff(root / f"chromosomes_{i}.tif", data[z:z + 16, y:y + 48, x:x + 48], "ZYX")
    return root


@pytest.fixture(scope="module")
def n2v3d(tmp_path_factory, n2v3d_data):
    """N2V2 in 3D: max-blur-pool (1, 2, 2) and trilinear up-sampling in the exported graphs."""
    model = dl4mic.train("n2v3d", source=n2v3d_data, model=tmp_path_factory.mktemp("n2v3d") / "n2v3d", epochs=1,
                         params={**TINY3D, "pool_z": "no", "variant": "n2v2", "val_split": 0.5, "neighborhood_radius": 3},
                         progress="none")
    return _export(model)


@pytest.fixture(scope="module")
def stardist3d_data(tmp_path_factory):
    """stardist's own 3D test stack (31 x 61 x 57) beside its mirror image in X (31 x 61 x 114: the bundle's
    test image needs 68 voxels in Y and X), and that flipped in Y, with their labels."""
    from stardist.data import test_image_nuclei_3d

    x, y = test_image_nuclei_3d(return_mask=True)
    x = np.concatenate([x, x[:, :, ::-1]], axis=2)
    y = np.concatenate([y, np.where(y[:, :, ::-1] > 0, y[:, :, ::-1] + y.max(), 0)], axis=2)
    x, y = np.concatenate([x, x[:, ::-1]], axis=1), np.concatenate([y, np.where(y[:, ::-1] > 0, y[:, ::-1] + y.max(), 0)], axis=1)
    root = tmp_path_factory.mktemp("stardist3d-data")
    for name, (a, b) in {"a.tif": (x, y), "b.tif": (x[:, :, ::-1], y[:, :, ::-1])}.items():
        write_tiff(root / "images" / name, np.ascontiguousarray(a), "ZYX", spacing=(1.0, 0.5, 0.5))
        write_tiff(root / "masks" / name, np.ascontiguousarray(b), "ZYX", spacing=(1.0, 0.5, 0.5))
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def stardist3d(tmp_path_factory, stardist3d_data):
    """Anisotropy 2 from the voxel size: grid 1 along Z, 2 in YX; 97 output channels at input resolution."""
    model = dl4mic.train("stardist3d", source=stardist3d_data[0], target=stardist3d_data[1],
                         model=tmp_path_factory.mktemp("stardist3d") / "sd3", epochs=1,
                         params={**TINY3D, "patch_size": [16, 32, 32], "n_rays": 16, "conv_after_unet": 8,
                                 "val_split": 0.5, "optimize_thresholds": False}, progress="none")
    return _export(model)


@pytest.fixture(scope="module")
def multiclass_data(tmp_path_factory):
    """Synthetic 2D images with two classes: bright discs (1) and dim squares (2) on a dark background."""
    root = tmp_path_factory.mktemp("multiclass-data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for i in range(4):
        mask = np.zeros((64, 64), np.uint8)
        for _ in range(3):
            cy, cx = rng.integers(8, 56, 2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 1
            sy, sx = rng.integers(4, 52, 2)
            mask[sy:sy + 8, sx:sx + 8] = 2
        image = np.choose(mask, [20.0, 200.0, 100.0]) + rng.normal(0, 10, mask.shape)
        write_tiff(root / "images" / f"im{i}.tif", np.clip(image, 0, 255).astype(np.uint8), "YX")
        write_tiff(root / "masks" / f"im{i}.tif", mask, "YX")
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory, multiclass_data):
    model = dl4mic.train("unet2d", source=multiclass_data[0], target=multiclass_data[1],
                         model=tmp_path_factory.mktemp("multiclass") / "mc", epochs=1,
                         params={"steps_per_epoch": 2, "batch_size": 2, "patch_size": 32, "depth": 1, "filters": 4,
                                 "val_patches": 2, "precision": "float32", "n_classes": 2, "val_split": 0.25},
                         progress="none")
    return _export(model)


def _inputs(which, request):
    return {"care3d": lambda: request.getfixturevalue("care3d_data")[0],
            "unet3d": lambda: request.getfixturevalue("unet3d_data")[0],
            "n2v3d": lambda: request.getfixturevalue("n2v3d_data"),
            "stardist3d": lambda: request.getfixturevalue("stardist3d_data")[0],
            "multiclass": lambda: request.getfixturevalue("multiclass_data")[0]}[which]()


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return load_yaml(zf.read("rdf.yaml"))


def _member(path, name):
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


@pytest.mark.parametrize("which", CASES)
def test_bundle_passes_bioimageio_and_deepimagej(which, request):
    """The exporter ran bioimageio.core's model test (every weight format, also on larger inputs) and the
    offline DeepImageJ check on the finished zip; both passed."""
    model, path, report = request.getfixturevalue(which)
    assert path.is_file() and path.parent == model / "export"
    assert report["bioimageio"] == "passed", report["checks"]
    assert all(status == "passed" for _, status in report["checks"])
    passed = {name for name, _ in report["checks"]}
    for wf in FORMATS:
        assert f"Reproduce test outputs from test inputs ({wf})" in passed, wf
        assert any(n.startswith(f"Run {wf} inference for inputs with batch_size: 2 and size parameter n: 2")
                   for n in passed), wf
    assert report["deepimagej"]["max_abs_diff"] <= 1.5e-4
    assert check_deepimagej(path)["n_pixels"] == report["deepimagej"]["n_pixels"]


@pytest.mark.parametrize("which", ["care3d", "unet3d", "n2v3d", "stardist3d"])
def test_3d_zoo_bundle_is_ready_to_upload(which, request, tmp_path, monkeypatch):
    model, _, _ = request.getfixturevalue(which)
    assert_zoo_ready(model, tmp_path, monkeypatch)


@pytest.mark.parametrize("which", ["care3d", "unet3d", "n2v3d"])
def test_3d_axes_halo_sizes_and_samples(which, request):
    """BCZYX tensors; per-axis min = 2 * halo + multiple, step = multiple, output halo per axis; the
    architecture kwargs rebuild a 3D U-Net; samples are ZYX ImageJ stacks equal to the test tensors."""
    model, path, _ = request.getfixturevalue(which)
    g = load_model(model).geometry
    rdf = _rdf(path)
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "z", "y", "x"]
    assert [a.get("id", a["type"]) for a in out["axes"]] == ["batch", "channel", "z", "y", "x"]
    for i, a in enumerate(g.axes):
        assert inp["axes"][2 + i]["size"] == {"min": 2 * g.halo[i] + g.multiple[i], "step": g.multiple[i]}, a
        assert out["axes"][2 + i]["halo"] == g.halo[i], a
        assert out["axes"][2 + i]["size"] == {"tensor_id": "input", "axis_id": a.lower()}
    if which != "unet3d":  # pool_z no: Z is not down-sampled
        assert g.multiple[0] == 1 and g.halo[0] < g.halo[1]
    assert inp["description"].startswith("Raw 3D stack (ZYX)")
    kwargs = rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]
    assert kwargs["dims"] == 3 and tuple(kwargs["pool"]) == tuple(g.multiple)  # depth 1: multiple = pool
    test_in = np.load(io.BytesIO(_member(path, inp["test_tensor"]["source"])))
    test_out = np.load(io.BytesIO(_member(path, out["test_tensor"]["source"])))
    assert test_in.ndim == 5 and test_in.shape[:2] == (1, 1) and test_out.shape[2:] == test_in.shape[2:]
    zyx = test_in.shape[2:]
    assert all(s <= cap for s, cap in zip(zyx, B.SAMPLE_SIDES[3]))
    assert all((s - (2 * h + k)) % k == 0 and s >= 2 * h + k for s, h, k in zip(zyx, g.halo, g.multiple))
    with tifffile.TiffFile(io.BytesIO(_member(path, inp["sample_tensor"]["source"]))) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), test_in[0, 0])
    dij = rdf["config"]["deepimagej"]["test_information"]
    assert dij["inputs"][0]["size"] == f"{zyx[2]} x {zyx[1]} x {zyx[0]} x 1"
    assert dij["outputs"][0]["size"] == f"{zyx[2]} x {zyx[1]} x {zyx[0]} x {test_out.shape[1]}"
    readme = _member(path, "README.md").decode()
    assert "middle Z plane" in readme and "stack (ZYX)" in readme
    k, h = g.multiple, g.halo
    assert (f"along Z, Y and X the sides are multiples of {k[0]}, {k[1]} and {k[2]} (min {2 * h[0] + k[0]}, "
            f"{2 * h[1] + k[1]} and {2 * h[2] + k[2]}), and {h[0]}, {h[1]} and {h[2]} voxels of context") in readme
    import onnx

    proto = onnx.load_model_from_string(_member(path, rdf["weights"]["onnx"]["source"]))
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "z", "y", "x"] and proto.ir_version == 8


def test_stardist3d_bundle_in_stardists_layout(stardist3d):
    """config.stardist holds what StarDist 3D's NMS needs (rays, grid, anisotropy, thresholds); the output is
    probability + distances at the input's resolution; the README says who runs the 3D NMS."""
    model, path, _ = stardist3d
    rdf = _rdf(path)
    sd = rdf["config"]["stardist"]
    assert sd["config"]["n_dim"] == 3 and sd["config"]["grid"] == [1, 2, 2] and sd["config"]["anisotropy"] == [2, 1, 1]
    assert sd["config"]["rays_json"]["name"] == "Rays_GoldenSpiral" and sd["config"]["n_rays"] == 16
    assert set(sd["thresholds"]) == {"prob", "nms"} and "postprocessing_macro" not in sd
    test_out = np.load(io.BytesIO(_member(path, rdf["outputs"][0]["test_tensor"]["source"])))
    test_in = np.load(io.BytesIO(_member(path, rdf["inputs"][0]["test_tensor"]["source"])))
    assert test_out.shape[1] == 17 and test_out.shape[2:] == test_in.shape[2:]
    assert 0 <= test_out[:, 0].min() and test_out[:, 0].max() <= 1
    readme = _member(path, "README.md").decode()
    assert "not StarDist 3D's non-maximum suppression" in readme and "dl4mic predict BUNDLE.zip" in readme


def test_care3d_bundle_carries_the_voxel_size(care3d):
    """The training stacks' voxel size (µm) is on the rdf's space axes (scale, unit micrometer), in the
    sample TIFFs' ImageJ calibration, DeepImageJ's test information and the README."""
    model, path, _ = care3d
    assert load_model(model).geometry.spacing == pytest.approx(SPACING)
    rdf = _rdf(path)
    for t in (rdf["inputs"][0], rdf["outputs"][0]):
        space = [a for a in t["axes"] if a["type"] == "space"]
        assert [a["scale"] for a in space] == pytest.approx(SPACING)
        assert {a["unit"] for a in space} == {"micrometer"}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sample_input.tif", "sample_output.tif"):
            (Path(tmp) / name).write_bytes(_member(path, name))
            meta = read_meta(Path(tmp) / name)
            assert meta.axes == "ZYX" and meta.spacing == pytest.approx(SPACING, rel=1e-4)
    pixel = rdf["config"]["deepimagej"]["test_information"]["inputs"][0]["pixel_size"]
    assert pixel == {"x": "0.26 µm", "y": "0.26 µm", "z": "0.29 µm"}
    assert "0.29 x 0.26 x 0.26 µm (Z x Y x X)" in _member(path, "README.md").decode()
    assert rdf["inputs"][0]["preprocessing"][0]["kwargs"]["axes"] == ["z", "y", "x"]


def test_multiclass_bundle_has_softmax_in_the_graph(multiclass):
    """K = 2 classes: probability of background and each class (the spec's channel names), a softmax
    inside the exported graph and no post-processing."""
    model, path, _ = multiclass
    rdf = _rdf(path)
    out = rdf["outputs"][0]
    assert out["id"] == "probability" and out["postprocessing"] == []
    assert out["axes"][1]["channel_names"] == ["background", "class1", "class2"]
    kwargs = rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]
    assert kwargs["softmax"] is True and kwargs["sigmoid"] is False and kwargs["out_channels"] == 3
    assert "dims" not in kwargs and "pool" not in kwargs  # 2D: the kwargs 2D bundles always had
    y = np.load(io.BytesIO(_member(path, out["test_tensor"]["source"])))
    assert y.shape[1] == 3 and 0 <= y.min() and y.max() <= 1
    np.testing.assert_allclose(y.sum(axis=1), 1, atol=1e-5)
    with tifffile.TiffFile(io.BytesIO(_member(path, out["sample_tensor"]["source"]))) as tif:
        assert tif.series[0].axes == "CYX"
        np.testing.assert_array_equal(tif.asarray(), y[0])


@pytest.mark.parametrize("which", CASES)
def test_round_trip_predict_from_zip_equals_folder(which, request, tmp_path):
    model, path, _ = request.getfixturevalue(which)
    inputs = _inputs(which, request)
    assert cli("predict", model, "--input", inputs, "--output", tmp_path / "folder") == 0
    assert cli("predict", path, "--input", inputs, "--output", tmp_path / "zip") == 0
    a, b = sorted((tmp_path / "folder").iterdir()), sorted((tmp_path / "zip").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and a
    for pa, pb in zip(a, b):
        if pa.suffix == ".csv":
            assert pa.read_text() == pb.read_text()
        else:
            np.testing.assert_array_equal(tifffile.imread(pa), tifffile.imread(pb))
    if which != "multiclass":  # the stacks come back as stacks
        first = next(p for p in b if p.suffix == ".tif")
        assert tifffile.imread(first).ndim == 3


def test_sample_of_the_wrong_dimensionality_is_refused(care3d, multiclass, unet3d_data, multiclass_data, tmp_path):
    """A 2D image for a 3D model and a stack for a 2D model: one sentence naming the file and the fix."""
    image2d = next(multiclass_data[0].iterdir())
    with pytest.raises(UserError) as err:
        B.export(care3d[0], tmp_path / "a.bioimage.io.zip", sample=image2d, test=False)
    msg = str(err.value)
    assert str(image2d) in msg and "3D network" in msg and "ZYX stack" in msg and "\n" not in msg
    stack = next(unet3d_data[0].iterdir())
    with pytest.raises(UserError) as err:
        B.export(multiclass[0], tmp_path / "b.bioimage.io.zip", sample=stack, test=False)
    msg = str(err.value)
    assert str(stack) in msg and "2D network" in msg and "one plane" in msg and "\n" not in msg
    small = write_tiff(tmp_path / "small.tif", np.zeros((4, 48, 48), np.uint16), "ZYX")
    with pytest.raises(UserError, match="needs at least 13x22x22"):
        B.export(care3d[0], tmp_path / "c.bioimage.io.zip", sample=small, test=False)
    assert not list(tmp_path.glob("*.zip"))


def test_sample_crop_of_a_large_stack_is_centred_and_capped(care3d, tmp_path, shared_data):
    """A whole 60 x 128 x 128 stack as sample: a centred crop of at most 32 x 128 x 128 voxels."""
    src = shared_data / "care3d_cells3d_semisynthetic" / "train" / "low" / "q_r0c0.tif"
    m = load_model(care3d[0])
    crop, truth = B._sample_image(m, src)
    full = read_image_with_meta(src)[0]
    assert crop.shape == (32, 128, 128)
    np.testing.assert_array_equal(crop, full[14:46])
    assert truth is None  # a sample given by hand has no ground truth


# --- building blocks (no training) --------------------------------------------------------------

@pytest.mark.parametrize("dims,pool,head", [(3, (1, 2, 2), "softmax"), (3, (2, 2, 2), "sigmoid"), (2, (2, 2), None)])
def test_bundle_unet_rebuilds_2d_and_3d_with_its_head(dims, pool, head, tmp_path):
    """`unet_kwargs` + the shipped source rebuild the U-Net (Conv3d/BatchNorm3d, pooling per axis); the
    traced TorchScript and the ONNX graph (dynamic batch and spatial axes) agree on other sizes."""
    import onnxruntime as ort
    import torch

    from dl4mic.networks.unet import UNet

    torch.manual_seed(0)
    net = UNet(1, 3 if head == "softmax" else 1, depth=1, filters=4, batch_norm=True, dims=dims, pool=pool).eval()
    module, name, kwargs = W.build_bundle_module(net, sigmoid=head == "sigmoid", softmax=head == "softmax")
    assert name == "BundleUNet" and kwargs["batch_norm"] is True
    assert (kwargs.get("dims"), kwargs.get("pool")) == ((3, list(pool)) if dims == 3 else (None, None))
    assert kwargs.get("softmax", False) == (head == "softmax")
    example = torch.zeros((1, 1) + (22,) * dims)
    W.save_torchscript(module, example, tmp_path / "ts.pt")
    W.save_onnx(module, example, tmp_path / "m.onnx", "input", "output")
    x = torch.rand((2, 1) + ((13, 24, 26) if dims == 3 else (24, 26)))
    if dims == 3 and pool[0] == 2:
        x = torch.rand(2, 1, 14, 24, 26)
    with torch.no_grad():
        want = net(x)
        want = torch.softmax(want, 1) if head == "softmax" else torch.sigmoid(want) if head == "sigmoid" else want
        np.testing.assert_allclose(module(x).numpy(), want.numpy(), atol=1e-5)
        np.testing.assert_allclose(torch.jit.load(str(tmp_path / "ts.pt"))(x).numpy(), want.numpy(), atol=1e-5)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], want.numpy(), atol=1e-4)


def test_deepimagej_check_refuses_axes_it_cannot_run():
    ok = {"id": "input", "axes": [{"type": "batch"}, {"type": "channel"}, {"type": "space", "id": "z"},
                                  {"type": "space", "id": "y"}, {"type": "space", "id": "x"}]}
    check_axes(ok)
    for bad in ([{"type": "time", "id": "t"}], [{"type": "index", "id": "i"}], [{"type": "space", "id": "w"}]):
        with pytest.raises(DijIncompatible, match="batch, channel and z/y/x"):
            check_axes({**ok, "axes": ok["axes"] + bad})
    with pytest.raises(DijIncompatible, match="lacks the y and x"):
        check_axes({**ok, "axes": ok["axes"][:3]})


def test_sample_hyperstack_of_a_multichannel_stack_reads_back_in_tensor_order(tmp_path):
    """Stacks with channels are ImageJ ZCYX hyperstacks (ImageJ's order); the check reads them as CZYX."""
    from dl4mic.export.describe import _write_sample

    t = np.random.default_rng(0).random((1, 2, 5, 8, 9)).astype(np.float32)
    _write_sample(tmp_path / "s.tif", t, "ZYX", (2.0, 0.5, 0.5))
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZCYX"
    assert read_meta(tmp_path / "s.tif").spacing == pytest.approx((2.0, 0.5, 0.5))
    back = read_sample((tmp_path / "s.tif").read_bytes(), ["batch", "channel", "z", "y", "x"])
    np.testing.assert_array_equal(back.reshape(t.shape), t)
