"""dl4mic's side of the 3D acceptance figures (issue: the N-D spine), on the shared real stacks:

* U-Net 3D on BBBC050 `train` -> `test` (binary masks): foreground IoU/Dice beside Otsu per stack and
  beside U-Net 2D trained on the training stacks' planes and applied plane by plane, same steps, batch
  and patch area;
* CARE 3D on the semi-synthetic cells3d pairs: PSNR/SSIM beside the degraded input and a 3D Gaussian;
* Noise2Void 3D: QC without ground truth on the real noisy stacks (its PSNR against the clean
  semi-synthetic stack needs an affine fit of units, which benchmarks/n2v3d makes for every row).

    python benchmarks/quality3d/run.py [--epochs 20 --steps 40] [--out results/NAME.json]

Every run uses dl4mic's public API (train, qc, predict) exactly as a user would. The reference sides
(csbdeep CARE 3D, CAREamics N2V 3D) are separate drivers."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from common import machine_info  # noqa: E402

DATA = BENCH.parent.parent / "shared" / "data"


def _qc(model, source, target, out):
    return __import__("dl4mic").qc(model, source, target, output=out, progress="none")


def unet3d_vs_2d(work: Path, epochs: int, steps: int) -> dict:
    import numpy as np
    import tifffile

    import dl4mic
    from dl4mic.data.io import read_image

    data = DATA / "bbbc050_mouse_embryo_nuclei_3d"
    t0 = time.time()
    m3 = dl4mic.train("unet3d", source=data / "train" / "images", target=data / "train" / "masks_binary",
                      model=work / "unet3d", epochs=epochs, progress="none",
                      params={"steps_per_epoch": steps, "batch_size": 4, "patch_size": [16, 64, 64]})
    s3 = time.time() - t0
    q3 = _qc(m3, data / "test" / "images", data / "test" / "masks_binary", work / "qc3d")
    # U-Net 2D on the same stacks' planes (every plane a file), the same steps and 16x the 3D patch's area
    planes = work / "planes"
    for kind in ("images", "masks_binary"):
        (planes / kind).mkdir(parents=True, exist_ok=True)
        for f in sorted((data / "train" / kind).iterdir()):
            for z, plane in enumerate(read_image(f)):
                tifffile.imwrite(planes / kind / f"{f.stem}_z{z:02d}.tif", plane)
    t0 = time.time()
    m2 = dl4mic.train("unet2d", source=planes / "images", target=planes / "masks_binary", model=work / "unet2d",
                      epochs=epochs, progress="none",
                      params={"steps_per_epoch": steps, "batch_size": 16, "patch_size": 64, "depth": 3})
    s2 = time.time() - t0
    # unet2d over the test stacks, plane by plane (dl4mic predict does that for a 2D model), scored in 3D
    pred = dl4mic.predict(m2, data / "test" / "images", work / "pred2d", progress="none")
    from dl4mic.qc.metrics import segmentation_metrics

    rows = []
    for paths in pred:
        mask = tifffile.imread(paths["mask"]) > 0
        truth = read_image(data / "test" / "masks_binary" / Path(paths["mask"]).name.replace("_mask", "")) > 0
        rows.append(segmentation_metrics(mask, truth))
    per_plane = {k: float(np.mean([r[k] for r in rows])) for k in ("iou", "dice")}
    return {"unet3d": q3["metrics"]["model"], "otsu_3d": q3["metrics"]["otsu"], "unet2d_per_plane": per_plane,
            "unet3d_train_s": round(s3, 1), "unet2d_train_s": round(s2, 1), "qc_threshold_3d": q3["qc_threshold"]}


def care3d_and_n2v3d(work: Path, epochs: int, steps: int) -> dict:
    import dl4mic

    data = DATA / "care3d_cells3d_semisynthetic"
    out = {}
    t0 = time.time()
    care = dl4mic.train("care3d", source=data / "train" / "low", target=data / "train" / "high",
                        model=work / "care3d", epochs=epochs, progress="none",
                        params={"steps_per_epoch": steps, "batch_size": 16, "patch_size": [16, 64, 64]})
    out["care3d_train_s"] = round(time.time() - t0, 1)
    out["care3d"] = _qc(care, data / "test" / "low", data / "test" / "high", work / "qc_care")["metrics"]
    real = DATA / "n2v3d_real_noisy_stacks"
    n2v_real = dl4mic.train("n2v3d", source=real / "train" / "images", model=work / "n2v3d_real",
                            epochs=max(1, epochs // 4), progress="none", params={"steps_per_epoch": steps})
    out["n2v3d_real_no_ground_truth"] = _qc(n2v_real, real / "test" / "images", None, work / "qc_real")["metrics"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--only", choices=["unet", "restoration"], help="run one part")
    ap.add_argument("--out", type=Path, help="result JSON (default results/DATE-e{epochs}s{steps}.json)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dl4mic-quality3d-"))
    result = {"epochs": args.epochs, "steps": args.steps, "machine": machine_info()}
    try:
        if args.only in (None, "unet"):
            result["bbbc050"] = unet3d_vs_2d(work, args.epochs, args.steps)
            print(json.dumps(result["bbbc050"], indent=1), flush=True)
        if args.only in (None, "restoration"):
            result["cells3d_semisynthetic"] = care3d_and_n2v3d(work, args.epochs, args.steps)
            print(json.dumps(result["cells3d_semisynthetic"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or BENCH / "quality3d" / "results" / f"{time.strftime('%Y-%m-%d')}-e{args.epochs}s{args.steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
