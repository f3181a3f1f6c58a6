"""U-Net 2D semantic segmentation (Ronneberger 2015; Falk et al., Nat Methods 2019): BCE + soft Dice."""

from __future__ import annotations

import numpy as np
import torch

from ..data.normalize import scale
from .base import Network
from .unet import UNet


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    return 1 - (2 * inter + eps) / (prob.sum() + target.sum() + eps)


def foreground(mask: np.ndarray, mask_foreground: str) -> np.ndarray:
    """The class to segment in a stored mask: non-zero pixels, or zero pixels (e.g. ISBI membranes)."""
    return (mask == 0) if mask_foreground == "zero" else (mask != 0)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def label_components(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a binary mask by 4-connected components (uint16, ImageJ-readable)."""
    from skimage.measure import label

    return label(mask, connectivity=1).astype(np.uint16)


def mask_threshold(config: dict) -> float:
    """The threshold masks use: the QC's best (as the exported bundle binarizes) once QC ran, else training's."""
    return float(config.get("qc_threshold", config.get("threshold", 0.5)))


class UNet2D(Network):
    name = "unet2d"

    def build(self, params):
        return UNet(1, 1, depth=params["depth"], filters=params["filters"], kernel_size=params["kernel_size"],
                    batch_norm=params["batch_norm"], residual=False)

    def prepare(self, normalizer, params):
        def prepare(source, target):
            y = foreground(target, params["mask_foreground"]).astype(np.float32) if target is not None else None
            return scale(source, *normalizer.source_range(source)), y

        return prepare

    def loss(self, params):
        bce, w = torch.nn.BCEWithLogitsLoss(), float(params["dice_weight"])

        def loss(logits, target):
            value = bce(logits, target)
            return value + w * soft_dice_loss(logits, target) if w > 0 else value

        return loss

    def finalize(self, predict_batches, val_batches, params, val_images=None):
        """Choose the probability threshold with the best pooled IoU on the validation patches."""
        if not val_batches:
            return {"threshold": float(params["threshold"])}
        from ..qc.metrics import best_threshold, threshold_sweep_many

        probs = [sigmoid(logits) for logits in predict_batches(val_batches)]
        rows = threshold_sweep_many(probs, [y > 0.5 for _, y in val_batches])
        best = best_threshold(rows, key="iou")
        val_iou = next(r["iou"] for r in rows if r["threshold"] == best)
        return {"threshold": float(best), "val_iou": float(val_iou)}

    def outputs(self, raw_output, image, normalizer, source_range, config):
        prob = sigmoid(raw_output[0])
        mask = prob >= mask_threshold(config)
        return {"probability": prob, "mask": (mask * 255).astype(np.uint8), "labels": label_components(mask)}
