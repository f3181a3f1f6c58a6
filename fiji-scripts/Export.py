#@ File (label="Model folder", style="directory", description="A folder written by dl4mic train (it holds model.yaml and weights/).") model
#@ File (label="Bundle to write (.zip; empty for MODEL/export/)", style="save", required=false, description="Where to write the bioimage.io bundle zip that DeepImageJ opens; leave empty to write MODEL/export/.") bundle
# dl4mic: export a trained model as a bioimage.io bundle (runs in DeepImageJ), validated.
from ij import IJ

import dl4mic_ij
import dl4mic_run

try:
    model_dir, output = dl4mic_ij.path_of(model), dl4mic_ij.path_of(bundle)
    if dl4mic_run.run("export", "dl4mic export", model=model_dir, output=output):
        IJ.log("dl4mic: bundle written to %s" % (output or model_dir + "/export"))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Export", error)
