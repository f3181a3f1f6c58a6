"""Fuzzing every reader with hypothesis: random and mutated TIFF/PNG/JPEG files, box files (YOLO txt, VOC
XML, COCO JSON, box CSV), ThunderSTORM CSVs, ImageJ ROI zips, model.yaml, weight files and bundle zips.

Each example must end in one of two ways a user can live with: the reader returns, or it raises UserError
(one sentence with the fix). Anything else is a crash. Each example also has a time limit (hypothesis'
deadline) and a memory limit (numpy's and Python's allocations, traced), so a header that declares a
huge image must be refused before anything is allocated.

`make test` runs DL4MIC_FUZZ_EXAMPLES=30 seeded examples per reader; `make test-all` runs 1,000
random ones per reader."""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from dl4mic.errors import UserError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("DL4MIC_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=EXAMPLES <= 100, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
MEMORY_LIMIT = 64 << 20  # bytes one example may allocate: every seed file is a few KB
IMAGE_LIMIT = 8 << 20  # DL4MIC_MAX_IMAGE_BYTES here: a header may declare up to this, and decoding takes a few times it


@pytest.fixture(autouse=True)
def image_limit(monkeypatch):
    monkeypatch.setenv("DL4MIC_MAX_IMAGE_BYTES", str(IMAGE_LIMIT))


@contextmanager
def workdir():
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        yield Path(tmp)


def read_or_refuse(fn, *args, **kwargs):
    """Call a reader: it returns, or raises UserError with one line; within the memory limit either way."""
    tracemalloc.start()
    try:
        return fn(*args, **kwargs)
    except UserError as exc:
        text = str(exc)
        assert text and "\n" not in text.strip() and "Traceback" not in text, text
        return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"{fn.__name__} allocated {peak / 2**20:.0f} MiB"


def mutate(data: bytes, cuts, flips) -> bytes:
    """Truncate at `cuts` (a fraction, or None) and overwrite bytes at (fraction, value) positions."""
    out = bytearray(data)
    for where, value in flips:
        if out:
            out[int(where * (len(out) - 1))] = value
    if cuts is not None:
        out = out[:int(cuts * len(out))]
    return bytes(out)


mutations = st.tuples(st.none() | st.floats(0, 1), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                             max_size=12))


# --- images --------------------------------------------------------------------------------------------

def _tiff_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    seeds = []
    for data, kwargs in ((rng.integers(0, 4000, (12, 10), dtype=np.uint16), {}),
                         (rng.random((3, 2, 8, 9), dtype=np.float32), {"imagej": True,
                                                                        "metadata": {"axes": "ZCYX"}}),
                         (rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), {"compression": "zlib"}),
                         (rng.integers(0, 9, (2, 6, 7), dtype=np.uint8), {"tile": (16, 16)})):
        buf = io.BytesIO()
        tifffile.imwrite(buf, data, **kwargs)
        seeds.append(buf.getvalue())
    return seeds


def _pil_seed(fmt: str) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (9, 11, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


TIFFS = _tiff_seeds()
PILS = {".png": _pil_seed("PNG"), ".jpg": _pil_seed("JPEG")}


def declared_tiff(width: int, height: int, bits: int = 16) -> bytes:
    """A TIFF of a few bytes whose one-strip header declares width x height pixels."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 8),
               (277, 3, 1), (278, 4, height), (279, 4, min(width * height * bits // 8, 2**32 - 1))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    pixels = b"\0" * 8
    return b"II*\0" + struct.pack("<I", 8 + len(pixels)) + pixels + ifd


@FUZZ
@given(seed=st.sampled_from(range(len(TIFFS))), change=mutations)
@example(seed=3, change=(None, [(0.03363149088601381, 77)]))  # found: declared 35 MB, decoding took 87 MiB
def test_tiff_mutated(seed, change):
    from dl4mic.data.io import read_image, read_meta

    with workdir() as root:
        path = root / "image.tif"
        path.write_bytes(mutate(TIFFS[seed], *change))
        read_or_refuse(read_image, path)
        read_or_refuse(read_meta, path)


@FUZZ
@given(width=st.integers(1, 200_000), height=st.integers(1, 200_000), bits=st.sampled_from([8, 16, 32]))
def test_tiff_declared_size(width, height, bits):
    """A header may declare any size: more than the memory limit is refused before anything is read."""
    from dl4mic.data.io import read_image

    with workdir() as root:
        path = root / "image.tif"
        path.write_bytes(declared_tiff(width, height, bits))
        result = read_or_refuse(read_image, path)
        if width * height * bits // 8 > IMAGE_LIMIT:
            assert isinstance(result, UserError) and "GiB" in str(result)


def test_tiff_declaring_100000_squared_is_refused_before_allocating(tmp_path, monkeypatch):
    """With this machine's own limit (half its memory): 18.6 GiB is more than any machine here has."""
    from dl4mic.data.io import read_image

    monkeypatch.delenv("DL4MIC_MAX_IMAGE_BYTES")

    path = tmp_path / "huge.tif"
    path.write_bytes(declared_tiff(100_000, 100_000, 16))
    result = read_or_refuse(read_image, path)
    assert isinstance(result, UserError) and "huge.tif" in str(result) and "18.6 GiB" in str(result)


@FUZZ
@given(ext=st.sampled_from(sorted(PILS)), change=mutations)
@example(ext=".png", change=(None, [(0.09064356344621817, 4)]))  # found: a chunk declaring 64 MiB was allocated
def test_png_jpeg_mutated(ext, change):
    from dl4mic.data.io import read_image

    with workdir() as root:
        path = root / f"image{ext}"
        path.write_bytes(mutate(PILS[ext], *change))
        read_or_refuse(read_image, path)


@FUZZ
@given(ext=st.sampled_from([".tif", ".png", ".jpg"]), data=st.binary(max_size=600))
def test_image_random_bytes(ext, data):
    from dl4mic.data.io import read_image

    with workdir() as root:
        path = root / f"image{ext}"
        path.write_bytes(data)
        assert isinstance(read_or_refuse(read_image, path), UserError)


# --- boxes -------------------------------------------------------------------------------------------

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 70).map(str),
                    st.floats(-0.5, 1.5).map(lambda v: f"{v:.4f}"), st.text(max_size=4))
junk = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


def lines(cells):
    return st.lists(st.lists(cells, min_size=0, max_size=7), max_size=8)


@FUZZ
@given(rows=lines(numbers), tail=junk)
def test_yolo_txt(rows, tail):
    from dl4mic.data.boxes import read_yolo

    with workdir() as root:
        path = root / "a.txt"
        path.write_text("\n".join(" ".join(r) for r in rows) + "\n" + tail, encoding="utf-8")
        read_or_refuse(read_yolo, path, (64, 48))


def voc_documents():
    field = st.one_of(numbers, st.just(""))
    obj = st.fixed_dictionaries({"name": st.sampled_from(["cell", "rbc", "", "<x>"]),
                                 "xmin": field, "ymin": field, "xmax": field, "ymax": field})
    doc = st.tuples(st.lists(obj, max_size=4), field, field).map(
        lambda t: "<annotation><size><width>%s</width><height>%s</height></size>%s</annotation>" % (
            t[1], t[2], "".join("<object><name>%s</name><bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax>"
                                "<ymax>%s</ymax></bndbox></object>" % tuple(o.values()) for o in t[0])))
    bomb = st.just('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bbbbbbbbbb"><!ENTITY c "&b;&b;&b;&b;&b;'
                   '&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><annotation>&d;</annotation>')
    return st.one_of(doc, doc.flatmap(lambda d: st.integers(0, len(d)).map(lambda n: d[:n])), bomb, junk)


@FUZZ
@given(text=voc_documents())
def test_voc_xml(text):
    from dl4mic.data.boxes import read_voc

    with workdir() as root:
        path = root / "a.xml"
        path.write_text(text, encoding="utf-8")
        read_or_refuse(read_voc, path, None, ["cell", "rbc"])


json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 100) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=4), max_leaves=20)


def coco_documents():
    value = st.one_of(st.integers(-2, 80), st.floats(allow_nan=True), st.text(max_size=3), st.none())
    image = st.fixed_dictionaries({"id": value, "file_name": st.sampled_from(["a.png", "b.png", "", 3]),
                                   "width": value, "height": value})
    ann = st.fixed_dictionaries({"image_id": value, "category_id": value,
                                 "bbox": st.lists(value, max_size=5) | value})
    cat = st.fixed_dictionaries({"id": value, "name": st.sampled_from(["cell", "", None])})
    return st.fixed_dictionaries({"images": st.lists(image, max_size=3) | json_values,
                                  "annotations": st.lists(ann, max_size=4) | json_values,
                                  "categories": st.lists(cat, max_size=3) | json_values}).map(json.dumps)


@FUZZ
@given(text=st.one_of(coco_documents(), json_values.map(json.dumps), junk))
@example(text='{"images": [{"id": 1, "file_name": "a.png", "width": 0, "height": Infinity}], '
              '"annotations": [], "categories": []}')  # found: OverflowError
def test_coco_json(text):
    from dl4mic.data.boxes import read_coco

    with workdir() as root:
        path = root / "boxes.json"
        path.write_text(text, encoding="utf-8")
        read_or_refuse(read_coco, path)


@FUZZ
@given(header=st.lists(st.sampled_from(["image", "filename", "frame", "class", "confidence", "xmin", "ymin",
                                        "xmax", "ymax", "width", "height", "other"]), max_size=10),
       rows=lines(numbers), tail=junk)
def test_box_csv(header, rows, tail):
    from dl4mic.data.boxes import read_box_csv

    with workdir() as root:
        path = root / "boxes.csv"
        path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n" + tail,
                        encoding="utf-8")
        read_or_refuse(read_box_csv, path, {"a": (64, 48)})


# --- points ------------------------------------------------------------------------------------------

@FUZZ
@given(header=st.lists(st.sampled_from(['"id"', '"frame"', '"x [nm]"', '"y [nm]"', '"intensity [photon]"',
                                        '"x [px]"', '"y [px]"', "sigma", "x"]), max_size=7),
       rows=lines(numbers), tail=junk, pixel=st.none() | st.floats(-10, 200))
def test_thunderstorm_csv(header, rows, tail, pixel):
    from dl4mic.data.points import read_thunderstorm

    with workdir() as root:
        path = root / "locs.csv"
        path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n" + tail,
                        encoding="utf-8")
        read_or_refuse(read_thunderstorm, path, pixel)


# --- ROI zips ------------------------------------------------------------------------------------------

def _roi_seed() -> bytes:
    from dl4mic.predict.rois import labels_to_roi_zip

    labels = np.zeros((20, 20), np.uint16)
    labels[2:8, 3:9], labels[10:18, 11:15] = 1, 2
    with workdir() as root:
        return labels_to_roi_zip(labels, root / "rois.zip").read_bytes()


ROIS = _roi_seed()


@FUZZ
@given(change=mutations, shape=st.sampled_from([(20, 20), (5, 5), (3, 20, 20)]))
@example(change=(None, [(0.8984375, 4)]), shape=(20, 20))  # found: a 64 MiB declared entry
def test_roi_zip(change, shape):
    from dl4mic.predict.rois import read_roi_zip, roi_zip_to_labels

    with workdir() as root:
        path = root / "rois.zip"
        path.write_bytes(mutate(ROIS, *change))
        read_or_refuse(read_roi_zip, path)
        read_or_refuse(roi_zip_to_labels, path, shape)


# --- model folders -------------------------------------------------------------------------------------

def model_yaml_documents():
    config = st.fixed_dictionaries({"network": st.sampled_from(["unet2d", "care3d", "nope", 3, None]),
                                    "parameters": st.dictionaries(st.text(max_size=6), json_values, max_size=4)
                                    | json_values},
                                   optional={"format": st.integers(-1, 5) | st.text(max_size=3),
                                             "normalization": json_values})
    dumped = config.map(lambda c: yaml.safe_dump(c))
    return st.one_of(dumped, dumped.flatmap(lambda d: st.integers(0, len(d)).map(lambda n: d[:n])),
                     st.just("a: !!python/object/apply:os.system ['true']\n"), junk,
                     st.binary(max_size=80).map(lambda b: b.decode("latin-1")))


@FUZZ
@given(text=model_yaml_documents())
def test_model_yaml(text):
    from dl4mic.model_folder import ModelFolder

    with workdir() as root:
        (root / "model.yaml").write_text(text, encoding="utf-8")
        read_or_refuse(ModelFolder(root).read)


def _weights_seed() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"conv.weight": torch.ones(2, 1, 3, 3), "conv.bias": torch.zeros(2)}, buf)
    return buf.getvalue()


WEIGHTS = _weights_seed()


@FUZZ
@given(change=mutations)
@example(change=(None, [(0.0, 113)]))  # found: IndexError from the weights-only unpickler
def test_weight_file(change):
    from dl4mic.model_folder import ModelFolder

    with workdir() as root:
        path = root / "best.pt"
        path.write_bytes(mutate(WEIGHTS, *change))
        read_or_refuse(ModelFolder(root).load_weights, path)


# --- bundle zips ---------------------------------------------------------------------------------------

member_names = st.one_of(st.sampled_from(["rdf.yaml", "weights.pt", "../up.txt", "/abs.txt", "a/../../b",
                                          "dir/", "a\\..\\..\\c", "ok/x.npy", "./rdf.yaml", "", "a//b"]),
                         st.text(max_size=12))


@FUZZ
@given(members=st.lists(st.tuples(member_names, st.binary(max_size=64)), max_size=5), change=mutations,
       symlink=st.booleans())
@example(members=[("rdf.yaml", b"")], change=(None, [(0.75, 1)]), symlink=False)  # found: IndexError
@example(members=[("rdf.yaml", b"\0" * 14)], change=(None, [(0.5, 1)]), symlink=False)  # NotImplementedError
@example(members=[("rdf.yaml", b"")], change=(None, [(0.5, 1)]), symlink=False)  # found: UnicodeDecodeError
def test_bundle_zip(members, change, symlink):
    from dl4mic.export.extract import safe_extract

    with workdir() as root:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name or "x")
                if symlink:
                    info.external_attr = (0o120777 << 16)
                zf.writestr(info, data)
        path = root / "in" / "bundle.zip"
        path.parent.mkdir()
        path.write_bytes(mutate(buf.getvalue(), *change))
        before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        result = read_or_refuse(safe_extract, path, root / "out" / "bundle")
        after = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        outside = [p for p in after if p not in before and not p.startswith("out")]
        assert not outside, outside
        if isinstance(result, UserError):
            assert not (root / "out" / "bundle").exists()
            assert not [p for p in after if p.startswith("out/")], after
        else:
            for p in (root / "out" / "bundle").rglob("*"):
                assert not p.is_symlink(), p
