"""`dl4mic fiji ...`: install the menu scripts; convert and push results to ImageJ.

    dl4mic fiji install --fiji PATH/Fiji.app [--python PYTHON] [--command-only]
    dl4mic fiji update-site FOLDER                           the same files as an ImageJ update site
    dl4mic fiji rois LABELS.tif [--output ROIS.zip]          labels -> ROI zip (no JVM)
    dl4mic fiji labels ROIS.zip --like IMAGE.tif [--output LABELS.tif] [--mask]
    dl4mic fiji boxes BOXES.csv [--output ROIS.zip] [--image NAME]
    dl4mic fiji show IMAGE [--rois ZIP | --labels TIF | --boxes CSV] [--fiji PATH]
                                                             open ImageJ with the image and ROIs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `fiji` sub-commands; pass the sub-parser of the main CLI to attach them there."""
    parser = parser or argparse.ArgumentParser(prog="dl4mic fiji", description="The bridge to Fiji/ImageJ.")
    sub = parser.add_subparsers(dest="fiji_command", required=True)

    p = sub.add_parser("install", help="install the Plugins > dl4mic menu scripts into a Fiji")
    p.add_argument("--fiji", required=True, help="the Fiji.app folder")
    p.add_argument("--python", help="the Python that has dl4mic (default: this one)")
    p.add_argument("--command-only", action="store_true",
                   help="only record which dl4mic the scripts call (the scripts came from an update site)")

    p = sub.add_parser("update-site", help="write or update an ImageJ update site folder that a lab can host")
    p.add_argument("folder", help="the update site's folder (served over HTTP as the site's URL)")

    p = sub.add_parser("rois", help="label image -> ImageJ ROI zip")
    p.add_argument("labels")
    p.add_argument("--output", help="default: LABELS stem + _rois.zip beside it")

    p = sub.add_parser("labels", help="ImageJ ROI zip -> label image (or binary mask)")
    p.add_argument("rois")
    p.add_argument("--like", required=True, help="an image with the shape the ROIs were drawn on")
    p.add_argument("--output", help="default: ROIS stem + _labels.tif (or _mask.tif)")
    p.add_argument("--mask", action="store_true", help="write a 0/255 mask (U-Net target) instead of labels")

    p = sub.add_parser("boxes", help="boxes CSV (dl4mic or ZeroCostDL4Mic) -> ImageJ ROI zip of rectangles")
    p.add_argument("boxes")
    p.add_argument("--output", help="default: BOXES stem + _rois.zip")
    p.add_argument("--image", help="only the boxes of this image name")

    p = sub.add_parser("show", help="open ImageJ with an image and its ROIs in the ROI Manager")
    p.add_argument("image")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rois")
    group.add_argument("--labels")
    group.add_argument("--boxes")
    p.add_argument("--fiji", help="a local Fiji.app, started with PyImageJ (default: $DL4MIC_FIJI, else "
                                  "ImageJ 1.x from ij.jar)")
    return parser


def _default(path: str, suffix: str) -> Path:
    p = Path(path)
    stem = p.name.split(".")[0]
    for end in ("_labels", "_mask", "_rois", "_boxes"):
        stem = stem[: -len(end)] if stem.endswith(end) else stem
    return p.with_name(stem + suffix)


def _refuse_overwrite(path: Path, input_path: str) -> Path:
    if path.exists():
        raise UserError(f"{path} already exists; give another --output (the input {input_path} is never overwritten).")
    return path


def run(args: argparse.Namespace) -> int:
    """Execute parsed `dl4mic fiji` arguments; returns the exit code."""
    from ..data.io import read_image_with_meta, write_tiff

    cmd = args.fiji_command
    if cmd == "install":
        from .install import install_scripts

        written = install_scripts(args.fiji, python=args.python, command_only=args.command_only)
        if args.command_only:
            print(f"Recorded the dl4mic command in {written[0]}.")
        else:
            print(f"Installed {len(written)} files; restart Fiji and find them under Plugins > dl4mic.")
    elif cmd == "update-site":
        from .install import write_update_site

        updated = write_update_site(args.folder)
        print(f"Update site {args.folder}: {len(updated)} new file version(s); host the folder and add its URL "
              "in Fiji under Help > Update... > Manage update sites.")
    elif cmd == "rois":
        from ..predict.rois import LABEL_AXES, labels_to_roi_zip

        out = _refuse_overwrite(Path(args.output) if args.output else _default(args.labels, "_rois.zip"), args.labels)
        labels, meta = read_image_with_meta(args.labels)
        # the file's axes say whether a 3D stack is Z or T (N:Z names and slices, or frames)
        labels_to_roi_zip(labels, out, axes=meta.axes if meta.axes in LABEL_AXES else None)
        print(out)
    elif cmd == "labels":
        from ..predict.rois import read_roi_zip, rois_to_labels, rois_to_mask

        like, meta = read_image_with_meta(args.like)
        # one label plane per slice and frame: the like-image's channels share it
        axes = "".join(a for a in meta.axes if a != "C")
        shape = tuple(n for n, a in zip(like.shape, meta.axes) if a != "C")
        suffix = "_mask.tif" if args.mask else "_labels.tif"
        out = _refuse_overwrite(Path(args.output) if args.output else _default(args.rois, suffix), args.rois)
        rois = read_roi_zip(args.rois)
        write_tiff(out, (rois_to_mask if args.mask else rois_to_labels)(rois, shape), axes, spacing=meta.spacing)
        print(out)
    elif cmd == "boxes":
        from .boxes import boxes_to_roi_zip, read_boxes_csv

        out = _refuse_overwrite(Path(args.output) if args.output else _default(args.boxes, "_rois.zip"), args.boxes)
        boxes_to_roi_zip(read_boxes_csv(args.boxes), out, image=args.image)
        print(out)
    elif cmd == "show":
        show(args.image, rois=args.rois, labels=args.labels, boxes=args.boxes, fiji=args.fiji)
    return 0


def show(image, rois=None, labels=None, boxes=None, fiji=None, wait=True):
    """Open ImageJ with `image` and the given ROIs in the ROI Manager (needs a display)."""
    from .gateway import connect

    ij = connect(fiji=fiji, headless=False)
    from ij import IJ, ImageJ as ImageJApp

    if IJ.getInstance() is None:
        ImageJApp()
    imp = IJ.openImage(str(image))
    if imp is None:
        raise UserError(f"ImageJ cannot open {image}; give a TIFF, PNG or JPEG image.")
    if rois:
        found = ij.read_rois(rois)
    elif labels:
        from ..data.io import read_image_with_meta

        array, meta = read_image_with_meta(labels)
        found = ij.labels_to_rois(array, axes=meta.axes)
    elif boxes:
        from .boxes import read_boxes_csv
        from .jylib.dl4mic_boxes import image_matches

        found = ij.boxes_to_rois([b for b in read_boxes_csv(boxes) if image_matches(b["image"], Path(image).name)])
    else:
        found = []
    ij.show_rois(found, imp)
    if wait:
        print("ImageJ is open; close its main window (or press Ctrl+C) to finish.")
        import time

        while IJ.getInstance() is not None:
            time.sleep(0.5)
    return ij, imp


def cli_main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m dl4mic.fiji.cli ...`); the main CLI attaches build_parser() and run()."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


main = cli_main  # what dl4mic.cli calls for `dl4mic fiji ...`

if __name__ == "__main__":
    sys.exit(cli_main())
