#@ String (label="Network", choices={"care2d", "care3d", "n2v2d", "n2v3d", "stardist2d", "stardist3d", "unet2d", "unet3d"}, description="The network to train; the next dialog asks for its basic parameters (Help there explains each).") network
#@ File (label="Source images (folder)", style="directory", description="The training inputs; images of any size, one file per image or stack.") source
#@ File (label="Target images (folder, same file names; empty for self-supervised networks)", style="directory", required=false, description="The training targets with the same file names as the sources (masks, labels or clean images); leave empty for Noise2Void.") target
#@ File (label="Model folder to create", style="directory", description="The folder the model is written to; Cancel (Esc) stops training and keeps it resumable.") model
#@ boolean (label="Overwrite an existing model", value=false, description="Replace an existing model folder of that name; otherwise training refuses to touch it.") overwrite
# dl4mic: train a network on paired source/target folders. A second dialog asks for
# the network's basic parameters (from model-specs/). Esc cancels training.
from ij import IJ

import dl4mic_ij
import dl4mic_run

try:
    params = dl4mic_run.ask_parameters(network)
    if params is not None:
        done = dl4mic_run.run("train", "dl4mic train", network=network, source=dl4mic_ij.path_of(source),
                              target=dl4mic_ij.path_of(target),
                              model=dl4mic_ij.path_of(model), params=params, overwrite=overwrite)
        if done:
            IJ.log("dl4mic: model saved in %s; check it with Plugins > dl4mic > QC" % dl4mic_ij.path_of(model))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Train", error)
