"""Small helpers for tests: run the CLI in-process and build tiny data sets from real images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from dl4mic.cli import main

TINY = {"steps_per_epoch": 3, "batch_size": 4, "patch_size": 32, "depth": 2, "filters": 8, "val_patches": 8,
        "precision": "float32"}


def cli(*args) -> int:
    return main([str(a) for a in args])


def copy_pairs(src_root: Path, dst_root: Path, names: list[str], kinds=("noisy", "clean")) -> tuple[Path, Path]:
    for kind in kinds:
        (dst_root / kind).mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.copy(src_root / kind / n, dst_root / kind / n)
    return dst_root / kinds[0], dst_root / kinds[1]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(data))
    return path


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def write_stardist_model(folder: Path, network: str, params: dict, prob_thresh: float = 0.5,
                         nms_thresh: float = 0.4, **config) -> Path:
    """A StarDist model folder with untrained weights (what LoadedModel needs), for oracle-network tests."""
    import torch
    import yaml

    from dl4mic.networks import get_network

    (folder / "weights").mkdir(parents=True)
    torch.save(get_network(network).build(params).state_dict(), folder / "weights" / "best.pt")
    config = {"network": network, "task": "instance", "name": folder.name, "parameters": params,
              "normalization": {"source": {"method": "percentile", "low": 1.0, "high": 99.8}},
              "prob_thresh": prob_thresh, "nms_thresh": nms_thresh, **config}
    (folder / "model.yaml").write_text(yaml.safe_dump(config))
    return folder


ZOO_ORCID = "0000-0002-1825-0097"  # ORCID's documented example iD (valid checksum)
README_SECTIONS = ("## Input and output", "## Use it", "## Training data", "## Parameters", "# Validation",
                   "## Limits", "## Citations")


def zoo_profile(tmp_path: Path, monkeypatch) -> Path:
    """A filled profile (two authors, a maintainer, a licence, a data citation) as the user's."""
    monkeypatch.setenv("DL4MIC_PROFILE", str(tmp_path / "profile.yaml"))
    assert cli("profile", "set", "--author", f"Ada Lovelace; Analytical Engine Lab; {ZOO_ORCID}",
               "--author", "Charles Babbage; Analytical Engine Lab", "--maintainer", "Ada Lovelace; adalovelace",
               "--license", "CC-BY-4.0", "--data-citation", "Caicedo JC et al. Nucleus segmentation across imaging "
               "experiments: the 2018 Data Science Bowl. Nat Methods 16 (2019); 10.1038/s41592-019-0612-7") == 0
    return tmp_path / "profile.yaml"


def assert_zoo_ready(model: Path, tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    """`dl4mic export MODEL --zoo` with a filled profile: real authors, no local path in any text file, a
    cover, a README with every section, and UPLOAD.md saying the full-determinism test passed."""
    import io
    import os
    import zipfile

    import yaml
    from PIL import Image

    zoo_profile(tmp_path, monkeypatch)
    out = tmp_path / "zoo" / f"{Path(model).name}.bioimage.io.zip"
    assert cli("export", model, "--output", out, "--zoo", "--description", "A model of dl4mic's tests.",
               "--data-description", "Crops of public microscopy images (dl4mic's shared test data).") == 0
    config = yaml.safe_load((Path(model) / "model.yaml").read_text())
    data = config.get("data") or {}
    local = {str(Path(model).resolve()), str(Path.home()), os.getcwd(), str(Path(model).parent.resolve())}
    local |= {str(Path(p).resolve()) for p in (data.get("source"), data.get("target")) if p}
    with zipfile.ZipFile(out) as zf:
        for name in zf.namelist():
            if name.endswith((".yaml", ".md", ".json", ".csv", ".ijm", ".py")):
                text = zf.read(name).decode("utf-8")
                assert not [p for p in local if p in text], (name, [p for p in local if p in text])
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        readme = zf.read("README.md").decode()
        cover = np.asarray(Image.open(io.BytesIO(zf.read(rdf["covers"][0]))))
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "Charles Babbage"]
    assert rdf["authors"][0]["orcid"] == ZOO_ORCID and rdf["license"] == "CC-BY-4.0"
    assert rdf["description"] == "A model of dl4mic's tests."
    assert "10.1038/s41592-019-0612-7" in [c.get("doi") for c in rdf["cite"]]
    assert cover.ndim >= 2 and cover.shape[1] > cover.shape[0] and cover.std() > 0  # panels side by side
    assert all(section in readme for section in README_SECTIONS), [s for s in README_SECTIONS if s not in readme]
    assert "Crops of public microscopy images" in readme and "Data citation:" in readme
    upload = (out.parent / "UPLOAD.md").read_text()
    assert "determinism `full`" in upload and ": passed (" in upload and "`adalovelace`" in upload
    from dl4mic.export.extract import sha256_file

    assert sha256_file(out) in upload
    return out, readme
