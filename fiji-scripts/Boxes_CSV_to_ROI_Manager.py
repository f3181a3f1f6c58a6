#@ File (label="Boxes CSV (dl4mic *_boxes.csv or ZeroCostDL4Mic predicted_bounding_boxes*.csv)", style="open", description="The boxes written by dl4mic predict for a detection model, or ZeroCostDL4Mic's YOLO CSV (wide or transposed).") csv_file
#@ boolean (label="Only the boxes of the current image", value=true, description="Keep only the rows whose image name matches the current image's title.") current_only
#@ boolean (label="Replace the ROIs already in the ROI Manager", value=true, description="Clear the ROI Manager first; untick to add the boxes to the ROIs already there.") replace
# dl4mic: detection boxes -> rectangle ROIs named class:confidence, on their stack slice.
from ij import IJ, WindowManager

import dl4mic_boxes
import dl4mic_ij
import dl4mic_run

try:
    boxes = dl4mic_boxes.read_boxes(dl4mic_ij.path_of(csv_file))
    imp = WindowManager.getCurrentImage()
    if current_only and imp is not None:
        boxes = [b for b in boxes if dl4mic_boxes.image_matches(b["image"], imp.getTitle())]
    dl4mic_ij.add_to_manager(dl4mic_ij.boxes_to_rois(boxes), imp, replace)
    IJ.showStatus("dl4mic: %d boxes from %s" % (len(boxes), csv_file.getName()))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Boxes CSV to ROI Manager", error)
