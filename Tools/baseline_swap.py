#!/usr/bin/env python3
"""The crude classical face swap (DESIGN.md section 7), to calibrate Tools/swap_eval.py.

    .venv-eval/bin/python Tools/baseline_swap.py --guise .build/release/guise \
        --source S --source-face I --target T --target-face J -o OUT [--quiet]

The arguments after --guise are those of `guise swap`, so both run through one command
template. Steps: the 468-point face mesh of both faces (`guise landmarks --json`, x and y);
Delaunay triangles of the target's points; each source triangle warped affinely onto its
target triangle; the warped face's Lab mean and standard deviation matched to the target's
inside the mesh's hull; cv2.seamlessClone (NORMAL_CLONE) with the hull as mask (or, with
--blend alpha, a feathered alpha blend inside the hull). OUT is written only when every
step succeeded.
"""
import argparse, json, os, subprocess, sys, tempfile

import cv2
import numpy as np


def fail(msg):
    print(f"baseline_swap: error: {msg}", file=sys.stderr)
    sys.exit(1)


def mesh(guise, path, face):
    r = subprocess.run([guise, "landmarks", path, "--face", str(face), "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"guise landmarks {path}: {r.stderr.strip()}")
    return np.array([[p["x"], p["y"]] for p in json.loads(r.stdout)["mesh"]], dtype=np.float64)


def delaunay(points, size):
    """Triangles of the points as index triples (cv2.Subdiv2D gives coordinates, mapped back)."""
    h, w = size
    lo = np.minimum(points.min(axis=0), 0) - 1
    hi = np.maximum(points.max(axis=0), (w, h)) + 2
    sub = cv2.Subdiv2D((int(np.floor(lo[0])), int(np.floor(lo[1])), int(np.ceil(hi[0] - lo[0])), int(np.ceil(hi[1] - lo[1]))))
    index = {}
    for i, p in enumerate(points):
        key = (float(np.float32(p[0])), float(np.float32(p[1])))
        if key in index:
            continue  # a duplicate point adds no triangle
        index[key] = i
        sub.insert(key)
    tris = []
    for t in sub.getTriangleList():
        try:
            ids = [index[(float(np.float32(t[k])), float(np.float32(t[k + 1])))] for k in (0, 2, 4)]
        except KeyError:
            continue  # a triangle touching Subdiv2D's outer virtual vertices
        tris.append(ids)
    return tris


def warp_triangles(src, s_pts, t_pts, tris, size):
    h, w = size
    out = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    srcf = src.astype(np.float32)
    for tri in tris:
        ts, tt = s_pts[tri].astype(np.float32), t_pts[tri].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(np.round(tt).astype(np.int32))
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw + 1, w), min(y + bh + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        sx, sy, sw, sh = cv2.boundingRect(np.round(ts).astype(np.int32))
        sx0, sy0 = max(sx - 1, 0), max(sy - 1, 0)
        sx1, sy1 = min(sx + sw + 2, src.shape[1]), min(sy + sh + 2, src.shape[0])
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        m = cv2.getAffineTransform((ts - (sx0, sy0)).astype(np.float32), (tt - (x0, y0)).astype(np.float32))
        patch = cv2.warpAffine(srcf[sy0:sy1, sx0:sx1], m, (x1 - x0, y1 - y0),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillConvexPoly(mask, np.round(tt - (x0, y0)).astype(np.int32), 1.0)
        region = mask > 0
        out[y0:y1, x0:x1][region] = patch[region]
        cover[y0:y1, x0:x1][region] = 1
    return out, cover > 0


def colour_match(face, target, mask):
    """Lab mean/std of `face` inside the mask moved to those of `target` there."""
    f = cv2.cvtColor(np.clip(face, 0, 255).astype(np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
    t = cv2.cvtColor(target, cv2.COLOR_BGR2LAB).astype(np.float32)
    fm, fs = f[mask].mean(axis=0), f[mask].std(axis=0) + 1e-6
    tm, ts = t[mask].mean(axis=0), t[mask].std(axis=0)
    f = (f - fm) / fs * ts + tm
    return cv2.cvtColor(np.clip(f, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guise", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--source-face", type=int, default=0)
    ap.add_argument("--target", required=True)
    ap.add_argument("--target-face", type=int, default=0)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--blend", choices=("clone", "alpha"), default="clone",
                    help="seamlessClone (the baseline) or a feathered alpha blend")
    a = ap.parse_args()
    src, tgt = cv2.imread(a.source, cv2.IMREAD_COLOR), cv2.imread(a.target, cv2.IMREAD_COLOR)
    if src is None or tgt is None:
        fail(f"cannot read {a.source if src is None else a.target}")
    s_pts, t_pts = mesh(a.guise, a.source, a.source_face), mesh(a.guise, a.target, a.target_face)
    size = tgt.shape[:2]
    tris = delaunay(t_pts, size)
    warped, cover = warp_triangles(src, s_pts, t_pts, tris, size)
    hull = np.zeros(size, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(t_pts).astype(np.int32)), 255)
    # seamlessClone needs the mask clear of the image border, and only covered pixels are face.
    hull[:1, :] = hull[-1:, :] = 0
    hull[:, :1] = hull[:, -1:] = 0
    hull &= (cover * 255).astype(np.uint8)
    inside = hull > 0
    if inside.sum() < 16:
        fail("the target face is too small or outside the photo")
    face = colour_match(warped, tgt, inside)
    x, y, w, h = cv2.boundingRect(hull)
    if a.blend == "clone":
        cloned = cv2.seamlessClone(face, tgt, hull, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
        # seamlessClone rewrites its whole bounding box, off by a level here and there outside
        # the mask; the background stays the target's own.
        result = np.where(inside[:, :, None], cloned, tgt)
    else:
        # Feathered alpha: the hull eroded and blurred by about 5 % of the face's width, so
        # the weight reaches zero inside the hull.
        k = max(3, int(0.05 * w) | 1)
        alpha = cv2.erode(hull, np.ones((k, k), np.uint8)).astype(np.float32) / 255.0
        alpha = cv2.GaussianBlur(alpha, (2 * k + 1, 2 * k + 1), 0)[:, :, None] * inside[:, :, None]
        result = np.clip(face * alpha + tgt * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
    ext = os.path.splitext(a.out)[1] or ".png"
    fd, tmp = tempfile.mkstemp(suffix=ext, dir=os.path.dirname(os.path.abspath(a.out)))
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, result):
            fail(f"cannot write {a.out}")
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not a.quiet:
        print(f"baseline_swap: wrote {a.out}")


if __name__ == "__main__":
    main()
