#@ File (label="Model folder", style="directory") model
#@ File (label="Image or folder of images", style="both") input
#@ File (label="Output folder", style="directory") output
#@ boolean (label="Write ROIs (ROI zip per image; boxes CSV for detection)", value=true) rois
#@ boolean (label="Show the results (single image)", value=true) show
# dl4mic: predict images with a trained model; outputs are named after the inputs.
# For one image, the outputs open in Fiji and its ROIs go to the ROI Manager. Esc cancels.
import os

from ij import IJ

import dl4mic_boxes
import dl4mic_ij
import dl4mic_run


def show_results(image_path, folder):
    """Open the input, its output images, and its ROIs/boxes in the ROI Manager."""
    imp = IJ.openImage(image_path)
    imp.show()
    stem = dl4mic_ij.image_stem(imp)
    rois = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.startswith(stem):
            continue
        if name.lower().endswith((".tif", ".tiff")):
            out = IJ.openImage(path)
            if out is not None:
                out.show()
        elif name.endswith("_rois.zip"):
            rois += dl4mic_ij.read_rois(path)
        elif name.endswith("_boxes.csv"):
            boxes = [b for b in dl4mic_boxes.read_boxes(path) if dl4mic_boxes.image_matches(b["image"], imp.getTitle())]
            rois += dl4mic_ij.boxes_to_rois(boxes)
    if imp.getWindow() is not None:
        imp.getWindow().toFront()
    if rois:
        dl4mic_ij.add_to_manager(rois, imp, True)


try:
    image, folder = dl4mic_ij.path_of(input), dl4mic_ij.path_of(output)
    if dl4mic_run.run("predict", "dl4mic predict", model=dl4mic_ij.path_of(model), input=image, output=folder,
                      rois=rois):
        IJ.log("dl4mic: predictions in %s" % folder)
        if show and os.path.isfile(image):
            show_results(image, folder)
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Predict", error)
