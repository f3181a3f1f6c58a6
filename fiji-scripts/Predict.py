#@ File (label="Model folder or bundle zip", style="both", description="A folder written by dl4mic train, or a bioimage.io bundle zip exported by dl4mic.") model
#@ File (label="Image or folder of images (empty: the image open in Fiji)", style="both", required=false, description="One image, or a folder of images; leave empty to predict the image open in Fiji (its calibration and dimensions are kept).") input
#@ File (label="Output folder", style="directory", description="Outputs are named after the inputs (NAME_labels.tif, NAME_rois.zip, ...); existing files are never overwritten.") output
#@ boolean (label="Write ROIs (ROI zip per image; boxes CSV for detection)", value=true, description="Also write an ImageJ ROI zip per image (one ROI per object and slice), or a boxes CSV for detection models.") rois
#@ boolean (label="Show the results (single image)", value=true, description="For a single image, open the outputs in Fiji and put the ROIs into the ROI Manager.") show
# dl4mic: predict images with a trained model; outputs are named after the inputs.
# With no input file, the image open in Fiji (a stack or hyperstack too) is predicted: it is saved
# to a temporary TIFF by ImageJ, which keeps its calibration and dimensions.
# For one image, the outputs open in Fiji and its ROIs go to the ROI Manager, on their slices. Esc cancels.
import os
import shutil

from ij import IJ, WindowManager

import dl4mic_boxes
import dl4mic_ij
import dl4mic_run


def same_planes(imp, other):
    """Whether ROIs positioned on `other`'s planes fall on the same planes of `imp` (2D ROIs fit any image)."""
    if other.getStackSize() == 1:
        return True
    return imp.getNChannels() == 1 and (imp.getNSlices(), imp.getNFrames()) == (other.getNSlices(), other.getNFrames())


def show_results(imp, folder, stem):
    """Show `imp` and its outputs (files named stem.tif, stem_*), and put its ROIs/boxes into the ROI Manager:
    on `imp` when its planes match the label stack's, else on the label stack."""
    imp.show()
    rois, labels = [], None
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not dl4mic_ij.is_output_of(name, stem):
            continue
        if name.lower().endswith((".tif", ".tiff")):
            out = IJ.openImage(path)
            if out is not None:
                out.show()
                if name.endswith(("_labels.tif", "_labels.tiff")):
                    labels = out
        elif name.endswith("_rois.zip"):
            rois += dl4mic_ij.read_rois(path)
        elif name.endswith("_boxes.csv"):
            boxes = [b for b in dl4mic_boxes.read_boxes(path) if dl4mic_boxes.image_matches(b["image"], imp.getTitle())]
            rois += dl4mic_ij.boxes_to_rois(boxes)
    target = labels if labels is not None and not same_planes(imp, labels) else imp
    if target.getWindow() is not None:  # the image the ROIs are on is the one the user works on next
        WindowManager.setCurrentWindow(target.getWindow())
        target.getWindow().toFront()
    if rois:
        dl4mic_ij.add_to_manager(rois, target, True)


try:
    image, folder = dl4mic_ij.path_of(input), dl4mic_ij.path_of(output)
    opened, scratch = None, None
    if image is None:
        opened = WindowManager.getCurrentImage()
        if opened is None:
            raise dl4mic_ij.BridgeError("No input is given and no image is open; choose an image file or folder, "
                                        "or open the image to predict.")
        image = dl4mic_ij.save_temp_tiff(opened)
        scratch = os.path.dirname(image)
    try:
        done = dl4mic_run.run("predict", "dl4mic predict", model=dl4mic_ij.path_of(model), input=image,
                              output=folder, rois=rois)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, True)
    if done:
        IJ.log("dl4mic: predictions in %s" % folder)
        stem = os.path.basename(image).rsplit(".", 1)[0]
        shown = opened if opened is not None else IJ.openImage(image) if show and os.path.isfile(image) else None
        if show and shown is not None:
            show_results(shown, folder, stem)
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Predict", error)
