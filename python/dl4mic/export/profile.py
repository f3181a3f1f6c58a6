"""The user's profile for bundles: who made the model and under which licence, asked once and remembered.

Kept in `~/.config/dl4mic/profile.yaml` ($XDG_CONFIG_HOME, or the file $DL4MIC_PROFILE names):

    authors: [{name, affiliation, orcid, email}]   # the bundle's authors
    maintainers: [{name, github_user}]             # who answers questions on the zoo (upload form)
    license: CC-BY-4.0                             # an SPDX id
    data_citations: [{text, doi, url}]             # the training data's papers/datasets

`dl4mic profile set ...` writes it; `dl4mic export` uses it for every bundle, and `--zoo`
refuses to package a model for upload while the authors are placeholders.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..errors import UserError

FIELDS = ("authors", "maintainers", "license", "data_citations")
# names that say nobody filled the profile in
PLACEHOLDER_NAMES = {"", "dl4mic user", "user", "your name", "name", "author", "authors", "unknown", "anonymous",
                     "todo", "tbd", "me", "john doe", "jane doe", "test"}


def profile_path() -> Path:
    if os.environ.get("DL4MIC_PROFILE"):
        return Path(os.environ["DL4MIC_PROFILE"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "dl4mic" / "profile.yaml"


def load_profile(path: str | Path | None = None) -> dict:
    """The saved profile ({} when there is none)."""
    path = Path(path) if path else profile_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix it or rewrite it with "
                        "`dl4mic profile set`.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of {', '.join(FIELDS)}; rewrite it with `dl4mic profile set`.")
    return check_profile(data, path)


def save_profile(profile: dict, path: str | Path | None = None) -> Path:
    from ..data.io import atomic_path

    path = Path(path) if path else profile_path()
    profile = check_profile({k: v for k, v in profile.items() if k in FIELDS and v not in (None, [], "")}, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(profile, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def parse_person(text: str, fields=("name", "affiliation", "orcid", "email")) -> dict:
    """'Name; Affiliation; ORCID; email' (later parts optional) -> a dict of the parts given."""
    parts = [p.strip() for p in str(text).split(";")]
    return {k: v for k, v in zip(fields, parts) if v}


def parse_citation(text: str) -> dict:
    """'Text; doi or URL' -> {text, doi} or {text, url}."""
    text, _, ref = (p.strip() for p in str(text).partition(";"))
    if not ref:
        return {"text": text}
    return {"text": text, "url" if ref.startswith(("http://", "https://")) else "doi": ref}


def check_profile(profile: dict, where: str | Path = "the profile") -> dict:
    """Validate with bioimageio.spec's own rules (ORCID checksum, SPDX licence), one sentence per problem."""
    from bioimageio.spec.model import v0_5 as v

    for author in profile.get("authors") or []:
        if not isinstance(author, dict) or not author.get("name"):
            raise UserError(f"{where}: every author needs a name; set them with "
                            "`dl4mic profile set --author \"Name; Affiliation; ORCID\"`.")
        try:
            v.Author(**{k: author[k] for k in ("name", "affiliation", "orcid", "email") if author.get(k)})
        except ValueError as exc:
            field = "orcid" if "orcid" in str(exc).lower() else "email" if "email" in str(exc).lower() else "entry"
            raise UserError(f"{where}: the {field} of author {author['name']!r} is not valid "
                            f"({author.get(field, '')}); an ORCID looks like 0000-0002-1825-0097.") from None
    for person in profile.get("maintainers") or []:
        if not isinstance(person, dict) or not person.get("github_user"):
            raise UserError(f"{where}: every maintainer needs a GitHub user name; set them with "
                            "`dl4mic profile set --maintainer \"Name; github_user\"`.")
    if profile.get("license"):
        from bioimageio.spec._internal.license_id import LicenseId

        try:
            LicenseId(profile["license"])
        except ValueError:
            raise UserError(f"{where}: {profile['license']!r} is not an SPDX licence id; use one such as "
                            "CC-BY-4.0, MIT or BSD-3-Clause.") from None
    for cite in profile.get("data_citations") or []:
        if not isinstance(cite, dict) or not cite.get("text") or not (cite.get("doi") or cite.get("url")):
            raise UserError(f"{where}: every data citation needs a text and a DOI or URL; set them with "
                            "`dl4mic profile set --data-citation \"Text; 10.xxxx/yyyy\"`.")
    return profile


def placeholder_authors(authors: list[dict]) -> bool:
    return not authors or any(str(a.get("name", "")).strip().lower() in PLACEHOLDER_NAMES for a in authors)
