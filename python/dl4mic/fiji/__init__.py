"""The bridge to Fiji/ImageJ: ROI sets, boxes and TrackMate files without a JVM, and an ImageJ gateway.

Pure Python (what `dl4mic predict --rois` uses): `labels_to_roi_zip`,
`roi_zip_to_labels`, `read_boxes_csv`, `write_boxes_csv`, `boxes_to_roi_zip`,
`write_trackmate_csv`, `write_tiff_with_overlay`. With a JVM: `connect()`.
"""

from .boxes import boxes_to_roi_zip, read_boxes_csv, write_boxes_csv
from ..predict.rois import labels_to_roi_zip, labels_to_rois, roi_zip_to_labels, rois_to_labels
from ..predict.trackmate import objects_from_labels, write_trackmate_csv


def connect(fiji=None, ij_jar=None, headless=None):
    """The process-wide ImageJ gateway (see dl4mic.fiji.gateway.connect)."""
    from .gateway import connect as _connect

    return _connect(fiji=fiji, ij_jar=ij_jar, headless=headless)


def cli_main(argv=None):
    from .cli import cli_main as _main

    return _main(argv)


def write_tiff_with_overlay(path, image, rois=None, labels=None):
    from .overlay import write_tiff_with_overlay as _write

    return _write(path, image, rois=rois, labels=labels)


__all__ = ["boxes_to_roi_zip", "cli_main", "connect", "labels_to_roi_zip", "labels_to_rois", "objects_from_labels",
           "read_boxes_csv", "roi_zip_to_labels", "rois_to_labels", "write_boxes_csv", "write_tiff_with_overlay",
           "write_trackmate_csv"]
