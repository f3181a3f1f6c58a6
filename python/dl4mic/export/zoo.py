"""UPLOAD.md beside a `dl4mic export --zoo` bundle: how to upload it, what reviewers look for, what passed."""

from __future__ import annotations

from pathlib import Path

from .extract import sha256_file


def upload_notes(name: str, zip_path: Path, meta, profile: dict, results: dict) -> str:
    """The upload guide for the bundle `name`, whose zip is now at `zip_path` (hashed for the record)."""
    versions = results.get("versions") or {}
    checks = results.get("checks") or []
    dij = results.get("deepimagej") or {}
    maintainers = profile.get("maintainers") or []
    lines = [f"# Uploading {name} to the bioimage.io Model Zoo", "",
             "## Upload", "",
             "1. Open https://bioimage.io, choose **Upload**, and sign in (GitHub or another account the site offers).",
             f"2. Drop `{name}` into the uploader; it reads the rdf.yaml inside, so leave the zip as it is.",
             "3. Fill in the maintainers: the GitHub accounts that will answer questions about the model"
             + (": " + ", ".join(f"`{m['github_user']}`" + (f" ({m['name']})" if m.get("name") else "")
                                  for m in maintainers) if maintainers else
                " (none are in your profile; add them with `dl4mic profile set --maintainer \"Name; github_user\"`)")
             + ". They are not written into the bundle: the spec checks GitHub accounts online, and this "
               "bundle was validated offline.",
             "4. Submit. The zoo's bots re-run the checks below, then a reviewer looks at the model.", "",
             "## What reviewers look for", "",
             "- Real authors with affiliations (ORCIDs help), a licence, and a description that says what the "
             "model does and on which data.",
             "- A cover that shows what goes in and what comes out, and a README that says how the model was "
             "trained and validated (with baselines) and where it fails.",
             "- Test tensors that reproduce, weights that run in the declared frameworks, and a model that runs "
             "in at least one community partner tool (here DeepImageJ, with TorchScript and ONNX weights).",
             "- No personal data: this bundle carries no local file paths (data folders are named by their "
             "folder names or your data description).", "",
             "## This bundle", "",
             f"- Authors: {', '.join(a['name'] for a in meta.author_dicts())}",
             f"- Licence: {meta.license}",
             f"- Description: {meta.description}",
             f"- File: `{name}`, SHA-256 `{sha256_file(zip_path)}`", "",
             "## Checks that passed here", "",
             f"- `bioimageio test` (bioimageio.core {versions.get('bioimageio.core', '?')}, bioimageio.spec "
             f"{versions.get('bioimageio.spec', '?')}), determinism `{results.get('determinism', '?')}`, on CPU with "
             f"torch {versions.get('torch', '?')} and onnxruntime {versions.get('onnxruntime', '?')}: "
             f"{results.get('bioimageio', '?')} ({sum(1 for _, st in checks if st == 'passed')} of {len(checks)} "
             "checks passed).",
             "- The DeepImageJ reader rules (dl4mic's offline reproduction of the zoo's DeepImageJ compatibility "
             "check: one input, only DeepImageJ's pre/post-processing, ONNX opset and IR limits, plain "
             "documentation and cover names, the ONNX weights reproduce the test output)"
             + (f": passed, largest difference {dij['max_abs_diff']:.2g}." if "max_abs_diff" in dij else ": passed."),
             ""]
    return "\n".join(lines)
