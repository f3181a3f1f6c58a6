"""Reference side of the N2V 3D benchmark: CAREamics (PyTorch Lightning) Noise2Void 3D on the same stacks.

Runs in benchmarks/.venv-careamics (made by run.py, shared with the N2V 2D benchmark).
Usage:  python side_careamics.py CONFIG.json
CONFIG names an .npz with `train` (S, Z, Y, X: the raw noisy training stacks, dl4mic's training files),
`val` (n, Pz, Py, Px: the raw voxels of dl4mic's validation patches) and `test/<i>` (raw noisy test stacks).
Writes RESULT.json (per-epoch times from a Lightning callback) and PRED.npz (raw units, float32).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402  benchmarks/common.py


def main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    t_start = time.perf_counter()
    import numpy as np
    import torch

    common.set_torch_threads(cfg["threads"])
    # PyPI's torchvision wheel is built against another torch; on a CPU-only torch its C++ ops do not load
    # and its import fails on the fake registration of `nms`.  Declaring the op first makes the pure Python
    # parts (all CAREamics uses) importable (as in benchmarks/n2v2d/side_careamics.py).
    try:
        torch.library.define("torchvision::nms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:
        pass
    import careamics
    from careamics import CAREamist
    from careamics.config.factories.n2v_factory import create_advanced_n2v_config
    from lightning.pytorch.callbacks import Callback

    t_import = time.perf_counter() - t_start
    p = cfg["params"]
    patch = [int(v) for v in p["patch_size"]]
    data = np.load(cfg["data"])
    train = data["train"].astype(np.float32)
    val = data["val"].astype(np.float32)
    tests = [data[f"test/{i}"].astype(np.float32) for i in range(int(cfg["n_test"]))]

    class EpochTimer(Callback):
        def __init__(self):
            self.rows, self.t0 = [], None

        def on_train_epoch_start(self, trainer, module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):  # after the validation loop of the epoch
            m = trainer.callback_metrics
            get = lambda k: float(m[k]) if k in m else None  # noqa: E731
            self.rows.append({"epoch": trainer.current_epoch + 1, "seconds": time.perf_counter() - self.t0,
                              "loss": get("train_loss_epoch") or get("train_loss"), "val_loss": get("val_loss"),
                              "lr": float(trainer.optimizers[0].param_groups[0]["lr"])})
            print(f"[careamics] epoch {self.rows[-1]['epoch']}: {self.rows[-1]['seconds']:.2f} s "
                  f"loss {self.rows[-1]['loss']} val_loss {self.rows[-1]['val_loss']}", flush=True)

    # 3D from the Z in the axes (conv_dims 3); patch sizes must be powers of 2 (>= 8) and square in YX.
    # The validation patches have the patch size, so CAREamics' fixed random patching takes each whole.
    config = create_advanced_n2v_config(
        experiment_name="dl4mic_bench_3d", data_type="array", axes="SZYX",
        patch_size=patch, batch_size=int(p["batch_size"]),
        num_epochs=int(p["epochs"]), num_steps=int(p["steps_per_epoch"]), n_val_patches=len(val),
        augmentations=None if p["augment"] else [], use_n2v2=p["variant"] == "n2v2",
        roi_size=2 * int(p["neighborhood_radius"]) + 1, masked_pixel_percentage=float(p["masked_pixel_percentage"]),
        num_workers=0, model_params={"depth": int(p["depth"]), "num_channels_init": int(p["filters"])},
        optimizer="Adam", optimizer_params={"lr": float(p["learning_rate"])},
        lr_scheduler="ReduceLROnPlateau",
        lr_scheduler_params={"factor": float(p["lr_factor"]), "patience": int(p["lr_patience"])},
        trainer_params={"accelerator": "cpu", "devices": 1, "enable_model_summary": False},
        seed=int(p["seed"]) + 1,  # CAREamics needs a seed > 0
    )
    timer = EpochTimer()
    work = Path(cfg["workdir"]) / "careamics"
    careamist = CAREamist(config, work_dir=work, callbacks=[timer], enable_progress_bar=False)
    t0 = time.perf_counter()
    careamist.train(train_data=train, val_data=val)  # both SZYX
    train_s = time.perf_counter() - t0
    n_params = common.count_parameters(careamist.model)

    preds = {}
    t0 = time.perf_counter()
    m = 2 ** int(p["depth"])
    for i, img in enumerate(tests):
        # whole-stack prediction; sides padded (mirrored) to a multiple of 2**depth as CAREamics requires
        pads = [(0, (-n) % m) for n in img.shape]
        padded = np.pad(img, pads, mode="symmetric")
        out, _ = careamist.predict(padded, axes="ZYX", data_type="array", batch_size=1)  # its N2V default: last
        out = np.asarray(out[0] if isinstance(out, list) else out, np.float32)
        preds[f"test_pred/{i}"] = out.reshape(padded.shape)[tuple(slice(0, n) for n in img.shape)]
    predict_s = time.perf_counter() - t0
    np.savez(cfg["pred"], **preds)
    versions = {"careamics": careamics.__version__, "torch": torch.__version__, "numpy": np.__version__}
    try:
        import lightning

        versions["lightning"] = lightning.__version__
    except Exception:  # pragma: no cover
        pass
    result = {
        "side": "careamics", "versions": versions,
        "threads": common.torch_thread_counts(),
        "n_params": n_params, "import_s": t_import, "train_s": train_s, "predict_s": predict_s,
        "epochs": timer.rows, "prediction_weights": "last (CAREamics' default for N2V)",
    }
    common.write_side_result(cfg, result, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
