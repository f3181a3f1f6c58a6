"""No local paths in a bundle: a bundle is shared, and the user's file system is theirs.

Every absolute path in what a bundle carries (the model's `model.yaml`, the QC summary, the
README and rdf built from them) becomes the folder's or file's name; the machine's own
folders (home, working directory, the model folder) become neutral words. `leaks` is the
final check on the packaged texts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

TEXT_SUFFIXES = (".yaml", ".yml", ".md", ".json", ".csv", ".txt", ".ijm", ".py", ".xml")


def _is_absolute(text: str) -> bool:
    return ("/" in text or "\\" in text) and (PurePosixPath(text).is_absolute() or
                                              PureWindowsPath(text).is_absolute())


def _name(text: str) -> str:
    return (PureWindowsPath(text) if "\\" in text else PurePosixPath(text)).name or "data"


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _strings(value)


class PathRedactor:
    """Replaces known absolute paths (longest first) in texts and nested data."""

    def __init__(self, replacements: dict[str, str]):
        self.replacements = dict(sorted(replacements.items(), key=lambda kv: -len(kv[0])))
        self._pattern = re.compile("|".join(re.escape(p) for p in self.replacements)) if self.replacements else None

    @classmethod
    def for_model(cls, model_dir: str | Path, *documents, names: dict[str, str] | None = None) -> "PathRedactor":
        """The absolute paths found in `documents` (config dicts, QC summaries) become their names (or
        `names[path]`); the model folder, the working directory and the home folder become words."""
        found = {}
        for doc in documents:
            for text in _strings(doc):
                if _is_absolute(text):
                    found[text.rstrip("/\\")] = _name(text)
        found.update({str(Path(p)): n for p, n in (names or {}).items()})
        model_dir = Path(model_dir).resolve()
        for path, word in ((model_dir, "the model folder"), (Path.cwd(), "the working folder"),
                           (Path.home(), "the home folder")):
            found.setdefault(str(path), word)
            found.setdefault(os.path.realpath(path), word)
        found = {p: n for p, n in found.items() if len(p) > 1}  # never the root folder itself
        return cls(found)

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.replacements[m.group(0)], text)

    def data(self, obj):
        """A copy of nested dicts/lists with every string redacted."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.data(k): self.data(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.data(v) for v in obj)
        return obj

    def leaks(self, text: str) -> list[str]:
        """The known local paths that still occur in `text`."""
        return [p for p in self.replacements if p in text]
