#!/usr/bin/env python3
"""Measures `guise edit`'s identity and appearance guidance.

identity: for each (photo, reference) pair of portraits, the face mask from `guise segment --what
  face`, then `guise edit --mask face.png --identity-from REF --strength S`. dlib distance (`guise
  identity`) of the photo's face to the reference's before and after, and of the result to the
  original photo (how far it moved); pixels outside the mask compared bit for bit.
appearance: a box on a photo and a patch cut from another; `guise edit --box --appearance-from
  PATCH`. ΔE (CIE76) between the mean Lab colour of the box and of the patch, and the ratio of the
  Laplacian variance (grey) inside the box (1-px rim left out) to the patch's, before and after;
  pixels outside the box compared bit for bit.
Both write a contact sheet (input | reference | result) to --sheet.

  python Tools/edit_guides_eval.py identity --guise .build/release/guise [--sheet out.png] [-- edit args]
  python Tools/edit_guides_eval.py appearance --guise .build/release/guise [--sheet out.png] [-- edit args]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

IDENTITY_PAIRS = [("astronaut.png", "obama.jpg"), ("obama.jpg", "astronaut.png"),
                  ("biden.jpg", "grace_hopper.jpg"), ("grace_hopper.jpg", "biden.jpg")]

# Patches: (name, photo, x, y, w, h); cases: (photo, box x, y, w, h, patch name).
PATCHES = [("wood", "coffee.png", 480, 240, 100, 140), ("grass", "messi5.jpg", 20, 276, 180, 36),
           ("fur", "chelsea.png", 10, 150, 100, 140), ("suit", "astronaut.png", 20, 440, 90, 70)]
APPEARANCE_CASES = [("chelsea.png", 40, 180, 120, 100, "wood"), ("coffee.png", 440, 200, 140, 150, "grass"),
                    ("astronaut.png", 60, 330, 140, 140, "fur"), ("messi5.jpg", 60, 60, 160, 110, "grass"),
                    ("chelsea.png", 250, 40, 120, 100, "suit")]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def distance(guise, a, b):
    return json.loads(run([guise, "identity", a, b, "--json"]))["distance"]


def exact_outside(a_path, b_path, mask):
    a = cv2.imread(a_path, cv2.IMREAD_UNCHANGED)
    b = cv2.imread(b_path, cv2.IMREAD_UNCHANGED)
    if a.shape != b.shape:
        return False
    out = mask == 0
    return bool(np.array_equal(a[out], b[out]))


def tile(images, height=256):
    row = []
    for im in images:
        s = height / im.shape[0]
        row.append(cv2.resize(im, (max(1, int(round(im.shape[1] * s))), height), interpolation=cv2.INTER_AREA))
        row.append(np.full((height, 4, 3), 255, np.uint8))
    return np.hstack(row[:-1])


def sheet(rows, path):
    width = max(r.shape[1] for r in rows)
    rows = [np.hstack([r, np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)]) for r in rows]
    out = []
    for r in rows:
        out += [r, np.full((4, width, 3), 255, np.uint8)]
    cv2.imwrite(path, np.vstack(out[:-1]))


def identity(args, extra):
    tmp = tempfile.mkdtemp()
    rows, results = [], []
    for photo, ref in IDENTITY_PAIRS:
        p, r = os.path.join(args.samples, photo), os.path.join(args.samples, ref)
        name = f"{os.path.splitext(photo)[0]}-from-{os.path.splitext(ref)[0]}"
        mask_path = os.path.join(tmp, name + "-mask.png")
        run([args.guise, "segment", p, "--what", "face", "-o", mask_path, "--quiet"])
        out = os.path.join(tmp, name + ".png")
        t = time.time()
        rep = json.loads(run([args.guise, "edit", p, "--mask", mask_path, "--identity-from", r, "--strength", str(args.strength),
                              "-o", out, "--json", "--quiet"] + extra))
        seconds = time.time() - t
        before, after = distance(args.guise, p, r), distance(args.guise, out, r)
        moved = distance(args.guise, out, p)
        mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
        exact = exact_outside(p, out, mask)
        res = dict(case=name, before=before, after=after, moved=moved, exact=exact, seconds=seconds,
                   mask=rep["maskFraction"])
        results.append(res)
        print(f"| {name} | {before:.3f} | {after:.3f} | {moved:.3f} | {'yes' if exact else 'NO'} | {seconds:.0f} s |", flush=True)
        img, ref_img, res_img = cv2.imread(p), cv2.imread(r), cv2.imread(out)
        ys, xs = np.nonzero(mask)
        m = int(0.25 * max(np.ptp(ys), np.ptp(xs)))
        y0, y1 = max(0, ys.min() - m), min(img.shape[0], ys.max() + m)
        x0, x1 = max(0, xs.min() - m), min(img.shape[1], xs.max() + m)
        rows.append(tile([img[y0:y1, x0:x1], ref_img, res_img[y0:y1, x0:x1]]))
    if args.sheet:
        sheet(rows, args.sheet)
    return results


def lab_mean(img, mask=None):
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2Lab)
    return lab[mask > 0].mean(0) if mask is not None else lab.reshape(-1, 3).mean(0)


def lap_var(img, mask=None):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    if mask is None:
        return float(lap[1:-1, 1:-1].var())
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8))
    return float(lap[inner > 0].var())


def appearance(args, extra):
    tmp = tempfile.mkdtemp()
    patches = {}
    for name, photo, x, y, w, h in PATCHES:
        im = cv2.imread(os.path.join(args.samples, photo))
        path = os.path.join(tmp, name + ".png")
        cv2.imwrite(path, im[y:y + h, x:x + w])
        patches[name] = path
    rows, results = [], []
    for photo, x, y, w, h, pname in APPEARANCE_CASES:
        p = os.path.join(args.samples, photo)
        name = f"{os.path.splitext(photo)[0]}-{pname}"
        out = os.path.join(tmp, name + ".png")
        t = time.time()
        run([args.guise, "edit", p, "--box", f"{x},{y},{w},{h}", "--appearance-from", patches[pname], "--strength", str(args.strength),
             "-o", out, "--quiet"] + extra)
        seconds = time.time() - t
        img, res_img, patch = cv2.imread(p), cv2.imread(out), cv2.imread(patches[pname])
        mask = np.zeros(img.shape[:2], np.uint8)
        mask[y:y + h, x:x + w] = 255
        pm, pl = lab_mean(patch), lap_var(patch)
        de_before = float(np.linalg.norm(lab_mean(img, mask) - pm))
        de_after = float(np.linalg.norm(lab_mean(res_img, mask) - pm))
        lr_before, lr_after = lap_var(img, mask) / pl, lap_var(res_img, mask) / pl
        exact = exact_outside(p, out, mask)
        results.append(dict(case=name, de_before=de_before, de_after=de_after, lap_before=lr_before, lap_after=lr_after, exact=exact))
        print(f"| {name} | {de_before:.1f} | {de_after:.1f} | {lr_before:.2f} | {lr_after:.2f} | {'yes' if exact else 'NO'} | {seconds:.0f} s |", flush=True)
        m = 24
        y0, y1, x0, x1 = max(0, y - m), min(img.shape[0], y + h + m), max(0, x - m), min(img.shape[1], x + w + m)
        rows.append(tile([img[y0:y1, x0:x1], patch, res_img[y0:y1, x0:x1]]))
    if args.sheet:
        sheet(rows, args.sheet)
    return results


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["identity", "appearance"])
    ap.add_argument("--guise", default=".build/release/guise")
    ap.add_argument("--samples", default="Samples")
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--sheet")
    args = ap.parse_args(argv)
    if args.what == "identity":
        print("| case | dlib to reference before | after | result to original | exact outside | time |\n|---|---:|---:|---:|---|---:|")
        identity(args, extra)
    else:
        print("| case | ΔE of means before | after | lap ratio before | after | exact outside | time |\n|---|---:|---:|---:|---:|---|---:|")
        appearance(args, extra)


if __name__ == "__main__":
    main()
