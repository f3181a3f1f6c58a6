"""U-Net semantic segmentation in 2D and 3D (Ronneberger 2015; Çiçek et al., MICCAI 2016; Falk et al.,
Nat Methods 2019): binary masks with BCE + soft Dice, or multi-class label masks (0 = background,
1..K = classes, as ZeroCostDL4Mic's U-Net multilabel notebook) with softmax cross-entropy + soft Dice."""

from __future__ import annotations

import numpy as np
import torch

from ..data.normalize import scale
from .base import Network, Outputs
from .unet import UNet


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    return 1 - (2 * inter + eps) / (prob.sum() + target.sum() + eps)


def multiclass_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes; `target` holds class indices (B, 1, ...)."""
    prob = torch.softmax(logits, dim=1)
    onehot = torch.zeros_like(prob).scatter_(1, target.long(), 1.0)
    dims = (0,) + tuple(range(2, prob.ndim))
    inter, total = (prob * onehot).sum(dims), prob.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + eps) / (total + eps))[1:].mean()


def foreground(mask: np.ndarray, mask_foreground: str) -> np.ndarray:
    """The class to segment in a stored mask: non-zero pixels, or zero pixels (e.g. ISBI membranes)."""
    return (mask == 0) if mask_foreground == "zero" else (mask != 0)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the first (channel) axis."""
    z = logits.astype(np.float64) - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def label_components(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a binary mask by face-connected components (uint16, ImageJ-readable)."""
    from skimage.measure import label

    return label(mask, connectivity=1).astype(np.uint16)


def mask_threshold(config: dict) -> float:
    """The threshold masks use: the QC's best (as the exported bundle binarizes) once QC ran, else training's."""
    return float(config.get("qc_threshold", config.get("threshold", 0.5)))


def n_classes(params: dict) -> int:
    """Foreground classes: 1 for binary masks (a sigmoid), K for label masks 0..K (a softmax over K + 1)."""
    return int(params.get("n_classes", 1))


class UNet2D(Network):
    name = "unet2d"

    def build(self, params):
        k = n_classes(params)
        return UNet(1, 1 if k == 1 else k + 1, depth=params["depth"], filters=params["filters"],
                    kernel_size=params["kernel_size"], batch_norm=params["batch_norm"], residual=False,
                    dims=self.dims, pool=self.pool(params))

    def qc_task(self):
        return "segmentation"

    def initial_config(self, params):
        return {"threshold": float(params["threshold"])} if n_classes(params) == 1 else {}

    def prepare(self, normalizer, params):
        k = n_classes(params)

        def prepare(source, target):
            y = None
            if target is not None:
                y = (foreground(target, params["mask_foreground"]).astype(np.float32) if k == 1
                     else np.asarray(target, np.float32))
            return scale(source, *normalizer.source_range(source)), y

        return prepare

    def loss(self, params):
        w = float(params["dice_weight"])
        if n_classes(params) > 1:
            def loss(logits, target):
                value = torch.nn.functional.cross_entropy(logits, target[:, 0].long())
                return value + w * multiclass_dice_loss(logits, target) if w > 0 else value

            return loss
        bce = torch.nn.BCEWithLogitsLoss()

        def loss(logits, target):
            value = bce(logits, target)
            return value + w * soft_dice_loss(logits, target) if w > 0 else value

        return loss

    def finalize(self, predict_batches, val_batches, params, val_images=None):
        """Choose the probability threshold with the best pooled IoU on the validation patches (binary)."""
        if n_classes(params) > 1:
            return {}
        if not val_batches:
            return {"threshold": float(params["threshold"])}
        from ..qc.metrics import best_threshold, threshold_sweep_many

        probs = [sigmoid(logits) for logits in predict_batches([b["source"] for b in val_batches])]
        rows = threshold_sweep_many(probs, [b["target"] > 0.5 for b in val_batches])
        best = best_threshold(rows, key="iou")
        val_iou = next(r["iou"] for r in rows if r["threshold"] == best)
        return {"threshold": float(best), "val_iou": float(val_iou)}

    def outputs(self, raw_output, image, normalizer, source_range, config):
        axes = self.spatial_axes
        if n_classes(config["parameters"]) > 1:
            prob = softmax(raw_output)
            return Outputs({"probability": (prob, "C" + axes), "classes": (prob.argmax(axis=0).astype(np.uint8), axes)})
        prob = sigmoid(raw_output[0])
        mask = prob >= mask_threshold(config)
        return Outputs({"probability": (prob, axes), "mask": ((mask * 255).astype(np.uint8), axes),
                        "labels": (label_components(mask), axes)})

    def output_keys(self, config):
        return ["probability", "classes"] if n_classes(config["parameters"]) > 1 else ["probability", "mask", "labels"]

    def export_spec(self, config):
        from .export_specs import segmentation_export

        return segmentation_export(config)


class UNet3D(UNet2D):
    name = "unet3d"
    dims = 3
