#!/usr/bin/env python3
"""A contact sheet of face swaps: one row per swap, source | target | result.

    contact_sheet.py --swaps SWAPS.json --out SHEET.png [--height 192] [--full] [--columns 1]
    contact_sheet.py --row SOURCE TARGET RESULT [LABEL] [--row ...] --out SHEET.png [--crop-faces]

SWAPS.json is swap_eval.py's input. Where a swap carries `source_box` / `target_box`
([x, y, w, h], as Tools/run_swaps.py writes them), each cell is cropped around that face
(twice its size) unless --full; the result is cropped like its target. Every cell is scaled
to --height; a label (the persons, or LABEL) is written above each row. A missing result is
drawn as a grey cell. With --crop-faces, --row cells are cropped to the faces dlib's HOG
detector finds in the source and in the target (all of them, with a margin; the result is
cropped like its target).
"""
import argparse, json, os, sys, tempfile

import cv2
import numpy as np

LABEL_H = 22


def fail(msg):
    print(f"contact_sheet: error: {msg}", file=sys.stderr)
    sys.exit(1)


def load(path):
    im = cv2.imread(path, cv2.IMREAD_COLOR) if path and os.path.exists(path) else None
    return im


def crop(im, box, margin=0.5):
    if im is None or box is None:
        return im
    x, y, w, h = box
    s = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    x1, y1 = int(round(cx + s / 2)), int(round(cy + s / 2))
    pad = max(0, -x0, -y0, x1 - im.shape[1], y1 - im.shape[0])
    if pad:
        im = cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    return im[y0 + pad:y1 + pad, x0 + pad:x1 + pad]


def faces_box(im):
    """The union of dlib HOG's faces in `im`, grown by 0.6 of the largest face on each side."""
    import dlib
    if im is None:
        return None
    found = dlib.get_frontal_face_detector()(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), 1)
    if len(found) == 0:
        return None
    x0 = min(r.left() for r in found); y0 = min(r.top() for r in found)
    x1 = max(r.right() for r in found); y1 = max(r.bottom() for r in found)
    m = 0.6 * max(max(r.width(), r.height()) for r in found)
    x0, y0 = max(0, int(x0 - m)), max(0, int(y0 - m))
    x1, y1 = min(im.shape[1], int(x1 + m)), min(im.shape[0], int(y1 + m))
    return x0, y0, x1, y1


def cut(im, box):
    return im if im is None or box is None else im[box[1]:box[3], box[0]:box[2]]


def cell(im, height):
    if im is None or im.size == 0:
        return np.full((height, height, 3), 128, np.uint8)
    s = height / im.shape[0]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(im, (max(1, round(im.shape[1] * s)), height), interpolation=interp)


def row_image(cells, label, height, gap=4):
    body = [cell(c, height) for c in cells]
    width = sum(c.shape[1] for c in body) + gap * (len(body) - 1)
    out = np.full((height + LABEL_H, width, 3), 255, np.uint8)
    x = 0
    for c in body:
        out[LABEL_H:, x:x + c.shape[1]] = c
        x += c.shape[1] + gap
    if label:
        cv2.putText(out, label, (4, LABEL_H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def stack(rows, columns, gap=8):
    """Rows laid out in `columns` columns, each padded white to the widest."""
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, w - r.shape[1] + gap), (0, 0)), constant_values=255) for r in rows]
    per = -(-len(rows) // columns)
    cols = []
    for c in range(columns):
        part = rows[c * per:(c + 1) * per]
        if not part:
            break
        part += [np.full_like(rows[0], 255)] * (per - len(part))
        cols.append(np.vstack(part))
    return np.hstack(cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--swaps")
    ap.add_argument("--row", nargs="+", action="append", default=[], metavar="PATH")
    ap.add_argument("--out", required=True)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--columns", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="whole photos, not face crops")
    ap.add_argument("--crop-faces", action="store_true", help="crop --row cells to the faces dlib finds")
    a = ap.parse_args()
    specs = []
    if a.swaps:
        with open(a.swaps) as f:
            for sw in json.load(f):
                sb = None if a.full else sw.get("source_box")
                tb = None if a.full else sw.get("target_box")
                specs.append(([crop(load(sw["source"]), sb), crop(load(sw["target"]), tb), crop(load(sw["result"]), tb)],
                              f"{sw['person_source']} -> {sw['person_target']}"))
    for r in a.row:
        if len(r) not in (3, 4):
            fail("--row takes SOURCE TARGET RESULT [LABEL]")
        for p in r[:2]:
            if load(p) is None:
                fail(f"cannot read {p}")
        cells = [load(p) for p in r[:3]]
        if a.crop_faces:
            sb, tb = faces_box(cells[0]), faces_box(cells[1])
            cells = [cut(cells[0], sb), cut(cells[1], tb), cut(cells[2], tb)]
        specs.append((cells, r[3] if len(r) == 4 else ""))
    if not specs:
        fail("nothing to draw: give --swaps or --row")
    sheet = stack([row_image(c, label, a.height) for c, label in specs], max(1, a.columns))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(a.out)))
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, sheet):
            fail(f"cannot write {a.out}")
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


if __name__ == "__main__":
    main()
