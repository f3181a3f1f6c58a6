#@ File (label="Model folder", style="directory", description="A folder written by dl4mic train (it holds model.yaml and weights/).") model
#@ File (label="Bundle to write (.zip; empty for MODEL/export/)", style="save", required=false, description="Where to write the bioimage.io bundle zip that DeepImageJ opens; leave empty to write MODEL/export/.") bundle
#@ String (label="Authors (empty: your dl4mic profile)", required=false, value="", description="Name; Affiliation; ORCID, several separated by |. Left empty, the authors saved with dl4mic profile set are used.") authors
#@ String (label="Description", required=false, value="", description="What the model does, on which data; the Model Zoo shows it.") description
#@ String (label="Licence (SPDX id; empty: your profile's)", required=false, value="", description="For example CC-BY-4.0, MIT or BSD-3-Clause.") license
#@ boolean (label="Package for the bioimage.io Model Zoo", value=false, description="Requires real authors, a licence and a description; runs the full-determinism test and writes UPLOAD.md beside the zip.") zoo
# dl4mic: export a trained model as a bioimage.io bundle (runs in DeepImageJ), validated.
from ij import IJ

import dl4mic_ij
import dl4mic_run


def text_or_none(value):
    value = ("%s" % value).strip() if value is not None else ""
    return value or None


try:
    model_dir, output = dl4mic_ij.path_of(model), dl4mic_ij.path_of(bundle)
    people = [a.strip() for a in ("%s" % (authors or "")).split("|") if a.strip()]
    if dl4mic_run.run("export", "dl4mic export", model=model_dir, output=output, author=people or None,
                      description=text_or_none(description), license=text_or_none(license), zoo=zoo):
        IJ.log("dl4mic: bundle written to %s" % (output or model_dir + "/export"))
except dl4mic_run.USER_ERRORS as error:
    dl4mic_run.report("Export", error)
