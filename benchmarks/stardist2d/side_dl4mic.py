"""dl4mic side of the StarDist 2D benchmark: `dl4mic.train("stardist2d", ...)`, then the test images
predicted exactly as `dl4mic predict` does (tiled, NMS with the thresholds optimised on validation).

Runs as its own process (run.py starts it with the project's Python) so that its peak memory is
measured on its own.  Usage:  python side_dl4mic.py CONFIG.json
Writes RESULT.json (per-epoch log from MODEL/training/log.csv, wall times, thresholds) and PRED.npz
with the uint16 label image of every test image.
"""

from __future__ import annotations

import csv
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
    import yaml

    import dl4mic
    from dl4mic.data.io import read_image
    from dl4mic.predict.model import load_model

    t_import = time.perf_counter() - t_start
    model_dir = Path(cfg["model"])
    t0 = time.perf_counter()
    dl4mic.train("stardist2d", source=cfg["source"], target=cfg["target"], model=model_dir,
                 epochs=int(cfg["params"]["epochs"]), params=cfg["params"], progress="none", overwrite=True)
    train_s = time.perf_counter() - t0
    config = yaml.safe_load((model_dir / "model.yaml").read_text())

    with open(model_dir / "training" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [{"epoch": int(r["epoch"]), "seconds": float(r["seconds"]), "loss": float(r["loss"]),
               "val_loss": float(r["val_loss"]) if r.get("val_loss") not in (None, "") else None,
               "lr": float(r["lr"])} for r in rows]
    loop_s = sum(e["seconds"] for e in epochs)

    model = load_model(model_dir)
    n_params = int(sum(p.numel() for p in model.module.parameters()))
    preds = {}
    t0 = time.perf_counter()
    for i, name in enumerate(cfg["test_files"]):
        img = read_image(Path(cfg["test_source"]) / name)
        preds[f"test_pred/{i}"] = np.asarray(model.predict(img)["labels"])
    predict_s = time.perf_counter() - t0
    np.savez_compressed(cfg["pred"], **preds)

    result = {
        "side": "dl4mic",
        "versions": {"dl4mic": dl4mic.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "n_params": n_params,
        "import_s": t_import,
        "train_s": train_s,
        "threshold_s": max(0.0, train_s - loop_s),  # threshold optimisation, reports and set-up
        "predict_s": predict_s,
        "thresholds": {"prob": config.get("prob_thresh"), "nms": config.get("nms_thresh"),
                       "details": config.get("thresholds")},
        "precision": config.get("environment", {}).get("precision"),
        "epochs": epochs,
        "process_s": time.perf_counter() - t_start,
    }
    Path(cfg["result"]).write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
