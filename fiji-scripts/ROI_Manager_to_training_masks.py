#@ ImagePlus (label="Image the ROIs were drawn on", description="The image the ROIs belong to: the mask gets its size, slices, frames and calibration, and its name.") image
#@ File (label="Target folder (training masks)", style="directory", description="The training targets folder; the mask is named like the image so that dl4mic train pairs them.") target_dir
#@ String (label="Target kind", choices={"binary mask (U-Net)", "label image (instances)"}, value="binary mask (U-Net)", description="Binary masks (0/255) train U-Net; label images (one value per ROI) train StarDist.") kind
#@ File (label="Source folder (a copy of the image goes here if missing)", style="directory", required=false, description="The training sources folder: a copy of the image is saved there if it is not already in it.") source_dir
#@ boolean (label="Overwrite existing files", value=false, description="Replace a mask (and source copy) of the same name; otherwise existing files are kept.") overwrite
# dl4mic: the ROI Manager's (reviewed, fixed) ROIs -> a training target named like the
# image, so that `dl4mic train --source SOURCE --target TARGET` pairs them.
import os

from ij import IJ

import dl4mic_ij
import dl4mic_run

try:
    if image is None:
        raise dl4mic_ij.BridgeError("No image is open; open the image the ROIs belong to first.")
    rois = dl4mic_ij.manager_rois()
    if not rois:
        raise dl4mic_ij.BridgeError("The ROI Manager is empty; add or load ROIs before saving training masks.")
    paint = dl4mic_ij.rois_to_mask if kind.startswith("binary") else dl4mic_ij.rois_to_labels
    # one label plane per slice and frame (channels share it), positions kept; the voxel size travels along
    target = paint(rois, image.getWidth(), image.getHeight(), image.getNSlices(), image.getNFrames(),
                   image.getNChannels())
    target.setCalibration(image.getCalibration())
    name = dl4mic_ij.image_stem(image) + ".tif"
    path = dl4mic_ij.save_tiff(target, os.path.join(dl4mic_ij.path_of(target_dir), name), overwrite)
    IJ.log("dl4mic: %d ROIs saved as %s" % (len(rois), path))
    if source_dir is not None:
        copy = os.path.join(dl4mic_ij.path_of(source_dir), name)
        if os.path.exists(copy) and not overwrite:
            IJ.log("dl4mic: kept the existing source image %s" % copy)
        else:
            IJ.log("dl4mic: source image saved as %s" % dl4mic_ij.save_tiff(image, copy, overwrite))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("ROI Manager to training masks", error)
