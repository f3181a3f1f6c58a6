"""StarDist 2D predictions open in real ImageJ 1.x: one ROI per object, painting back the label image."""

import numpy as np
import tifffile

from dl4mic.predict.model import LoadedModel


def test_stardist_roi_zip_opens_in_imagej_one_roi_per_object(ij, tmp_path, monkeypatch):
    import test_stardist as T
    from helpers import cli

    p = T.small_params(n_rays=16)
    model = T.write_model(tmp_path / "m", p)
    monkeypatch.setattr(LoadedModel, "_run", lambda self, x: T.oracle(p)(x))  # a perfect 'network'
    image, truth = T.border_scene(256, 128, radius=8)  # nuclei on tile borders and corners
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "nuclei.tif", image)
    out = tmp_path / "out"
    assert cli("predict", model, "--input", tmp_path / "in", "--output", out, "--rois", "--tile", "128") == 0
    labels = tifffile.imread(out / "nuclei_labels.tif")
    values = [int(v) for v in np.unique(labels) if v > 0]
    rois = ij.read_rois(out / "nuclei_rois.zip")
    assert len(rois) == len(values) == int(truth.max())
    assert [str(r.getName()) for r in rois] == [f"label-{v}" for v in values]
    assert np.array_equal(ij.rois_to_labels(rois, labels.shape), labels)
