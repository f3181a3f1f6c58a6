#@ File (label="Model folder", style="directory", description="A folder written by dl4mic train; the QC goes to MODEL/qc/ (metrics, error maps, report.pdf).") model
#@ File (label="Test source images (folder)", style="directory", description="Held-out test images the model was not trained on.") source
#@ File (label="Test targets / ground truth (folder, same file names)", style="directory", description="The ground truth of the test images, with the same file names.") target
# dl4mic: quality control of a trained model on held-out images with ground truth;
# metrics, error maps and the report go to MODEL/qc/. Esc cancels.
import json
import os

from ij import IJ

import dl4mic_ij
import dl4mic_run

try:
    model_dir = dl4mic_ij.path_of(model)
    if dl4mic_run.run("qc", "dl4mic qc", model=model_dir, source=dl4mic_ij.path_of(source),
                      target=dl4mic_ij.path_of(target)):
        summary = os.path.join(model_dir, "qc", "summary.json")
        if os.path.isfile(summary):
            handle = open(summary)
            metrics = json.load(handle)
            handle.close()
            IJ.log("dl4mic QC of %s:" % model.getName())
            for key in sorted(metrics):
                IJ.log("  %s: %s" % (key, metrics[key]))
        IJ.log("dl4mic: QC results in %s" % os.path.join(model_dir, "qc"))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("QC", error)
