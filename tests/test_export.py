"""bioimage.io / DeepImageJ export: bundles pass `bioimageio test` per weight format and the zoo's
DeepImageJ check (offline), round-trip through `dl4mic predict BUNDLE.zip`, and extraction is safe."""

from __future__ import annotations

import io
import json
import stat
import zipfile

import numpy as np
import pytest
import tifffile
import yaml

import dl4mic
from dl4mic.data.io import read_image
from dl4mic.errors import UserError
from dl4mic.export import bundle as B
from dl4mic.export import package as P
from dl4mic.export.yamlio import load_yaml
from dl4mic.export.dij import DIJ_OPS, check_deepimagej

from helpers import ZOO_ORCID, assert_zoo_ready, cli, write, zoo_profile

TINY = {"steps_per_epoch": 2, "batch_size": 4, "patch_size": 32, "depth": 2, "filters": 8, "val_patches": 8,
        "precision": "float32"}
FORMATS = ("pytorch_state_dict", "torchscript", "onnx")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DL4MIC_CACHE", str(tmp_path_factory.getbasetemp() / "dl4mic-cache"))


@pytest.fixture(scope="module")
def care(tmp_path_factory, samples):
    root = tmp_path_factory.mktemp("care")
    model = dl4mic.train("care2d", source=samples / "train" / "noisy", target=samples / "train" / "clean",
                         model=root / "care", epochs=1, params=TINY, progress="none")
    report = {}
    return model, B.export(model, report=report), report


@pytest.fixture(scope="module")
def isbi(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("isbi")
    src = shared_data / "isbi2012_em_membranes" / "train"
    for name in ["slice_00.tif", "slice_05.tif", "slice_10.tif", "slice_15.tif"]:
        write(root / "images" / name, read_image(src / "images" / name)[128:256, 128:256])
        write(root / "masks" / name, read_image(src / "masks" / name)[128:256, 128:256])
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def unet(tmp_path_factory, isbi):
    model = tmp_path_factory.mktemp("unet") / "unet"
    dl4mic.train("unet2d", source=isbi[0], target=isbi[1], model=model, epochs=1,
                 params={**TINY, "mask_foreground": "zero", "val_split": 0.25}, progress="none")
    dl4mic.qc(model, isbi[0], isbi[1], progress="none")
    report = {}
    return model, dl4mic.export(model, model / "export" / "unet.bioimage.io.zip", report=report), report


@pytest.fixture(scope="module")
def dsb(tmp_path_factory, shared_data):
    """Three 256x256 DSB 2018 nuclei images with their label masks."""
    root = tmp_path_factory.mktemp("dsb")
    src = shared_data / "dsb2018_stage1test_nuclei_gray" / "train"
    names = [n for n in sorted(f.name for f in (src / "images").iterdir())
             if read_image(src / "images" / n).shape == (256, 256)][:3]
    for kind in ("images", "masks"):
        for n in names:
            write(root / kind / n, read_image(src / kind / n))
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def stardist(tmp_path_factory, dsb):
    model = tmp_path_factory.mktemp("stardist") / "sd"
    dl4mic.train("stardist2d", source=dsb[0], target=dsb[1], model=model, epochs=1,
                 params={"depth": 2, "filters": 8, "conv_after_unet": 16, "n_rays": 16, "steps_per_epoch": 2,
                         "batch_size": 2, "patch_size": 64, "val_patches": 4, "precision": "float32",
                         "val_split": 0.34}, progress="none")
    report = {}
    return model, dl4mic.export(model, report=report), report


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return load_yaml(zf.read("rdf.yaml"))


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_bioimageio_test_passes_for_each_weight_format(which, request):
    """The export ran bioimageio.core's model test on the finished zip; every weight format passed."""
    model, path, report = request.getfixturevalue(which)
    assert path.is_file() and path.name.endswith(".bioimage.io.zip") and path.parent == model / "export"
    assert report["bioimageio"] == "passed"
    passed = [name for name, status in report["checks"] if status == "passed"]
    assert all(status == "passed" for _, status in report["checks"])
    for wf in FORMATS:
        assert f"Reproduce test outputs from test inputs ({wf})" in passed, wf
    if which == "unet":  # and an independent run on the written file (ONNX: the fastest engine)
        summary = B.run_bioimageio_test(path, "onnx")
        assert summary.status == "passed", B._first_error(summary)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging leftovers


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_deepimagej_compatibility_offline(which, request):
    """The zoo's DeepImageJ check: one input, supported ops only, ONNX opset <= 18 / IR <= 8, sample input
    equals test input, ONNX weights on the sample without halo reproduce the test output."""
    import onnx

    model, path, _ = request.getfixturevalue(which)
    rdf = _rdf(path)
    assert len(rdf["inputs"]) == 1 and len(rdf["outputs"]) == 1
    ops = [p["id"] for t in rdf["inputs"] for p in t["preprocessing"]]
    ops += [p["id"] for t in rdf["outputs"] for p in t["postprocessing"]]
    assert ops and set(ops) <= set(DIJ_OPS)
    n_out = len(rdf["outputs"][0]["axes"][1]["channel_names"])
    with zipfile.ZipFile(path) as zf:
        proto = onnx.load_model_from_string(zf.read(rdf["weights"]["onnx"]["source"]))
        sample = tifffile.imread(io.BytesIO(zf.read(rdf["inputs"][0]["sample_tensor"]["source"])))
        test_in = np.load(io.BytesIO(zf.read(rdf["inputs"][0]["test_tensor"]["source"])))
    assert proto.ir_version <= 8 and max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 18
    np.testing.assert_array_equal(sample, test_in[0, 0])
    assert np.load(io.BytesIO(zipfile.ZipFile(path).read(rdf["outputs"][0]["test_tensor"]["source"]))).shape[1] == n_out
    result = check_deepimagej(path)
    assert result["max_abs_diff"] <= 1.5e-4
    # DeepImageJ reads plain file names for documentation and covers, and tiles with the declared halo
    assert rdf["documentation"] == "README.md" and rdf["covers"] == ["cover.png"]
    assert rdf["config"]["deepimagej"]["allow_tiling"] is True
    from dl4mic.predict.model import load_model

    m = load_model(model)
    halo, mult = m.geometry.halo[-1], m.geometry.multiple[-1]
    y_axis = rdf["outputs"][0]["axes"][2]
    assert y_axis["halo"] == halo and rdf["inputs"][0]["axes"][2]["size"] == {"min": 2 * halo + mult, "step": mult}


def test_bundle_contents_care(care):
    model, path, _ = care
    rdf = _rdf(path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
    assert {"README.md", "cover.png", "model.onnx", "model_torchscript.pt", "weights.pt", "dl4mic_network.py",
            "test_input.npy", "test_output.npy", "sample_input.tif", "sample_output.tif",
            P.MODEL_YAML, P.TRAINING_LOG} <= names
    assert "# Validation" in readme and "not been through quality control" in readme and "Weigert" in readme
    assert rdf["inputs"][0]["preprocessing"][0]["id"] == "scale_range"
    assert rdf["outputs"][0]["postprocessing"] == []                 # normalised units, said in the README
    assert rdf["config"]["dl4mic"]["output_units"] == "normalised" and "normalised units" in readme
    assert rdf["config"]["bioimageio"]["training"]["training_epochs"] == 1
    assert isinstance(rdf["inputs"][0]["preprocessing"][0]["kwargs"]["eps"], float)
    # 2D bundles keep their 2D form: BCYX axes without calibration, the kwargs 2D U-Nets always had
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "y", "x"]
    assert all("unit" not in a for a in rdf["inputs"][0]["axes"])
    kwargs = rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]
    assert not {"dims", "pool", "softmax"} & set(kwargs) and kwargs["sigmoid"] is False
    assert "Images of any size are processed in tiles: sides are multiples of 4 (min 52)" in readme
    assert rdf["config"]["deepimagej"]["test_information"]["inputs"][0]["size"].endswith(" x 1 x 1")
    assert yaml.safe_load(zipfile.ZipFile(path).read("rdf.yaml"))["inputs"][0]["preprocessing"][0]["kwargs"]["eps"] > 0


def test_bundle_contents_unet_carries_qc(unet):
    model, path, _ = unet
    config = yaml.safe_load((model / "model.yaml").read_text())
    rdf = _rdf(path)
    post = rdf["outputs"][0]["postprocessing"]
    assert post == [{"id": "binarize", "kwargs": {"threshold": config["qc_threshold"]}}]
    with zipfile.ZipFile(path) as zf:
        readme = zf.read("README.md").decode()
        summary = json.loads(zf.read(P.QC_SUMMARY))
    assert "# Validation" in readme and "| model |" in readme and "otsu" in readme
    assert summary["main_metric"] == "iou"
    assert rdf["config"]["dl4mic"]["qc"]["metrics"]["model"]["iou"] == pytest.approx(summary["means"]["iou"])


def test_bundle_contents_stardist(stardist):
    """StarDist's bundle layout: one output with probability + n_rays distances at the input's resolution,
    config.stardist with the model's thresholds, and the DeepImageJ post-processing macro attached and named."""
    model, path, _ = stardist
    config = yaml.safe_load((model / "model.yaml").read_text())
    rdf = _rdf(path)
    out = rdf["outputs"][0]
    assert out["axes"][1]["channel_names"] == ["prob"] + [f"dist_{i}" for i in range(16)]
    assert out["postprocessing"] == [] and rdf["inputs"][0]["preprocessing"][0]["id"] == "scale_range"
    sd = rdf["config"]["stardist"]
    assert sd["thresholds"] == {"prob": pytest.approx(config["prob_thresh"]), "nms": config["nms_thresh"]}
    assert sd["config"]["n_rays"] == 16 and sd["config"]["grid"] == [2, 2] and sd["upsampled_output"] is True
    post = rdf["config"]["deepimagej"]["prediction"]["postprocess"][0]
    assert post == {"spec": "ij.IJ::runMacroFile", "kwargs": sd["postprocessing_macro"]}
    with zipfile.ZipFile(path) as zf:
        macro = zf.read(sd["postprocessing_macro"]).decode()
        test_in = np.load(io.BytesIO(zf.read(rdf["inputs"][0]["test_tensor"]["source"])))
        test_out = np.load(io.BytesIO(zf.read(out["test_tensor"]["source"])))
        readme = zf.read("README.md").decode()
    assert f"probThresh={config['prob_thresh']:.6g};" in macro and "StarDist2DNMS" in macro
    assert test_out.shape == (1, 17) + test_in.shape[2:]
    assert 0 <= test_out[:, 0].min() and test_out[:, 0].max() <= 1       # probability, sigmoid in the graph
    assert sd["postprocessing_macro"] in readme and "Schmidt" in readme


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_round_trip_predict_from_zip_equals_folder(which, request, tmp_path, samples, isbi, dsb):
    model, path, _ = request.getfixturevalue(which)
    inputs = {"care": samples / "test" / "noisy", "unet": isbi[0], "stardist": dsb[0]}[which]
    assert cli("predict", model, "--input", inputs, "--output", tmp_path / "folder") == 0
    assert cli("predict", path, "--input", inputs, "--output", tmp_path / "zip") == 0
    a, b = sorted((tmp_path / "folder").iterdir()), sorted((tmp_path / "zip").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and a
    for pa, pb in zip(a, b):
        if pa.suffix == ".csv":
            assert pa.read_text() == pb.read_text()
        else:
            np.testing.assert_array_equal(tifffile.imread(pa), tifffile.imread(pb))


def test_train_from_bundle(care, tmp_path, samples):
    _, path, _ = care
    out = dl4mic.train("care2d", source=samples / "train" / "noisy", target=samples / "train" / "clean",
                       model=tmp_path / "ft", epochs=1, params=TINY, from_model=path, progress="none")
    assert yaml.safe_load((out / "model.yaml").read_text())["transfer_from"]


def _zip(path, members: dict, links=()):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


@pytest.mark.parametrize("evil", ["../escape.txt", "sub/../../escape.txt", "/tmp/escape-abs.txt", "link"])
def test_zip_slip_refused(evil, tmp_path, tmp_path_factory, monkeypatch, capsys):
    cache = tmp_path_factory.mktemp("slip-cache")
    monkeypatch.setenv("DL4MIC_CACHE", str(cache))
    bad = tmp_path / "in" / "bad.bioimage.io.zip"
    bad.parent.mkdir()
    members = {"rdf.yaml": "type: model\n", P.MODEL_YAML: "network: care2d\n"}
    links = ()
    if evil == "link":
        links = (("link", "/etc/passwd"),)
    else:
        members[evil] = "gotcha"
    _zip(bad, members, links)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(UserError, match="unsafe path|link or special file"):
        P.model_dir_from_bundle(bad)
    assert set(tmp_path.rglob("*")) == before
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "in" / "escape.txt").exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]
    image = write(tmp_path / "img" / "a.tif", np.zeros((64, 64), np.uint8))
    assert cli("predict", bad, "--input", image, "--output", tmp_path / "out") == 2
    assert "refusing" in capsys.readouterr().err


def test_foreign_bundle_refused(tmp_path):
    path = _zip(tmp_path / "foreign.zip", {"rdf.yaml": "type: model\n", "weights.pt": "x"})
    with pytest.raises(UserError, match="not exported by dl4mic"):
        P.model_dir_from_bundle(path)


def test_failed_validation_exits_2_and_writes_nothing(care, tmp_path, monkeypatch, capsys):
    """Weights that do not reproduce the test output: one sentence, exit code 2, no bundle left behind."""
    import torch

    from dl4mic.export import weights as W

    model, _, _ = care
    real = W.save_torchscript

    def corrupt(module, example, path):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.5)
        real(module, example, path)

    monkeypatch.setattr(W, "save_torchscript", corrupt)
    out = tmp_path / "out" / "bad.bioimage.io.zip"
    assert cli("export", model, "--output", out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The exported bundle failed bioimageio.core's model test") and "\n" not in err
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_export_refuses_to_overwrite(care, capsys):
    model, path, _ = care
    before = path.stat().st_mtime_ns
    assert cli("export", model) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_no_local_path_in_any_text_file_of_a_bundle(which, request, tmp_path_factory):
    import os
    from pathlib import Path

    model, path, _ = request.getfixturevalue(which)
    config = yaml.safe_load((Path(model) / "model.yaml").read_text())
    local = {str(Path(model).resolve()), str(Path.home()), os.getcwd(), str(tmp_path_factory.getbasetemp()),
             str(Path(config["data"]["source"]).parent)}
    checked = 0
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith((".yaml", ".md", ".json", ".csv", ".ijm", ".py")):
                text = zf.read(name).decode("utf-8")
                assert not [p for p in local if p in text], (name, [p for p in local if p in text])
                checked += 1
        readme = zf.read("README.md").decode()
        bundled = yaml.safe_load(zf.read(P.MODEL_YAML))
    assert checked >= 4
    # the data folders keep their names
    assert bundled["data"]["source"] == Path(config["data"]["source"]).name
    assert f"Source images: `{Path(config['data']['source']).name}`" in readme


def test_profile_is_saved_once_and_checked(tmp_path, monkeypatch, capsys):
    path = zoo_profile(tmp_path, monkeypatch)
    saved = yaml.safe_load(path.read_text())
    assert saved["authors"][0] == {"name": "Ada Lovelace", "affiliation": "Analytical Engine Lab",
                                   "orcid": ZOO_ORCID}
    assert saved["maintainers"] == [{"name": "Ada Lovelace", "github_user": "adalovelace"}]
    assert saved["data_citations"][0]["doi"] == "10.1038/s41592-019-0612-7"
    assert cli("profile", "set", "--license", "MIT") == 0  # one field changed, the rest kept
    assert yaml.safe_load(path.read_text())["authors"] == saved["authors"]
    capsys.readouterr()
    assert cli("profile", "set", "--author", "Ada; Lab; 0000-0002-1825-0098") == 2
    err = capsys.readouterr().err.strip()
    assert "orcid" in err and "0000-0002-1825-0098" in err and len(err.splitlines()) == 1
    assert cli("profile", "set", "--license", "Free for all") == 2
    assert "not an SPDX licence id" in capsys.readouterr().err
    assert yaml.safe_load(path.read_text())["license"] == "MIT"  # a refused change leaves the file as it was


def test_zoo_refuses_placeholder_authors_and_writes_nothing(care, tmp_path, capsys):
    model, _, _ = care
    out = tmp_path / "zoo" / "care.bioimage.io.zip"
    assert cli("export", model, "--output", out, "--zoo", "--description", "Denoises BPAE cells.") == 2
    err = capsys.readouterr().err
    assert "authors are placeholders" in err and "dl4mic profile set --author" in err
    assert cli("export", model, "--output", out, "--zoo", "--author", "dl4mic user", "--license", "MIT",
               "--description", "x") == 2
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_zoo_bundle_has_real_metadata_readme_and_passes_full_determinism(which, request, tmp_path, monkeypatch):
    model, _, _ = request.getfixturevalue(which)
    assert_zoo_ready(model, tmp_path, monkeypatch)


@pytest.mark.parametrize("which", ["care", "unet", "stardist"])
def test_cover_shows_input_output_and_ground_truth(which, request):
    from PIL import Image

    model, path, _ = request.getfixturevalue(which)
    with zipfile.ZipFile(path) as zf:
        cover = np.asarray(Image.open(io.BytesIO(zf.read("cover.png"))))
        readme = zf.read("README.md").decode()
        side = np.load(io.BytesIO(zf.read("test_input.npy"))).shape[-1]
    assert cover.shape[1] == 3 * side + 2 * 4  # three panels, 4-pixel gaps
    assert "input | output" in readme and "| ground truth." in readme
    truth = cover[:, 2 * side + 8:]
    assert truth.std() > 0  # the ground truth panel holds the target, not a blank
