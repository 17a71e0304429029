#!/usr/bin/env python3
"""The `guise edit` contact sheet for `make demo`: per row, input (hole erased to grey) | mask |
OpenCV Telea | Guise fill, and a harmonise row: a pasted colour cast | mask | the photo without the
cast | Guise harmonised. Photos the prior never trained on (astronaut, chelsea, messi5).

  python Tools/edit_sheet.py --guise .build/release/guise --out demo-out/edit-sheet.png
"""
import argparse
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

CELL = 256


def guise(binary, args):
    r = subprocess.run([binary, "edit"] + args + ["--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"guise edit {' '.join(args)} failed: {r.stderr.strip()}")


def crop(img, box, pad):
    """A square crop around box (x, y, w, h) with `pad` context, inside the photo."""
    x, y, w, h = box
    side = min(max(w, h) + 2 * pad, img.shape[0], img.shape[1])
    cx, cy = x + w // 2, y + h // 2
    x0 = int(np.clip(cx - side // 2, 0, img.shape[1] - side))
    y0 = int(np.clip(cy - side // 2, 0, img.shape[0] - side))
    return lambda im: cv2.resize(im[y0:y0 + side, x0:x0 + side], (CELL, CELL), interpolation=cv2.INTER_AREA)


def label(cell, text):
    cell = cell.copy()
    cv2.rectangle(cell, (0, 0), (CELL, 20), (0, 0, 0), -1)
    cv2.putText(cell, text, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def stroke(h, w, points, thick):
    m = np.zeros((h, w), np.uint8)
    for a, b in zip(points, points[1:]):
        cv2.line(m, a, b, 255, thick)
    return m


def fill_row(binary, tmp, photo, mask, name, names, extra):
    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    erased = img.copy()
    erased[mask > 0] = 128
    inp, mp, out = (os.path.join(tmp, f"{name}-{s}.png") for s in ("in", "mask", "out"))
    cv2.imwrite(inp, erased)
    cv2.imwrite(mp, mask)
    guise(binary, [inp, "--mask", mp, "-o", out] + extra)
    telea = cv2.inpaint(erased, mask, 3, cv2.INPAINT_TELEA)
    ys, xs = np.nonzero(mask)
    c = crop(img, (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1), 40)
    cells = [erased, cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), telea, cv2.imread(out, cv2.IMREAD_COLOR)]
    return [label(c(x), t) for x, t in zip(cells, names)]


def harmonize_row(binary, tmp, photo, box):
    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    x, y, w, h = box
    cast = img.astype(np.int32)
    cast[y:y + h, x:x + w, 2] += 30
    cast = np.clip(cast, 0, 255).astype(np.uint8)
    inp, out = os.path.join(tmp, "harm-in.png"), os.path.join(tmp, "harm-out.png")
    cv2.imwrite(inp, cast)
    guise(binary, [inp, "--box", f"{x},{y},{w},{h}", "--harmonize", "--strength", "0.4", "-o", out])
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[y:y + h, x:x + w] = 255
    c = crop(img, box, 40)
    cells = [cast, cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), img, cv2.imread(out, cv2.IMREAD_COLOR)]
    return [label(c(im), t) for im, t in zip(cells, ["input: +30 red in the box", "mask", "photo without the cast", "Guise harmonise 0.4"])]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--guise", default=".build/release/guise")
    p.add_argument("--samples", default="Samples")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    names = ["input (hole erased)", "mask", "OpenCV Telea", "Guise fill"]
    with tempfile.TemporaryDirectory(prefix="guise-edit-sheet-") as tmp:
        chelsea = os.path.join(a.samples, "chelsea.png")
        messi = os.path.join(a.samples, "messi5.jpg")
        astronaut = os.path.join(a.samples, "astronaut.png")
        rows = []
        m = np.zeros((300, 451), np.uint8)
        m[150:215, 300:380] = 255
        rows.append(fill_row(a.guise, tmp, chelsea, m, "chelsea", names, []))
        h, w = cv2.imread(messi).shape[:2]
        rows.append(fill_row(a.guise, tmp, messi, stroke(h, w, [(60, 250), (140, 215), (200, 240), (250, 300)], 18),
                             "messi", names, ["--seed", "1"]))
        m = np.zeros((512, 512), np.uint8)
        m[330:420, 330:430] = 255
        rows.append(fill_row(a.guise, tmp, astronaut, m, "astronaut", names, []))
        rows.append(harmonize_row(a.guise, tmp, chelsea, (90, 40, 90, 80)))
    sheet = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    cv2.imwrite(a.out, sheet)
    print(f"{a.out}: {len(rows)} rows (input | mask | baseline | Guise)")


if __name__ == "__main__":
    main()
