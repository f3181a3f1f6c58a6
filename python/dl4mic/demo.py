"""`dl4mic demo`: the whole workflow (check-data, train CARE 2D, QC, predict) on bundled real images."""

from __future__ import annotations

import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples" / "fmd_bpae"
DEMO_PARAMS = {"steps_per_epoch": 30, "batch_size": 16, "patch_size": 64, "depth": 2, "filters": 32,
               "learning_rate": 0.0004}
DEMO_EPOCHS = 15


def run_demo(workdir=None, epochs: int | None = None, overwrite: bool = False, progress: str = "auto") -> dict:
    """Run every step on the FMD sample crops and print where each output is; returns those paths."""
    import dl4mic

    from .errors import UserError

    work = Path(workdir or "dl4mic-demo")
    model, predictions = work / "care2d_fmd", work / "predictions"
    if (model.exists() or predictions.exists()) and not overwrite:
        raise UserError(f"{work} already holds a demo; give another --workdir or add --overwrite to replace it.")
    train, test = SAMPLES / "train", SAMPLES / "test"
    t0 = time.time()
    print(f"1/4 check-data: {train}/noisy -> {train}/clean")
    summary = dl4mic.check_data("care2d", train / "noisy", train / "clean")
    print(f"    {len(summary.pairs)} pairs, {summary.source_dtype}, axes {summary.axes}")
    print(f"2/4 train CARE 2D into {model}")
    dl4mic.train("care2d", source=train / "noisy", target=train / "clean", model=model,
                 epochs=epochs or DEMO_EPOCHS, params=DEMO_PARAMS, overwrite=overwrite, progress=progress)
    print(f"3/4 qc on {test}")
    qc = dl4mic.qc(model, test / "noisy", test / "clean", progress=progress)
    print(f"4/4 predict {test}/noisy -> {predictions}")
    written = dl4mic.predict(model, test / "noisy", predictions, overwrite=overwrite, progress=progress)
    scores = qc.get("metrics", {})
    outputs = {
        "model": model, "training log": model / "training" / "log.csv", "training report": model / "training" / "report.pdf",
        "qc metrics": model / "qc" / "metrics.csv", "qc summary": model / "qc" / "summary.json",
        "qc report": model / "qc" / "report.pdf", "predictions": predictions,
    }
    print(f"\nDone in {time.time() - t0:.0f} s.")
    for name, values in scores.items():
        print(f"QC {name:<9} " + ", ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, (int, float))))
    for name, path in outputs.items():
        print(f"  {name:<16} {path}")
    for paths in written:
        for p in paths.values():
            print(f"  {'prediction':<16} {p}")
    return outputs
