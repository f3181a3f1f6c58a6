"""Every menu script in fiji-scripts/: its #@ header parses and its code is Jython 2.7; the checks that need
to reach into the JVM from CPython (JPype): every dialog answer of Train, binary masks and overwrite of the
training-masks script, the status bar, Fiji's Python (API) mode, install. The scripts themselves run in real
Jython in test_jython*.py."""

import ast
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dl4mic.fiji.jylib import JYLIB_DIR, MODULES
from dl4mic.fiji.install import install_scripts, specs_for_fiji, with_network_choices
from dl4mic.fiji.scripting import parse_header, run_script
from dl4mic.specs import spec_names

from .conftest import SCRIPTS

ALL_SCRIPTS = sorted(SCRIPTS.glob("*.py"))
EXPECTED = {"Train.py", "QC.py", "Predict.py", "Export.py", "Labels_to_ROI_Manager.py", "ROI_zip_to_ROI_Manager.py",
            "Boxes_CSV_to_ROI_Manager.py", "ROI_Manager_to_training_masks.py"}


def run(name, ij, **values):
    return run_script(SCRIPTS / name, values, ij)


@contextmanager
def dialog_answers(options):
    """Answer ImageJ GenericDialogs as a macro would (Macro options on a 'Run$_' thread)."""
    from ij import Macro
    from java.lang import Thread

    thread = Thread.currentThread()
    old = thread.getName()
    thread.setName("Run$_dl4mic_test")
    Macro.setOptions(thread, options)
    try:
        yield
    finally:
        Macro.setOptions(thread, None)
        thread.setName(old)


def test_the_menu_has_every_script():
    assert {p.name for p in ALL_SCRIPTS} == EXPECTED


PY3_ONLY = (ast.JoinedStr, ast.AnnAssign, ast.NamedExpr, ast.AsyncFunctionDef, ast.Nonlocal, ast.Starred)


def assert_jython_compatible(path):
    """Fiji runs .py scripts (and jars/Lib modules) as Jython 2.7: no f-strings, annotations, walrus, ..."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        assert not isinstance(node, PY3_ONLY), f"{path.name}:{node.lineno}: {type(node).__name__} is not Jython 2.7"
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None and not any(a.annotation for a in node.args.args), f"{path.name}: annotation"
            assert not node.args.kwonlyargs, f"{path.name}: keyword-only arguments"


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: p.name)
def test_headers_parse_and_the_code_is_python27_syntax(path):
    params = parse_header(path.read_text())
    assert params and all(p.attrs.get("label") for p in params)
    assert all(p.attrs.get("description") for p in params)  # Fiji shows it as the field's tooltip
    assert_jython_compatible(path)


def test_shared_modules_are_python27_syntax():
    for name in MODULES:
        assert_jython_compatible(JYLIB_DIR / name)


def test_train_lists_every_network():
    train = parse_header((SCRIPTS / "Train.py").read_text())
    assert train[0].name == "network" and train[0].choices == spec_names()
    rewritten = parse_header(with_network_choices((SCRIPTS / "Train.py").read_text().replace('"unet2d"', '"x"')))
    assert rewritten[0].choices == spec_names()


def test_roi_manager_to_training_masks_passes_check_data(ij, rm, labels, tmp_path):
    import dl4mic

    source, target = tmp_path / "source", tmp_path / "target"
    raw = (labels > 0).astype(np.float32) * 100 + np.random.default_rng(0).normal(10, 2, labels.shape).astype(np.float32)
    imp = ij.image(raw, "cells.tif")
    imp.show()
    ij.show_rois(ij.labels_to_rois(labels), imp)
    run("ROI_Manager_to_training_masks.py", ij, image=imp, target_dir=target, kind="binary mask (U-Net)",
        source_dir=source, overwrite=False)
    mask = tifffile.imread(target / "cells.tif")
    assert mask.dtype == np.uint8 and np.array_equal(mask, np.where(labels > 0, 255, 0))
    assert np.allclose(tifffile.imread(source / "cells.tif"), raw)
    assert str(imp.getTitle()) == "cells.tif"  # the user's image is not renamed by saving
    summary = dl4mic.check_data("unet2d", source, target)
    assert summary.as_dict()["n_pairs"] == 1
    # without 'overwrite' an existing mask is kept, and the error names the fix
    rm.reset()
    ij.show_rois(ij.labels_to_rois(labels[:, ::-1].copy()), imp)
    run("ROI_Manager_to_training_masks.py", ij, image=imp, target_dir=target, kind="label image (instances)",
        overwrite=False)
    assert np.array_equal(tifffile.imread(target / "cells.tif"), mask)
    run("ROI_Manager_to_training_masks.py", ij, image=imp, target_dir=target, kind="label image (instances)",
        overwrite=True)
    assert np.array_equal(tifffile.imread(target / "cells.tif"), labels[:, ::-1])


def test_train_asks_the_networks_basic_parameters(ij, rm, fake_dl4mic, tmp_path):
    options = "epochs=2 steps_per_epoch=3 batch_size=4 patch_size=32 learning_rate=0.001 val_split=0.2 augment"
    with dialog_answers(options + " mask_foreground=zero"):
        run("Train.py", ij, network="unet2d", source=tmp_path / "s", target=tmp_path / "t", model=tmp_path / "m",
            overwrite=True)
    (argv,) = fake_dl4mic()
    assert argv[:2] == ["train", "unet2d"] and argv[-2:] == ["--progress", "json"]
    params = dict(a.split("=") for a in argv[argv.index("--param"):] if "=" in a)
    assert params == {"epochs": "2", "steps_per_epoch": "3", "batch_size": "4", "patch_size": "32",
                      "learning_rate": "0.001", "val_split": "0.2", "augment": "true", "mask_foreground": "zero",
                      "max_minutes": "0.0", "n_classes": "1"}
    assert {"--overwrite", "--model", "--source", "--target"} <= set(argv)
    assert set(params) == {p["name"] for p in specs_for_fiji()["unet2d"]["parameters"]}


def test_status_bar_reads_every_progress_event(ij, monkeypatch):
    import dl4mic_run

    shown = []

    class FakeIJ:
        showStatus = staticmethod(shown.append)
        showProgress = staticmethod(lambda *args: None)

    monkeypatch.setattr(dl4mic_run, "IJ", FakeIJ)
    status = dl4mic_run.StatusBar("dl4mic qc")
    for event in ({"event": "start", "total": 2, "desc": "QC m"}, {"event": "qc_image", "done": 1, "total": 2,
                  "image": "a.tif"}, {"event": "image", "file": "/x/b.tif"},
                  {"event": "epoch", "epoch": 3, "epochs": 10, "loss": 0.5, "val_loss": None}, {"event": "done"}):
        status(event)
    assert shown == ["dl4mic qc: QC m", "dl4mic qc: 1/2 a.tif", "dl4mic qc: 2/2 b.tif",
                     "dl4mic qc: epoch 3/10  loss 0.5", "dl4mic qc: done"]


def test_api_mode_calls_dl4mic_in_process(ij, rm, monkeypatch, tmp_path):
    """Fiji's Python mode: the dl4mic API with a progress callback; Esc (callback -> False) stops it."""
    import dl4mic
    from ij import IJ
    from java.awt.event import KeyEvent

    calls = []

    def fake_export(model, output=None, **kwargs):
        calls.append(("export", model, output, kwargs))

    def fake_predict(model, input, output, rois=False, progress="auto", callback=None):
        calls.append(("predict", model, input, output, rois, progress))
        callback({"event": "start", "total": 2, "desc": "predict"})
        IJ.setKeyDown(KeyEvent.VK_ESCAPE)
        if callback({"event": "image", "file": "a.tif"}) is False:
            raise type("Cancelled", (Exception,), {})()

    monkeypatch.setenv("DL4MIC_FIJI_MODE", "auto")
    monkeypatch.setattr(dl4mic, "export", fake_export)
    monkeypatch.setattr(dl4mic, "predict", fake_predict)
    run("Export.py", ij, model=tmp_path / "m", bundle=None, authors="Ada Lovelace; Lab | Charles Babbage")
    run("Predict.py", ij, model=tmp_path / "m", input=tmp_path / "a.tif", output=tmp_path / "o", rois=True, show=True)
    assert calls == [("export", str(tmp_path / "m"), None, {"authors": ["Ada Lovelace; Lab", "Charles Babbage"],
                                                              "zoo": False}),
                     ("predict", str(tmp_path / "m"), str(tmp_path / "a.tif"), str(tmp_path / "o"), True, "none")]


def test_install_puts_scripts_and_modules_into_fiji(tmp_path):
    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    install_scripts(fiji, python="/opt/env/bin/python")
    menu = fiji / "scripts" / "Plugins" / "dl4mic"
    assert {p.name for p in menu.iterdir()} == EXPECTED
    lib = fiji / "jars" / "Lib"
    assert json.loads((lib / "dl4mic-fiji.json").read_text())["command"] == ["/opt/env/bin/python", "-m", "dl4mic"]
    assert json.loads((lib / "dl4mic-specs.json").read_text()) == json.loads(json.dumps(specs_for_fiji()))
    assert {"dl4mic_ij.py", "dl4mic_run.py", "dl4mic_boxes.py"} <= {p.name for p in lib.iterdir()}


def test_every_script_is_run_in_jython_by_a_test():
    here = Path(__file__).parent
    source = "".join(p.read_text() for p in here.glob("test_*jython*.py"))
    ran = {name for name in EXPECTED if f'script("{name}"' in source}
    assert ran == EXPECTED
