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
  python Tools/edit_eval.py expression [--only NAME] [--keep DIR]
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


# Expression: parts and the points the similarity fit uses (nose, eye corners, forehead, temples),
# as guise edit --expression-from uses them.
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
LEFT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
RIGHT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
PART_GROUPS = {"mouth": [LIPS], "eyes": [LEFT_EYE, RIGHT_EYE], "brows": [LEFT_BROW, RIGHT_BROW]}
STABLE = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64,
          33, 133, 362, 263, 10, 338, 297, 332, 109, 67, 103, 127, 356, 234, 454]
# (portrait, reference, region): each reference has another expression than its portrait.
EXPRESSION_PAIRS = [
    ("heldout/opencv-helen-230501201_1.jpg", "Samples/astronaut.png", "mouth"),
    ("Samples/grace_hopper.jpg", "Samples/obama.jpg", "mouth"),
    ("heldout/mahotas-luispedro.jpg", "Samples/obama2.jpg", "mouth"),
    ("heldout/kpa-jesper_2.jpg", "heldout/opencv-helen-230501201_1.jpg", "mouth"),
    ("Samples/astronaut.png", "Samples/grace_hopper.jpg", "mouth"),
    ("Samples/obama.jpg", "heldout/mahotas-luispedro.jpg", "mouth"),
    ("heldout/mahotas-luispedro.jpg", "heldout/kpa-jesper_2.jpg", "eyes"),
    ("heldout/kpa-jesper_2.jpg", "Samples/astronaut.png", "eyes"),
    ("heldout/mahotas-luispedro.jpg", "heldout/kpa-jesper_2.jpg", "brows"),
    ("heldout/opencv-helen-230501201_1.jpg", "Samples/grace_hopper.jpg", "brows"),
]


def mesh_of(args, path):
    return np.array([[q["x"], q["y"]] for q in landmarks(args, path)["mesh"]])[:468]


def similarity(src, dst):
    """Least-squares similarity taking src points onto dst points (as a function on point arrays)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    zs, zd = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    k = np.vdot(zs, zd) / np.vdot(zs, zs)
    def f(p):
        z = (p[:, 0] - ms[0]) + 1j * (p[:, 1] - ms[1])
        w = k * z
        return np.stack([w.real + md[0], w.imag + md[1]], 1)
    return f


def part_distance(face, ref, part):
    """Mean distance of the part's points of `face` to the reference's, fitted onto `face` by the
    stable points, in eye distances (outer corners): absolute, and with each group's mean offset
    taken out (the part's shape alone)."""
    fitted = similarity(ref[STABLE], face[STABLE])(ref)
    iod = np.linalg.norm(face[33] - face[263])
    absolute, shape = [], []
    for g in PART_GROUPS[part]:
        d = face[g] - fitted[g]
        absolute += list(np.linalg.norm(d, axis=1))
        shape += list(np.linalg.norm(d - d.mean(0), axis=1))
    return np.mean(absolute) / iod, np.mean(shape) / iod


def prepared(args, path, tmp, width=150.0):
    """The photo cropped round its face and scaled so the face (cheek to cheek) is `width` px."""
    name = os.path.splitext(os.path.basename(path))[0]
    out = os.path.join(tmp, f"{name}-face.png")
    if os.path.exists(out):
        return out
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    m = mesh_of(args, path)
    s = width / np.linalg.norm(m[234] - m[454])
    c = m.mean(0)
    half = 1.4 * width / s
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - 1.15 * half))
    x1, y1 = int(min(img.shape[1], c[0] + half)), int(min(img.shape[0], c[1] + 1.15 * half))
    crop = img[y0:y1, x0:x1]
    crop = cv2.resize(crop, (int(round(crop.shape[1] * s)), int(round(crop.shape[0] * s))), interpolation=cv2.INTER_AREA)
    cv2.imwrite(out, crop)
    return out


def expression(args, extra):
    """`--expression-from`: for pairs of faces with different expressions, the part's mesh points'
    distance to the reference's (fitted by the stable points, in eye distances) before and after,
    and whether pixels beyond the part grown by its reach are bit-exact."""
    tmp = args.keep or tempfile.mkdtemp(prefix="guise-expression-eval-")
    os.makedirs(tmp, exist_ok=True)
    root = ".cache/prior-data/"
    rows, sheet = [], []
    for portrait, reference, part in EXPRESSION_PAIRS:
        portrait = root + portrait if portrait.startswith("heldout/") else portrait
        reference = root + reference if reference.startswith("heldout/") else reference
        name = f"{os.path.splitext(os.path.basename(portrait))[0]}-{part}-from-{os.path.splitext(os.path.basename(reference))[0]}"
        if args.only and args.only not in name:
            continue
        inp, ref = prepared(args, portrait, tmp), prepared(args, reference, tmp)
        out = os.path.join(tmp, f"{name}.png")
        t = time.time()
        r = subprocess.run([args.guise, "edit", inp, "--region", part, "--expression-from", ref, "-o", out, "--json", "--quiet"] + extra,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{name}: {r.stderr.strip()}")
        secs = time.time() - t
        report = json.loads(r.stdout)
        m0, mr, m1 = mesh_of(args, inp), mesh_of(args, ref), mesh_of(args, out)
        b_abs, b_shape = part_distance(m0, mr, part)
        a_abs, a_shape = part_distance(m1, mr, part)
        img, res = cv2.imread(inp, cv2.IMREAD_COLOR), cv2.imread(out, cv2.IMREAD_COLOR)
        iod = np.linalg.norm(m0[33] - m0[263])
        grown = np.zeros(img.shape[:2], np.uint8)
        for g in PART_GROUPS[part]:
            cv2.fillPoly(grown, [np.round(cv2.convexHull(m0[g].astype(np.float32))).astype(np.int32).reshape(-1, 2)], 255)
        k = 2 * int(0.8 * iod) + 1
        grown = cv2.dilate(grown, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        exact = np.array_equal(res[grown == 0], img[grown == 0])
        changed = float((np.abs(res.astype(int) - img.astype(int)).max(2) > 0).mean())
        rows.append((name, b_abs, a_abs, b_shape, a_shape, exact, report["maskFraction"], secs))
        print(f"{name:60s} abs {b_abs:.3f} -> {a_abs:.3f}  shape {b_shape:.3f} -> {a_shape:.3f}  exact beyond 0.8 IOD {exact}  "
              f"mask {100 * report['maskFraction']:.1f}% changed {100 * changed:.1f}%  {secs:.1f}s", flush=True)
        refimg = cv2.imread(ref, cv2.IMREAD_COLOR)
        tiles = []
        for im in (img, refimg, res):
            s = 300 / max(im.shape[:2])
            t_ = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            pad = np.full((300, 300, 3), 255, np.uint8)
            pad[:t_.shape[0], :t_.shape[1]] = t_
            tiles.append(pad)
        row = np.hstack(tiles)
        cv2.putText(row, name, (4, 292), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
        sheet.append(row)
    print()
    print("| case | part | before: abs | after: abs | before: shape | after: shape | exact beyond 0.8 eye distances | mask | time |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for n, ba, aa, bs, as_, ex, mf, secs in rows:
        print(f"| {n} | {n.split('-from-')[0].rsplit('-', 1)[1]} | {ba:.3f} | {aa:.3f} | {bs:.3f} | {as_:.3f} | {ex} | {100 * mf:.1f}% | {secs:.1f} s |")
    if rows:
        print(f"\nmean abs {np.mean([r[1] for r in rows]):.3f} -> {np.mean([r[2] for r in rows]):.3f}, "
              f"shape {np.mean([r[3] for r in rows]):.3f} -> {np.mean([r[4] for r in rows]):.3f}; "
              f"{sum(r[5] for r in rows)}/{len(rows)} exact; files in {tmp}")
        cv2.imwrite(os.path.join(tmp, "expression-sheet.png"), np.vstack(sheet))


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["fill", "harmonize", "gaze", "expression"])
    p.add_argument("--guise", default=".build/release/guise")
    p.add_argument("--photos", nargs="+", default=["Samples/astronaut.png", "Samples/chelsea.png", "Samples/messi5.jpg"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="write the cases and results here")
    p.add_argument("--only", help="run only cases whose name contains this")
    a = p.parse_args(argv)
    {"fill": fill, "harmonize": harmonize, "gaze": gaze, "expression": expression}[a.what](a, extra)


if __name__ == "__main__":
    main()
