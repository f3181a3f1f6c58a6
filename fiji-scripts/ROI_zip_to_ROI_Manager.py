#@ File (label="ROI set (.zip or .roi)", style="open", description="An ROI set written by dl4mic predict --rois, or saved from the ROI Manager.") roi_file
#@ boolean (label="Replace the ROIs already in the ROI Manager", value=true, description="Clear the ROI Manager first; untick to add to the ROIs already there.") replace
# dl4mic: open an ROI set written by `dl4mic predict --rois` (or Fiji) in the ROI
# Manager and show it on the current image.
from ij import IJ, WindowManager

import dl4mic_ij
import dl4mic_run

try:
    rois = dl4mic_ij.read_rois(dl4mic_ij.path_of(roi_file))
    dl4mic_ij.add_to_manager(rois, WindowManager.getCurrentImage(), replace)
    IJ.showStatus("dl4mic: %d ROIs from %s" % (len(rois), roi_file.getName()))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("ROI zip to ROI Manager", error)
