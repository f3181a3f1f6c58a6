#@ ImagePlus (label="Label image (0 = background, each object one value)", description="An image whose pixels are 0 for background and one value per object, such as a dl4mic *_labels.tif; a stack gives one ROI per object and slice.") labels
#@ boolean (label="Replace the ROIs already in the ROI Manager", value=true, description="Clear the ROI Manager first; untick to add to the ROIs already there.") replace
# dl4mic: label image -> one ROI per object in the ROI Manager, exactly (holes and
# multi-part objects kept: each label is thresholded and turned into a selection).
# A stack gives one ROI per object and slice, named label:z (label:z:t on a hyperstack).
from ij import IJ

import dl4mic_ij
import dl4mic_run

try:
    if labels is None:
        raise dl4mic_ij.BridgeError("No image is open; open a label image (e.g. a *_labels.tif) first.")
    rois = dl4mic_ij.labels_to_rois(labels)
    dl4mic_ij.add_to_manager(rois, labels, replace)
    IJ.showStatus("dl4mic: %d ROIs from %s" % (len(rois), labels.getTitle()))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Labels to ROI Manager", error)
