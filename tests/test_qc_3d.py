"""QC building blocks on volumes (Z, Y, X): metrics, maps, baselines, residual statistics and figures."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402
from stardist.matching import matching  # noqa: E402

from dl4mic.qc import baselines, maps, plots  # noqa: E402
from dl4mic.qc.metrics import (instance_metrics, multiclass_metrics, restoration_metrics,  # noqa: E402
                               segmentation_metrics, ssim_win_size, threshold_sweep)
from dl4mic.qc.residuals import (_lag1_correlation, checkerboard_peak, denoising_figure,  # noqa: E402
                                 noise_sigma, residual_statistics)

RNG = np.random.default_rng(3)
SPACING = (0.29, 0.26, 0.26)  # µm (Z, Y, X) of the cells3d stack


def _smooth_volume(shape=(9, 40, 40)):
    return gaussian_filter(RNG.random(shape), 2) * 400 + 50


def _balls(shape, centres, radius):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    lab = np.zeros(shape, np.uint16)
    for i, (cz, cy, cx) in enumerate(centres, 1):
        lab[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2] = i
    return lab


@pytest.fixture(scope="module")
def cells3d_pair(shared_data):
    """The real test pair (low, high), cropped to 16 x 64 x 64 to stay fast."""
    import tifffile

    d = shared_data / "care3d_cells3d_semisynthetic" / "test"
    crop = np.s_[22:38, 32:96, 32:96]
    low, high = (tifffile.imread(d / k / "q_r1c1.tif") for k in ("low", "high"))
    assert low.shape == high.shape == (60, 128, 128) and high.dtype == np.uint16
    return low[crop].astype(np.float64), high[crop].astype(np.float64)


# --- metrics -----------------------------------------------------------------------------------

def test_ssim_window_rule():
    assert ssim_win_size((40, 40)) == 7 and ssim_win_size((9, 40, 40)) == 7
    assert ssim_win_size((6, 40, 40)) == 5 and ssim_win_size((5, 40, 40)) == 5
    assert ssim_win_size((4, 40, 40)) == 3 and ssim_win_size((3, 40, 40)) == 3
    assert ssim_win_size((2, 40, 40)) is None and ssim_win_size((1, 40, 40)) is None


@pytest.mark.parametrize("planes", [9, 5, 2])
def test_restoration_metrics_on_volumes(planes):
    clean = _smooth_volume((planes, 40, 40))
    perfect = restoration_metrics(clean, clean, 1000.0)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["psnr"] == math.inf and perfect["nrmse"] == 0
    scores = [restoration_metrics(clean + RNG.normal(0, s, clean.shape), clean, 1000.0) for s in (5, 20, 60)]
    assert scores[0]["ssim"] > scores[1]["ssim"] > scores[2]["ssim"]
    assert scores[0]["psnr"] > scores[1]["psnr"] > scores[2]["psnr"]
    assert scores[0]["nrmse"] < scores[1]["nrmse"] < scores[2]["nrmse"]
    noisy = clean + RNG.normal(0, 20, clean.shape)
    got = restoration_metrics(noisy, clean, 1000.0)["ssim"]
    win = ssim_win_size(clean.shape)
    ref = (structural_similarity(clean, noisy, data_range=1000.0, win_size=win) if win else
           np.mean([structural_similarity(c, n, data_range=1000.0) for c, n in zip(clean, noisy)]))
    assert got == pytest.approx(ref)
    m = maps.ssim_map(noisy, clean, 1000.0)
    assert m.shape == clean.shape and m.dtype == np.float32
    if win:  # the volume's SSIM is the map's mean without the (win // 2) border
        pad = win // 2
        assert float(m[pad:-pad, pad:-pad, pad:-pad].mean()) == pytest.approx(got, rel=1e-5)
    else:  # per-plane maps, each averaged without its 3-pixel border
        assert float(np.mean([p[3:-3, 3:-3].mean() for p in m])) == pytest.approx(got, rel=1e-5)


def test_segmentation_metrics_and_sweep_are_nd():
    prob = RNG.random((9, 20, 20))
    mask = prob + RNG.normal(0, 0.3, prob.shape) > 0.6
    assert segmentation_metrics(prob > 0.5, mask) == segmentation_metrics((prob > 0.5).ravel(), mask.ravel())
    assert threshold_sweep(prob, mask, [0.3, 0.5]) == threshold_sweep(prob.ravel(), mask.ravel(), [0.3, 0.5])
    codes = maps.error_codes(prob > 0.5, mask)
    assert codes.shape == prob.shape
    assert (codes == maps.TP).sum() == segmentation_metrics(prob > 0.5, mask)["tp"]
    np.testing.assert_allclose(maps.rse_map(prob, mask), np.abs(prob - mask), rtol=1e-6)


def test_instance_metrics_and_error_codes_on_3d_labels():
    shape = (12, 40, 40)
    true = _balls(shape, [(6, 10, 10), (6, 28, 28)], 5)
    pred = _balls(shape, [(6, 11, 10), (6, 10, 30)], 5)  # one near-exact match, one spurious, one missed
    at = instance_metrics(true, pred)["at_0.5"]
    ref = matching(true, pred, thresh=0.5)
    assert (at["tp"], at["fp"], at["fn"]) == (ref.tp, ref.fp, ref.fn) == (1, 1, 1)
    codes = maps.instance_error_codes(true, pred)
    assert codes.shape == shape
    assert codes[6, 10, 10] == maps.TP and codes[6, 28, 28] == maps.FN and codes[6, 10, 33] == maps.FP


def test_multiclass_metrics_on_volumes_match_per_class_binary():
    true = RNG.integers(0, 4, (5, 16, 16))
    pred = np.where(RNG.random(true.shape) < 0.8, true, RNG.integers(0, 4, true.shape))
    got = multiclass_metrics(pred, true, 4)
    for k in (1, 2, 3):
        ref = segmentation_metrics(pred == k, true == k)
        assert got[f"iou_c{k}"] == pytest.approx(ref["iou"]) and got[f"dice_c{k}"] == pytest.approx(ref["dice"])
    assert got["iou"] == pytest.approx(np.mean([got[f"iou_c{k}"] for k in (1, 2, 3)]))
    assert multiclass_metrics(true, true, 4)["dice"] == 1.0


# --- baselines ---------------------------------------------------------------------------------

def test_gaussian_takes_per_axis_sigma_and_spacing():
    vol = RNG.random((9, 20, 20))
    np.testing.assert_allclose(baselines.gaussian(vol, (0.5, 1.0, 1.0)), gaussian_filter(vol, (0.5, 1.0, 1.0)))
    np.testing.assert_allclose(baselines.gaussian(vol, 1.0), gaussian_filter(vol, 1.0))
    with pytest.raises(ValueError):
        baselines.gaussian(vol, (1.0, 1.0))
    # 1 px along the finest axis, fewer pixels along the coarser Z: the same physical width on every axis
    sz, sy, sx = baselines.anisotropic_sigma(1.0, (2.0, 0.5, 0.5))
    assert (sz, sy, sx) == pytest.approx((0.25, 1.0, 1.0))
    assert baselines.anisotropic_sigma(2.0, SPACING) == pytest.approx((2 * 0.26 / 0.29, 2.0, 2.0))
    with pytest.raises(ValueError):
        baselines.anisotropic_sigma(1.0, (0.0, 1.0, 1.0))


def test_gaussian_3d_baseline_beats_the_raw_input_on_real_stack(cells3d_pair):
    low, high = cells3d_pair
    # source and target are in different units: baselines are affine-fitted as `dl4mic qc` does for them
    sigma, scores = baselines.choose_sigma([low], [high], 65535.0, fit=True, spacing=SPACING)
    best = max(scores, key=scores.get)
    assert len(sigma) == 3 and sigma == pytest.approx(baselines.anisotropic_sigma(best, SPACING))
    b = baselines.restoration_baselines(low, high, sigma, fit=True)
    fitted = {k: restoration_metrics(v, high, 65535.0) for k, v in b.items()}
    assert fitted["gaussian"]["ssim"] > fitted["input"]["ssim"] + 0.1
    assert fitted["gaussian"]["psnr"] > fitted["input"]["psnr"]

    def norm(a):  # and after 1-99.8 percentile normalisation of each (as CSBDeep compares them)
        lo, hi = np.percentile(a, (1, 99.8))
        return (a - lo) / (hi - lo)

    raw = restoration_metrics(norm(low), norm(high), 1.0)
    smooth = restoration_metrics(norm(baselines.gaussian(low, sigma)), norm(high), 1.0)
    assert smooth["ssim"] > raw["ssim"] and smooth["psnr"] > raw["psnr"]


def test_otsu_on_a_volume_finds_two_3d_objects():
    shape = (9, 40, 40)
    truth = _balls(shape, [(4, 12, 12), (4, 27, 27)], 4)
    # blurred edges as in a microscope: two flat levels would leave Otsu's criterion flat across the gap
    img = gaussian_filter(np.where(truth > 0, 180.0, 0.0), 1) + 20 + np.random.default_rng(0).normal(0, 10, shape)
    mask, t = baselines.otsu_masks(img)
    assert mask.shape == shape and 50 < t < 150  # one threshold for the whole stack
    assert segmentation_metrics(mask, truth > 0)["iou"] > 0.8
    masks, polarity, thresholds = baselines.otsu_baseline([img], [truth > 0], axes="ZYX")
    assert polarity == "bright" and len(thresholds) == 1 and masks[0].shape == shape
    inst = baselines.otsu_instances(img, "bright", axes="ZYX")
    assert inst.shape == shape and inst.max() == 2
    assert instance_metrics(truth, inst)["at_0.5"]["tp"] == 2


def test_overlay_of_a_volume_is_a_stack_of_rgb_planes():
    vol = RNG.random((9, 20, 3))  # narrow enough to pass for RGB without axes
    codes = (RNG.random(vol.shape) * 4).astype(np.uint8)
    rgb = maps.overlay(vol, codes, axes="ZYX")
    assert rgb.shape == (9, 20, 3, 3) and 0 <= rgb.min() and rgb.max() <= 1
    np.testing.assert_allclose(rgb[codes == maps.TP].mean(0) > 0, True)
    assert maps.overlay(RNG.random((9, 40, 40)), np.zeros((9, 40, 40), np.uint8)).shape == (9, 40, 40, 3)


# --- residuals (no ground truth) ---------------------------------------------------------------

def test_residual_statistics_of_a_volume_on_white_noise():
    clean = _smooth_volume((9, 48, 48))
    noise = RNG.normal(0, 10, clean.shape)
    assert abs(_lag1_correlation(noise)) < 0.03
    assert _lag1_correlation(clean) > 0.5
    assert noise_sigma(clean + noise) == pytest.approx(np.mean([noise_sigma(p) for p in clean + noise]))
    assert noise_sigma(noise) == pytest.approx(10, rel=0.1)
    stats = residual_statistics(clean + noise, clean)  # a perfect denoiser removes just the noise
    assert abs(stats["residual_lag1"]) < 0.03 and stats["residual_std"] == pytest.approx(10, rel=0.05)
    assert stats["noise_sigma"] == pytest.approx(10, rel=0.2)
    assert abs(stats["residual_prediction_corr"]) < 0.05
    oversmoothed = residual_statistics(clean + noise, gaussian_filter(clean, 3))
    assert oversmoothed["residual_lag1"] > stats["residual_lag1"] + 0.1
    grid = np.zeros((5, 64, 64))
    grid[:, ::2, ::2] = 1.0
    assert checkerboard_peak(grid + RNG.normal(0, 0.1, grid.shape)) > 10 * checkerboard_peak(clean[:, :48, :48])


# --- figures -----------------------------------------------------------------------------------

def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def _rows(axes):
    return len({ax.get_subplotspec().rowspan.start for ax in axes})  # grid rows (colorbars shift positions)


def test_views():
    img = RNG.random((20, 20))
    (title, view), = plots.views(img)
    assert title == "" and np.array_equal(view, img)
    vol = RNG.random((9, 20, 20))
    (t1, mid), (t2, mip) = plots.views(vol)
    assert "middle Z plane 5/9" == t1 and "max projection along Z" == t2
    np.testing.assert_array_equal(mid, vol[4])
    np.testing.assert_array_equal(mip, vol.max(0))
    np.testing.assert_array_equal(plots.views(vol, projection="min")[1][1], vol.min(0))
    assert len(plots.views(RNG.random((20, 20, 3)), rgb=True)) == 1
    assert plots.views(RNG.random((9, 20, 20, 3)), rgb=True)[1][1].shape == (20, 20, 3)


def test_figures_of_a_volume_have_two_rows(tmp_path):
    from PIL import Image

    clean = _smooth_volume((9, 40, 40))
    noisy = clean + RNG.normal(0, 20, clean.shape)
    pred = gaussian_filter(noisy, 1)
    fig = plots.restoration_figure("vol", noisy, clean, pred, maps.rse_map(pred, clean),
                                   maps.ssim_map(pred, clean, 1000.0), {"ssim": 0.5})
    axes = _image_axes(fig)
    assert len(axes) == 10 and _rows(axes) == 2
    titles = [ax.get_title() for ax in axes]
    assert sum("middle Z plane" in t for t in titles) == 5 and sum("projection along Z" in t for t in titles) == 5
    png = plots.save(fig, tmp_path / "restoration.png")
    assert png.is_file() and Image.open(png).size[1] > Image.open(png).size[0] / 3

    truth = _balls(clean.shape, [(4, 12, 12), (4, 27, 27)], 4) > 0
    prob = gaussian_filter(truth.astype(float), 1)
    codes = maps.error_codes(prob > 0.5, truth)
    fig = plots.segmentation_figure("vol", noisy, truth, prob, maps.overlay(noisy, codes), {"iou": 0.9}, codes=codes)
    axes = _image_axes(fig)
    assert len(axes) == 8 and _rows(axes) == 2
    assert plots.save(fig, tmp_path / "segmentation.png").is_file()
    fig = plots.segmentation_figure("vol", noisy, truth, None, maps.overlay(noisy, codes))  # instance-style
    assert len(_image_axes(fig)) == 6 and _rows(_image_axes(fig)) == 2

    fig = denoising_figure("vol", noisy, pred, residual_statistics(noisy, pred))
    axes = _image_axes(fig)
    assert len(axes) == 4 and all("middle Z plane 5/9" in ax.get_title() for ax in axes)
    assert plots.save(fig, tmp_path / "denoising.png").is_file()


def test_figures_of_an_image_keep_one_row(tmp_path):
    clean = _smooth_volume((1, 40, 40))[0]
    pred = clean + RNG.normal(0, 5, clean.shape)
    fig = plots.restoration_figure("img", pred, clean, pred, maps.rse_map(pred, clean),
                                   maps.ssim_map(pred, clean, 1000.0))
    axes = _image_axes(fig)
    assert len(axes) == 5 and _rows(axes) == 1 and axes[0].get_title() == "input"
    assert tuple(fig.get_size_inches()) == (12, 3.0)
    rgb = RNG.random((40, 40, 3))
    mask = clean > clean.mean()
    fig = plots.segmentation_figure("img", rgb, mask, None, maps.overlay(rgb, maps.error_codes(mask, mask)))
    assert len(_image_axes(fig)) == 3 and _rows(_image_axes(fig)) == 1
    assert plots.save(fig, tmp_path / "seg2d.png").is_file()
