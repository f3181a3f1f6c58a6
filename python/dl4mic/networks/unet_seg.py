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


def label_components(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a binary mask by 4-connected components (uint16, ImageJ-readable)."""
    from skimage.measure import label

    return label(mask, connectivity=1).astype(np.uint16)


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

    def finalize(self, predict_batches, val_batches, params):
        """Choose the probability threshold with the best pooled IoU on the validation patches."""
        if not val_batches:
            return {"threshold": float(params["threshold"])}
        probs, truths = [], []
        for (x, y), logits in zip(val_batches, predict_batches(val_batches)):
            probs.append(1 / (1 + np.exp(-logits.astype(np.float64))))
            truths.append(y > 0.5)
        prob, truth = np.concatenate([p.ravel() for p in probs]), np.concatenate([t.ravel() for t in truths])
        best, best_iou = float(params["threshold"]), -1.0
        for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
            pred = prob >= t
            union = np.count_nonzero(pred | truth)
            iou = np.count_nonzero(pred & truth) / union if union else 1.0
            if iou > best_iou:
                best, best_iou = float(t), iou
        return {"threshold": best, "val_iou": float(best_iou)}

    def outputs(self, raw_output, image, normalizer, source_range, config):
        prob = (1 / (1 + np.exp(-raw_output[0].astype(np.float64)))).astype(np.float32)
        mask = prob >= float(config.get("threshold", 0.5))
        return {"probability": prob, "mask": (mask * 255).astype(np.uint8), "labels": label_components(mask)}
