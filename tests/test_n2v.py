"""Noise2Void 2D (n2v2d): blind-spot masking, loss, the N2V2 U-Net options, training from --source only
(a single image), prediction and QC with and without ground truth. Tiny sizes: the file runs in < 1 min."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import dl4mic
from dl4mic.errors import UserError
from dl4mic.networks import get_network
from dl4mic.training.blind_spot import blind_spot_mask, masked_mse, stratified_coords
from dl4mic.networks.unet import UNet
from dl4mic.tiling import predict_tiled
from dl4mic.specs import load_spec

from helpers import TINY, cli, write

N2V_TINY = {**TINY, "steps_per_epoch": 2, "val_patches": 4}


def test_stratified_density():
    rng = np.random.default_rng(0)
    n = [stratified_coords((64, 64), 0.00198, rng)[0].size for _ in range(200)]
    assert abs(np.mean(n) / 4096 - 0.00198) < 0.0004  # N2V's 0.198 %
    ys, xs = stratified_coords((64, 64), 0.05, rng)
    assert ys.min() >= 0 and xs.min() >= 0 and ys.max() < 64 and xs.max() < 64
    # one pixel per grid cell; cells of non-integer side can rarely share a pixel (masked once)
    assert len(set(zip(ys.tolist(), xs.tolist()))) >= 0.97 * ys.size


@pytest.mark.parametrize("strategy", ["uniform", "median"])
def test_blind_spot_mask_replaces_only_masked_pixels_from_their_neighbourhood(strategy):
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 2 * 40 * 40).reshape(2, 2, 40, 40).astype(np.float32)  # all values distinct
    masked, mask = blind_spot_mask(x, 0.02, 2, strategy, rng)
    assert mask.shape == x.shape and set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0
    assert np.array_equal(masked[mask == 0], x[mask == 0])
    for b, c, y, xx in zip(*np.nonzero(mask)):
        win = x[b, c, max(0, y - 2):y + 3, max(0, xx - 2):xx + 3]
        neighbours = win.ravel()[win.ravel() != x[b, c, y, xx]]  # the window cut at the border, without the centre
        if strategy == "uniform":
            assert masked[b, c, y, xx] in neighbours
        else:
            assert masked[b, c, y, xx] == pytest.approx(np.median(neighbours))


def test_masked_mse_scores_masked_pixels_only():
    pred = torch.zeros(1, 1, 4, 4)
    orig = torch.ones(1, 1, 4, 4) * 3
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 1, 2] = 1
    orig[0, 0, 1, 2] = 2
    assert float(masked_mse(pred, torch.cat([orig, mask], 1))) == pytest.approx(4.0)


@pytest.mark.parametrize("name,shape", [("n2v2d", (3, 1, 32, 32)), ("n2v3d", (2, 1, 12, 24, 24))])
def test_self_supervised_batch_builds_target_from_input(name, shape):
    net = get_network(name)
    p = load_spec(name).resolve({"masked_pixel_percentage": 2.0})
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    batch = net.strategy(p).batch(x, None, np.random.default_rng(0))
    xm, y = batch["source"], batch["target"]
    assert xm.shape == x.shape and y.shape == (shape[0], 2) + shape[2:]
    assert np.array_equal(y[:, :1], x) and y[:, 1].sum() > 0


def test_unet_defaults_unchanged_and_n2v2_options():
    torch.manual_seed(0)
    a = UNet(1, 1, depth=2, filters=8)
    torch.manual_seed(0)
    b = UNet(1, 1, depth=2, filters=8, blur_pool=False, top_skip=True, upsample="nearest")
    x = torch.randn(1, 1, 32, 32)
    assert list(a.state_dict()) == list(b.state_dict()) and torch.equal(a(x), b(x))
    n2v2 = UNet(1, 1, depth=2, filters=8, blur_pool=True, top_skip=False)
    assert n2v2(x).shape == x.shape
    plain = UNet(1, 1, depth=2, filters=8)
    # top level: the skip (8 channels) is not concatenated
    assert n2v2.up[-1][0].in_channels == plain.up[-1][0].in_channels - 8


def test_n2v2_tiled_prediction_equals_single_pass():
    net = get_network("n2v2d")
    p = load_spec("n2v2d").resolve({"variant": "n2v2", "filters": 4})
    torch.manual_seed(0)
    module = net.build(p).eval()

    def run(a):
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    img = np.random.default_rng(0).random((100, 84), dtype=np.float32)
    g = net.geometry(p)
    whole = predict_tiled(run, img, None, g.halo, g.multiple)
    tiled = predict_tiled(run, img, 32, g.halo, g.multiple)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.fixture(scope="module")
def n2v_data(tmp_path_factory):
    """One noisy 96x96 image (smooth signal + Gaussian noise), its clean version, and a second noisy test image."""
    root = tmp_path_factory.mktemp("n2v")
    yy, xx = np.mgrid[:96, :96]
    clean = (100 + 60 * np.sin(xx / 7.0) * np.cos(yy / 9.0)).astype(np.float32)
    rng = np.random.default_rng(0)
    write(root / "train" / "only.tif", (clean + rng.normal(0, 20, clean.shape)).astype(np.float32))
    write(root / "test" / "noisy" / "t1.tif", (clean + rng.normal(0, 20, clean.shape)).astype(np.float32))
    write(root / "test" / "clean" / "t1.tif", clean)
    return root


@pytest.fixture(scope="module")
def n2v_model(tmp_path_factory, n2v_data):
    out = tmp_path_factory.mktemp("n2v_model") / "m"
    return dl4mic.train("n2v2d", source=n2v_data / "train", model=out, epochs=1,
                        params={**N2V_TINY, "variant": "n2v2"}, progress="none")


def test_n2v_zoo_bundle_is_ready_to_upload(n2v_model, tmp_path, monkeypatch):
    from helpers import assert_zoo_ready

    _, readme = assert_zoo_ready(n2v_model, tmp_path, monkeypatch)
    assert "| ground truth" not in readme  # self-supervised: no ground truth on the cover


def test_trains_from_source_only_on_a_single_image(n2v_model, n2v_data):
    config = json.loads(json.dumps(dl4mic.predict.model.read_model_config(n2v_model)))
    assert config["network"] == "n2v2d" and config["data"]["target"] is None
    assert config["data"]["split"] == "strips of one image"
    assert config["normalization"]["target"] == {"method": "source"}
    assert (n2v_model / "weights" / "best.pt").is_file()


def test_predict_keeps_input_units(n2v_model, n2v_data, tmp_path):
    assert cli("predict", n2v_model, "--input", n2v_data / "test" / "noisy", "--output", tmp_path / "out") == 0
    import tifffile

    pred = tifffile.imread(tmp_path / "out" / "t1.tif")
    noisy = tifffile.imread(n2v_data / "test" / "noisy" / "t1.tif")
    assert pred.dtype == np.float32 and pred.shape == noisy.shape
    # raw units: the network's output mapped back with the input's own percentile range
    from dl4mic.data.normalize import scale, unscale
    from dl4mic.predict.model import load_model

    m = load_model(n2v_model)
    lo, hi = m.normalizer.source_range(noisy)
    raw = m._run(scale(noisy, lo, hi)[None, None])[0, 0]
    np.testing.assert_allclose(pred, unscale(raw, lo, hi), rtol=1e-4, atol=1e-3 * (hi - lo))


def test_refuses_a_target(n2v_data):
    with pytest.raises(UserError, match="--source alone"):
        dl4mic.train("n2v2d", source=n2v_data / "train", target=n2v_data / "train", model=n2v_data / "x")


def test_qc_with_and_without_ground_truth(n2v_model, n2v_data, tmp_path):
    with_gt = dl4mic.qc(n2v_model, n2v_data / "test" / "noisy", n2v_data / "test" / "clean",
                        output=tmp_path / "qc_gt", progress="none")
    assert {"psnr", "ssim", "nrmse"} <= set(with_gt["metrics"]["model"]) and "gaussian" in with_gt["metrics"]
    no_gt = dl4mic.qc(n2v_model, n2v_data / "test" / "noisy", output=tmp_path / "qc", progress="none")
    assert no_gt["ground_truth"] is False and no_gt["test_data"]["target"] is None
    m = no_gt["metrics"]["model"]
    assert {"residual_std", "noise_sigma", "residual_lag1", "prediction_checkerboard"} <= set(m)
    for f in ("report.pdf", "summary.json", "metrics.csv", "example.png", "maps/t1_residual.tif", "maps/t1.png",
              "predictions/t1.tif"):
        assert (tmp_path / "qc" / f).is_file(), f


def test_checkerboard_peak_detects_a_grid():
    from dl4mic.qc.residuals import checkerboard_peak

    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(128, 128)), 0), 1)
    yy, xx = np.mgrid[:128, :128]
    grid = smooth + 0.02 * smooth.std() * ((yy + xx) % 2)
    assert checkerboard_peak(grid) > 10 * checkerboard_peak(smooth)


def test_dataset_normalization_is_stored_and_percentile_is_an_option(n2v_model, n2v_data, tmp_path):
    """Default: one mean/std over the training images (as Noise2Void); `percentile` keeps CARE's per-image scaling."""
    import tifffile

    noisy = tifffile.imread(n2v_data / "train" / "only.tif").astype(np.float64)
    source = dl4mic.predict.model.read_model_config(n2v_model)["normalization"]["source"]
    assert source["method"] == "meanstd"
    assert source["mean"] == pytest.approx(noisy.mean(), rel=1e-4) and source["std"] == pytest.approx(noisy.std(), rel=1e-3)
    other = dl4mic.train("n2v2d", source=n2v_data / "train", model=tmp_path / "p", epochs=1,
                         params={**N2V_TINY, "normalization": "percentile"}, progress="none")
    assert dl4mic.predict.model.read_model_config(other)["normalization"]["source"]["method"] == "percentile"


def test_export_in_input_units(n2v_model, n2v_data, tmp_path, monkeypatch):
    """The bundle normalises with the training mean/std and maps its output back: DeepImageJ's result is in the
    input's units, equal to `dl4mic predict`; bioimageio.core's test passes for every weight format."""
    import io
    import zipfile

    import tifffile

    from dl4mic.export.yamlio import load_yaml

    monkeypatch.setenv("DL4MIC_CACHE", str(tmp_path / "cache"))
    report = {}
    path = dl4mic.export(n2v_model, tmp_path / "n2v.bioimage.io.zip", report=report,
                         sample=n2v_data / "test" / "noisy" / "t1.tif")
    assert report["bioimageio"] == "passed" and report["deepimagej"]["max_abs_diff"] < 1e-3
    with zipfile.ZipFile(path) as zf:
        rdf = load_yaml(zf.read("rdf.yaml"))
        test_in = np.load(io.BytesIO(zf.read(rdf["inputs"][0]["test_tensor"]["source"])))[0, 0]
        test_out = np.load(io.BytesIO(zf.read(rdf["outputs"][0]["test_tensor"]["source"])))[0, 0]
    source = dl4mic.predict.model.read_model_config(n2v_model)["normalization"]["source"]
    assert rdf["inputs"][0]["preprocessing"] == [{"id": "fixed_zero_mean_unit_variance",
                                                  "kwargs": {"mean": source["mean"], "std": source["std"]}}]
    assert rdf["outputs"][0]["postprocessing"][0]["id"] == "scale_linear"
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "s.tif", test_in)
    assert cli("predict", n2v_model, "--input", tmp_path / "in", "--output", tmp_path / "out") == 0
    ours = tifffile.imread(tmp_path / "out" / "s.tif")
    np.testing.assert_allclose(test_out, ours, atol=1e-3 * source["std"])


def _bundle_rdf(path) -> dict:
    import zipfile

    from dl4mic.export.yamlio import load_yaml

    with zipfile.ZipFile(path) as zf:
        return load_yaml(zf.read("rdf.yaml"))


@pytest.fixture(scope="module")
def rgb_data(tmp_path_factory):
    """Two noisy RGB images (uint8, Y X C as photographs are stored) and the clean version of the test one."""
    root = tmp_path_factory.mktemp("rgb")
    yy, xx = np.mgrid[:96, :96]
    clean = np.stack([100 + 60 * np.sin(xx / 7.0), 120 + 50 * np.cos(yy / 9.0),
                      80 + 40 * np.sin((xx + yy) / 11.0)], axis=-1)
    rng = np.random.default_rng(1)

    def png(path, array):
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)

    for name in ("a", "b"):
        png(root / "train" / f"{name}.png", clean + rng.normal(0, 15, clean.shape))
    png(root / "test" / "noisy" / "t.png", clean + rng.normal(0, 15, clean.shape))
    png(root / "test" / "clean" / "t.png", clean)
    return root


@pytest.mark.parametrize("channels", ["independent", "together"])
def test_rgb_trains_predicts_and_qc_per_channel(channels, rgb_data, tmp_path, monkeypatch, capsys):
    """RGB is handled explicitly: per-channel normalisation, one network over the channels (independent: shared
    single-channel weights; together: 3 in, 3 out), channels-first float outputs, QC rows per channel."""
    import tifffile

    monkeypatch.setenv("DL4MIC_CACHE", str(tmp_path / "cache"))
    model = dl4mic.train("n2v2d", source=rgb_data / "train", model=tmp_path / "m", epochs=1,
                         params={**N2V_TINY, "channels": channels}, progress="none")
    config = dl4mic.predict.model.read_model_config(model)
    assert config["parameters"]["n_channels"] == 3 and config["axes"] == "YXC"
    norm = config["normalization"]["source"]
    assert len(norm["mean"]) == 3 and norm["mean"][1] > norm["mean"][2]  # per channel (G brighter than B)
    m = dl4mic.predict.model.load_model(model)
    assert m.module.head.out_channels == (1 if channels == "independent" else 3)
    assert m.module.channelwise is (channels == "independent")
    assert cli("predict", model, "--input", rgb_data / "test" / "noisy", "--output", tmp_path / "out") == 0
    pred = tifffile.imread(tmp_path / "out" / "t.tif")
    assert pred.shape == (3, 96, 96) and pred.dtype == np.float32
    noisy = np.moveaxis(np.asarray(dl4mic.data.io.read_image(rgb_data / "test" / "noisy" / "t.png")), -1, 0)
    assert np.all(np.abs(pred.mean(axis=(1, 2)) - noisy.mean(axis=(1, 2))) < 20)  # each channel in its own units
    qc = dl4mic.qc(model, rgb_data / "test" / "noisy", rgb_data / "test" / "clean", output=tmp_path / "qc",
                   progress="none")
    assert qc["test_data"]["n_images"] == 1 and qc["test_data"]["files"] == ["t.png"]
    assert (tmp_path / "qc" / "predictions" / "t_c3.tif").is_file() and (tmp_path / "qc" / "example.png").is_file()
    with open(tmp_path / "qc" / "metrics.csv") as fh:
        assert len(fh.read().strip().splitlines()) == 1 + 3
    report = {}
    bundle = dl4mic.export(model, tmp_path / "rgb.bioimage.io.zip", report=report,
                           sample=rgb_data / "test" / "noisy" / "t.png")
    assert report["bioimageio"] == "passed" and report["deepimagej"]["max_abs_diff"] < 1e-3
    rdf = _bundle_rdf(bundle)
    assert rdf["inputs"][0]["axes"][1]["channel_names"] == ["raw0", "raw1", "raw2"]
    assert rdf["inputs"][0]["preprocessing"][0]["kwargs"]["axis"] == "channel"
    assert len(rdf["outputs"][0]["postprocessing"][0]["kwargs"]["gain"]) == 3
    gray = write(tmp_path / "gray" / "g.tif", np.zeros((96, 96), np.float32) + np.arange(96, dtype=np.float32))
    with pytest.raises(UserError, match="3-channel"):
        m.predict(dl4mic.data.io.read_image(gray))
    capsys.readouterr()
    assert cli("predict", model, "--input", gray, "--output", tmp_path / "gray_out") == 2
    assert "g.tif: This n2v2d model was trained on 3-channel images" in capsys.readouterr().err


def test_mixed_channel_counts_refused(rgb_data, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        shutil.copy(rgb_data / "train" / f"{name}.png", src / f"{name}.png")
    write(src / "c.tif", np.random.default_rng(0).random((2, 96, 96)).astype(np.float32))
    with pytest.raises(UserError, match="channel"):
        dl4mic.train("n2v2d", source=src, model=tmp_path / "m", epochs=1, params=N2V_TINY, progress="none")
