#!/usr/bin/env python3
"""Measures `guise edit` against OpenCV's inpainting (Telea, Navier-Stokes), and its harmonise mode.

fill: for each photo, free-form stroke masks and boxes covering 5-25 % of it (seeded). The hole is
erased to grey before anyone sees it. Per case and method:
  lap      Laplacian variance inside the mask (eroded 1 px) / in a 15-px band outside it
  lap_b    the same after a Gaussian blur of sigma 1.5 (noise on a blurred fill does not count)
  psnr     PSNR to the original inside the mask (RGB, 8-bit)
  seam     mean gradient magnitude on the 1-px ring outside the mask / the original's there
harmonize: +30 in one channel inside a box; after `--harmonize`, the cast left in the box's 8-px
  inner boundary band (mean of result - original, in the cast channel, 8-bit units), and the SSIM
  (grey) of the box's interior to the un-cast photo.

  python Tools/edit_eval.py fill --guise .build/release/guise --photos Samples/astronaut.png ... [-- edit args]
  python Tools/edit_eval.py harmonize --guise .build/release/guise --photos ...
  python Tools/edit_eval.py gaze --photos Samples/astronaut.png ...
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


def stroke_mask(h, w, rng, target):
    """Thick random brush strokes until `target` of the photo is covered."""
    m = np.zeros((h, w), np.uint8)
    thick = max(6, int(min(h, w) * rng.uniform(0.05, 0.09)))
    while m.mean() / 255 < target:
        x, y = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(3, 7)):
            angle += rng.uniform(-1.2, 1.2)
            length = rng.uniform(0.08, 0.2) * min(h, w)
            nx = float(np.clip(x + length * np.cos(angle), 0.05 * w, 0.95 * w))
            ny = float(np.clip(y + length * np.sin(angle), 0.05 * h, 0.95 * h))
            cv2.line(m, (int(x), int(y)), (int(nx), int(ny)), 255, thick)
            x, y = nx, ny
            if m.mean() / 255 >= target:
                break
    return m


def box_mask(h, w, rng, target):
    aspect = rng.uniform(0.7, 1.4)
    bw = int(round(np.sqrt(target * h * w * aspect)))
    bh = int(round(target * h * w / bw))
    bw, bh = min(bw, w - 2), min(bh, h - 2)
    x = int(rng.integers(int(0.1 * (w - bw)), int(0.9 * (w - bw)) + 1))
    y = int(rng.integers(int(0.1 * (h - bh)), int(0.9 * (h - bh)) + 1))
    m = np.zeros((h, w), np.uint8)
    m[y:y + bh, x:x + bw] = 255
    return m


def cases(photo, seed):
    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    out = []
    for kind, target in [("box", 0.08), ("box", 0.18), ("stroke", 0.08), ("stroke", 0.18)]:
        m = box_mask(h, w, rng, target) if kind == "box" else stroke_mask(h, w, rng, target)
        out.append((f"{os.path.splitext(os.path.basename(photo))[0]}-{kind}{int(target * 100)}", img, m))
    return out


def grey(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)


def lap_ratio(img, mask, blur=0.0):
    g = grey(img)
    if blur > 0:
        g = cv2.GaussianBlur(g, (0, 0), blur)
    lap = cv2.Laplacian(g, cv2.CV_64F)
    k = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    inside = cv2.erode(mask, k(1)) > 0
    band = (cv2.dilate(mask, k(15)) > 0) & ~(cv2.dilate(mask, k(1)) > 0)
    return lap[inside].var() / max(lap[band].var(), 1e-9)


def psnr(a, b, mask):
    d = (a.astype(np.float64) - b.astype(np.float64))[mask > 0]
    mse = (d ** 2).mean()
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


def grad_mag(img):
    g = grey(img)
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3) / 8
    return np.hypot(gx, gy)


def seam_ratio(img, orig, mask):
    ring = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & ~(mask > 0)
    return grad_mag(img)[ring].mean() / max(grad_mag(orig)[ring].mean(), 1e-9)


def run_guise(args, inp, mask_path, out, extra):
    cmd = [args.guise, "edit", inp, "--mask", mask_path, "-o", out, "--quiet", "--json"] + extra
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"guise failed: {' '.join(cmd)}\n{r.stderr}")
    return time.time() - t, json.loads(r.stdout)


def fill(args, extra):
    tmp = args.keep or tempfile.mkdtemp(prefix="guise-edit-eval-")
    os.makedirs(tmp, exist_ok=True)
    rows = []
    for photo in args.photos:
        for name, img, m in cases(photo, args.seed):
            if args.only and args.only not in name:
                continue
            erased = img.copy()
            erased[m > 0] = 128
            inp, mp, out = (os.path.join(tmp, f"{name}-{s}.png") for s in ("input", "mask", "guise"))
            cv2.imwrite(inp, erased)
            cv2.imwrite(mp, m)
            secs, _ = run_guise(args, inp, mp, out, extra)
            results = {
                "guise": cv2.imread(out, cv2.IMREAD_COLOR),
                "telea": cv2.inpaint(erased, m, 3, cv2.INPAINT_TELEA),
                "ns": cv2.inpaint(erased, m, 3, cv2.INPAINT_NS),
            }
            cv2.imwrite(os.path.join(tmp, f"{name}-telea.png"), results["telea"])
            outside = m == 0
            assert np.array_equal(results["guise"][outside], erased[outside]), f"{name}: pixels outside the mask changed"
            row = {"case": name, "cover": m.mean() / 255, "secs": secs}
            for k, r in results.items():
                row[k] = dict(lap=lap_ratio(r, m), lap_b=lap_ratio(r, m, 1.5), psnr=psnr(r, img, m), seam=seam_ratio(r, img, m))
            row["orig"] = dict(lap=lap_ratio(img, m), lap_b=lap_ratio(img, m, 1.5))
            rows.append(row)
            g, t = row["guise"], row["telea"]
            print(f"{name:22s} {row['cover'] * 100:4.1f}%  guise lap {g['lap']:.2f} lap_b {g['lap_b']:.2f} psnr {g['psnr']:.2f} seam {g['seam']:.2f}"
                  f" | telea lap {t['lap']:.3f} psnr {t['psnr']:.2f} seam {t['seam']:.2f} | orig lap {row['orig']['lap']:.2f} | {secs:.1f}s", flush=True)
    print()
    print("| case | cover | Guise lap | Guise lap σ1.5 | Guise PSNR | Telea PSNR | NS PSNR | ΔPSNR | Guise seam | Telea seam | Telea lap | time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        g, t, n = r["guise"], r["telea"], r["ns"]
        print(f"| {r['case']} | {r['cover'] * 100:.1f}% | {g['lap']:.2f} | {g['lap_b']:.2f} | {g['psnr']:.2f} | {t['psnr']:.2f} | {n['psnr']:.2f} | "
              f"{g['psnr'] - t['psnr']:+.2f} | {g['seam']:.2f} | {t['seam']:.2f} | {t['lap']:.3f} | {r['secs']:.1f} s |")
    lap = np.array([r["guise"]["lap"] for r in rows])
    lapb = np.array([r["guise"]["lap_b"] for r in rows])
    dp = np.array([r["guise"]["psnr"] - r["telea"]["psnr"] for r in rows])
    seam = np.array([r["guise"]["seam"] for r in rows])
    print()
    print(f"lap ratio mean {lap.mean():.2f}, in 0.6-1.5: {((lap >= 0.6) & (lap <= 1.5)).mean() * 100:.0f}% | "
          f"blurred mean {lapb.mean():.2f}, >= 0.5: {(lapb >= 0.5).mean() * 100:.0f}% | "
          f"PSNR - Telea mean {dp.mean():+.2f} dB, >= -1: {(dp >= -1).mean() * 100:.0f}% | "
          f"seam mean {seam.mean():.2f}, <= 1.15: {(seam <= 1.15).mean() * 100:.0f}% | "
          f"Telea lap mean {np.mean([r['telea']['lap'] for r in rows]):.3f}")
    print(f"files in {tmp}")


def ssim(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s[5:-5, 5:-5].mean()


def harmonize(args, extra):
    tmp = args.keep or tempfile.mkdtemp(prefix="guise-harm-eval-")
    os.makedirs(tmp, exist_ok=True)
    rows = []
    for photo in args.photos:
        img = cv2.imread(photo, cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        rng = np.random.default_rng(args.seed)
        for ch, target in [(2, 0.08), (1, 0.15), (0, 0.2)]:  # BGR: red, green, blue casts
            m = box_mask(h, w, rng, target)
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            cast = img.copy().astype(np.int32)
            cast[y0:y1, x0:x1, ch] += 30
            cast = np.clip(cast, 0, 255).astype(np.uint8)
            name = f"{os.path.splitext(os.path.basename(photo))[0]}-{'bgr'[ch]}{int(target * 100)}"
            inp, out = os.path.join(tmp, f"{name}-input.png"), os.path.join(tmp, f"{name}-guise.png")
            cv2.imwrite(inp, cast)
            cmd = [args.guise, "edit", inp, "--box", f"{x0},{y0},{x1 - x0},{y1 - y0}", "--harmonize", "-o", out, "--quiet"] + extra
            t = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(r.stderr)
            secs = time.time() - t
            res = cv2.imread(out, cv2.IMREAD_COLOR)
            band = np.zeros((h, w), bool)
            band[y0:y1, x0:x1] = True
            band[y0 + 8:y1 - 8, x0 + 8:x1 - 8] = False
            before = (cast[..., ch].astype(float) - img[..., ch])[band].mean()
            after = (res[..., ch].astype(float) - img[..., ch])[band].mean()
            after_abs = np.abs(res.astype(float) - img)[band].mean()
            s = ssim(grey(res)[y0:y1, x0:x1], grey(img)[y0:y1, x0:x1])
            outside = m == 0
            assert np.array_equal(res[outside], cast[outside])
            rows.append((name, before, after, after_abs, s, secs))
            print(f"{name:20s} cast in band before {before:5.1f} after {after:5.1f} (|Δ| all channels {after_abs:.1f}) SSIM {s:.3f} {secs:.1f}s", flush=True)
    print()
    print("| case | cast before | cast left in band | mean abs error in band | SSIM | time |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, b, a, aa, s, secs in rows:
        print(f"| {n} | {b:.1f} | {a:.2f} | {aa:.2f} | {s:.3f} | {secs:.1f} s |")
    print(f"\nmean cast left {np.mean([r[2] for r in rows]):.2f}, mean SSIM {np.mean([r[4] for r in rows]):.3f}; files in {tmp}")


LEFT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
RIGHT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]


def landmarks(args, path):
    r = subprocess.run([args.guise, "landmarks", path, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"guise landmarks {path}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def gaze(args, extra):
    """Irises shifted sideways (each eye's content moved by a fraction of its width inside the eye
    outline), then `--gaze camera`: iris centres measured by the iris network before and after."""
    tmp = args.keep or tempfile.mkdtemp(prefix="guise-gaze-eval-")
    os.makedirs(tmp, exist_ok=True)
    rows = []
    for photo in args.photos:
        img = cv2.imread(photo, cv2.IMREAD_COLOR)
        d = landmarks(args, photo)
        mesh = np.array([[q["x"], q["y"]] for q in d["mesh"]])
        for shift in (0.2, -0.2):
            name = f"{os.path.splitext(os.path.basename(photo))[0]}-{'right' if shift > 0 else 'left'}{abs(int(shift * 100))}"
            shifted = img.copy()
            eyes = np.zeros(img.shape[:2], np.uint8)
            widths = []
            for poly, (a, b) in ((LEFT_EYE, (33, 133)), (RIGHT_EYE, (362, 263))):
                ew = float(np.linalg.norm(mesh[a] - mesh[b]))
                widths.append(ew)
                moved = cv2.warpAffine(img, np.float32([[1, 0, shift * ew], [0, 1, 0]]), (img.shape[1], img.shape[0]),
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                m = np.zeros(img.shape[:2], np.uint8)
                cv2.fillPoly(m, [np.round(mesh[poly]).astype(np.int32)], 255)
                m = cv2.erode(m, np.ones((2, 2), np.uint8))
                shifted[m > 0] = moved[m > 0]
                cv2.fillPoly(eyes, [np.round(mesh[poly]).astype(np.int32)], 255)
            inp, out = os.path.join(tmp, f"{name}-input.png"), os.path.join(tmp, f"{name}-guise.png")
            cv2.imwrite(inp, shifted)
            t = time.time()
            r = subprocess.run([args.guise, "edit", inp, "--gaze", "camera", "-o", out, "--quiet"] + extra, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(r.stderr)
            secs = time.time() - t
            before, after = landmarks(args, inp), landmarks(args, out)
            ew = np.mean(widths)
            h0 = (before["gazeLeft"]["x"], before["gazeRight"]["x"])
            h1 = (after["gazeLeft"]["x"], after["gazeRight"]["x"])
            dy = max(abs(after[k][0]["y"] - before[k][0]["y"]) for k in ("irisLeft", "irisRight")) / ew
            grown = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(0.2 * ew) + 1,) * 2))
            res = cv2.imread(out, cv2.IMREAD_COLOR)
            exact = np.array_equal(res[grown == 0], shifted[grown == 0])
            rows.append((name, h0, h1, dy, exact, secs))
            print(f"{name:22s} h before {h0[0]:+.3f} {h0[1]:+.3f} after {h1[0]:+.3f} {h1[1]:+.3f}  vertical move {dy:.3f} eye widths  exact outside {exact}  {secs:.1f}s", flush=True)
    print()
    print("| case | horizontal before (L, R) | after (L, R) | vertical move | exact beyond grown eyes | time |")
    print("|---|---|---|---:|---|---:|")
    for n, h0, h1, dy, ex, secs in rows:
        print(f"| {n} | {h0[0]:+.3f}, {h0[1]:+.3f} | {h1[0]:+.3f}, {h1[1]:+.3f} | {dy:.3f} | {ex} | {secs:.1f} s |")
    ok = [max(abs(r[2][0]), abs(r[2][1])) <= 0.05 and r[3] <= 0.05 and r[4] for r in rows]
    print(f"\n{sum(ok)}/{len(ok)} cases within 0.05 eye widths horizontally and vertically, exact outside; files in {tmp}")


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["fill", "harmonize", "gaze"])
    p.add_argument("--guise", default=".build/release/guise")
    p.add_argument("--photos", nargs="+", default=["Samples/astronaut.png", "Samples/chelsea.png", "Samples/messi5.jpg"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="write the cases and results here")
    p.add_argument("--only", help="run only cases whose name contains this")
    a = p.parse_args(argv)
    {"fill": fill, "harmonize": harmonize, "gaze": gaze}[a.what](a, extra)


if __name__ == "__main__":
    main()
