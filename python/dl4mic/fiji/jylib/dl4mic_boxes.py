"""Bounding-box CSV parsing shared by dl4mic (CPython) and Fiji's Jython scripts.

Kept to the Python 2.7/3 common subset and the standard library, because Fiji
runs it as Jython. Three layouts are read:

* dl4mic, one box per row: ``image,frame,class,confidence,xmin,ymin,xmax,ymax``;
* ZeroCostDL4Mic YOLOv2 ``predicted_bounding_boxes*.csv``, one image per row:
  ``filename`` then ``xmin,ymin,xmax,ymax,confidence,class`` repeated per box
  (rows may be longer than the header; class is an index or a name);
* its transposed ``predicted_bounding_boxes_for_custom_ROI*.csv``, one image per
  column, rows named ``xmin``, ``ymin``, ... ``xmin.1`` ...
"""

import csv

FIELDS = ["image", "frame", "class", "confidence", "xmin", "ymin", "xmax", "ymax"]
WIDE_GROUP = ["xmin", "ymin", "xmax", "ymax", "confidence", "class"]


class BoxesError(ValueError):
    """A CSV that is not one of the known box layouts; the message names the fix."""


def _number(text, what, where):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise BoxesError("%s: %s %r is not a number; fix that cell or re-export the boxes." % (where, what, text))


def _box(image, frame, klass, confidence, xmin, ymin, xmax, ymax, where):
    box = {"image": image, "frame": int(_number(frame, "frame", where)), "class": klass,
           "confidence": _number(confidence, "confidence", where)}
    for key, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
        box[key] = _number(value, key, where)
    if box["xmax"] < box["xmin"] or box["ymax"] < box["ymin"]:
        raise BoxesError("%s: xmax/ymax lie before xmin/ymin; boxes need xmin <= xmax and ymin <= ymax." % where)
    return box


def _class_name(text):
    """Class indices stay as written ('0', '1'); float-formatted indices ('1.0') lose the '.0'."""
    text = text.strip()
    try:
        value = float(text)
        if value == int(value):
            return str(int(value))
    except ValueError:
        pass
    return text


def parse_rows(rows, where="boxes CSV"):
    """Boxes (dicts with FIELDS keys) from CSV rows (lists of strings), any known layout."""
    rows = [[cell.strip() for cell in row] for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.lower() for cell in rows[0]]
    if set(["xmin", "ymin", "xmax", "ymax"]) <= set(header) and "image" in header:
        return _parse_long(header, rows[1:], where)
    if header and header[0] in ("filename", "") and len(rows) > 1 and rows[1][0].lower().split(".")[0] == "xmin":
        return _parse_transposed(rows, where)
    if header and header[0] == "filename" and header[1:7] == WIDE_GROUP:
        return _parse_wide(rows[1:], where)
    raise BoxesError("%s has neither the dl4mic columns (%s) nor the ZeroCostDL4Mic layout "
                     "(filename, then xmin,ymin,xmax,ymax,confidence,class per box); "
                     "export the boxes again with `dl4mic predict --rois`." % (where, ",".join(FIELDS)))


def _parse_long(header, rows, where):
    col = dict((name, i) for i, name in enumerate(header))
    boxes = []
    for n, row in enumerate(rows):
        row = row + [""] * (len(header) - len(row))
        get = lambda key, default="": row[col[key]] if key in col and row[col[key]] != "" else default
        boxes.append(_box(get("image"), get("frame", "0"), _class_name(get("class", "object")),
                          get("confidence", "1"), get("xmin"), get("ymin"), get("xmax"), get("ymax"),
                          "%s line %d" % (where, n + 2)))
    return boxes


def _wide_groups(image, cells, where):
    boxes = []
    cells = [c for c in cells]
    while cells and cells[-1] == "":
        cells.pop()
    for start in range(0, len(cells), 6):
        group = cells[start:start + 6]
        if all(c == "" for c in group):
            continue
        if len(group) < 6 or "" in group:
            raise BoxesError("%s: a box of %s has %d of its 6 values (xmin,ymin,xmax,ymax,confidence,class); "
                             "complete or remove it." % (where, image, len([c for c in group if c != ""])))
        xmin, ymin, xmax, ymax, confidence, klass = group
        boxes.append(_box(image, "0", _class_name(klass), confidence, xmin, ymin, xmax, ymax, where))
    return boxes


def _parse_wide(rows, where):
    boxes = []
    for n, row in enumerate(rows):
        boxes += _wide_groups(row[0], row[1:], "%s line %d" % (where, n + 2))
    return boxes


def _parse_transposed(rows, where):
    images = rows[0][1:]
    boxes = []
    for i, image in enumerate(images):
        cells = [row[i + 1] if i + 1 < len(row) else "" for row in rows[1:]]
        keys = [row[0].lower().split(".")[0] for row in rows[1:]]
        if keys[:6] != WIDE_GROUP:
            raise BoxesError("%s: the first column must repeat %s; re-export the boxes." % (where, ",".join(WIDE_GROUP)))
        boxes += _wide_groups(image, cells, "%s column %s" % (where, image))
    return boxes


def read_boxes(path):
    """Boxes from a CSV file in any known layout."""
    path = "%s" % (path.getPath() if hasattr(path, "getPath") else path)
    handle = open(path, "r")
    try:
        return parse_rows(list(csv.reader(handle)), path)
    finally:
        handle.close()


def format_number(value):
    """Integers without a trailing '.0', other values with up to 6 significant digits."""
    value = float(value)
    return str(int(value)) if value == int(value) else "%.6g" % value


def box_name(box):
    """ROI name of a box: 'class:confidence'."""
    return "%s:%.2f" % (box["class"], float(box["confidence"]))


def image_matches(box_image, title):
    """Whether a box's image column refers to an image titled `title` (extensions ignored)."""
    def stem(name):
        name = str(name).replace("\\", "/").split("/")[-1]
        return name.rsplit(".", 1)[0] if "." in name else name
    return not box_image or stem(box_image) == stem(title)
