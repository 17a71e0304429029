#!/usr/bin/env python3
"""Measure face-swap results with dlib's and OpenCV's own pipelines (not Guise's networks).

    .venv-eval/bin/python Tools/swap_eval.py SWAPS.json --guise .build/release/guise
        [--gallery GALLERY.json] [--models Models] [--out-json R.json] [--out-md R.md]
        [--degrade standard|harsh]

SWAPS.json is a list of swaps:
    {"source": path, "source_face": i, "target": path, "target_face": j, "result": path,
     "person_source": name, "person_target": name}
Face indices count from 0 in `guise detect`'s default order. GALLERY.json (optional) is
{person: [{"image": path, "face": i}, ...]}: more photos per person for the mean identity
descriptor; without it each person's photos are those the swaps name.

Per swap:
  identity   The result is re-encoded as JPEG q90 and scaled by 0.9 (INTER_AREA), so a swap
             cannot pass on pixel-exact traces of the source (--degrade harsh: blurred by
             σ 1 px first, JPEG q60, ×0.6, which changes aimed at dlib alone do not survive); dlib's HOG detector (upsample 1)
             finds faces and the one overlapping the target face (its box scaled by 0.9) is
             described by dlib's ResNet (5-point shape, 150² chip). Distances to the source
             person's mean descriptor, to the target person's, and source-to-target. A result
             with no such face counts as a failure with distance 1.0. Top-1: the nearest person
             among everyone the swaps and the gallery name (the target included) is the source.
             Same person: distance to the source under dlib's threshold 0.6. Where the source
             person has other photos, also the distance to those alone.
  pose       `guise landmarks --json` 68 points of result and target: mean point error over the
             target's inter-ocular distance (outer corners 36, 45), and yaw/pitch/roll of
             solvePnP with a generic 3-D face on points 30, 8, 36, 45, 48, 54 (the
             rotation from target to result, split into yaw/pitch/roll, and its whole angle).
  background Pixels outside the target's face (`guise segment --what face`, with discs of
             2.5 % of the face width round its mesh points: on a turned head the oval misses the
             nose and lips), dilated by 15 % of the face width, that differ at all from the
             target's decoded pixels (goal 0).
  seam       Where the result differs from the target, its one-pixel outer ring: mean Sobel
             gradient magnitude (grey) of the result there over the target's (goal <= 1.3).
             Also on the ring of the visibly changed region (more than 10 levels).
Writes a markdown table (stdout and --out-md) and a JSON report (--out-json).
"""
import argparse, atexit, json, math, os, shutil, subprocess, sys, tempfile

import cv2
import dlib
import numpy as np

NO_FACE_DISTANCE = 1.0
SCALE = 0.9
# How a result is degraded before its identity is read: "standard" (JPEG q90, then ×0.9) or
# "harsh" (Gaussian blur σ 1 px, JPEG q60, then ×0.6), which a pixel-level change aimed at
# dlib's network does not survive while a change of the face's features does.
DEGRADE = "standard"
MATCH_IOU = 0.3
STRONG = 10
# dlib's own same-person threshold on descriptor distance.
SAME_PERSON = 0.6


def fail(msg):
    print(f"swap_eval: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_rgb(path):
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def iou(a, b):
    """IoU of two boxes (x, y, w, h)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Guise:
    def __init__(self, binary):
        self.binary = binary
        self.cache = {}

    def _json(self, *args):
        key = args
        if key not in self.cache:
            r = subprocess.run([self.binary, *args, "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                raise ValueError(f"guise {' '.join(args)}: {r.stderr.strip()}")
            self.cache[key] = json.loads(r.stdout)
        return self.cache[key]

    def boxes(self, path):
        d = self._json("detect", path)
        return [(f["box"]["x"], f["box"]["y"], f["box"]["width"], f["box"]["height"]) for f in d["faces"]]

    def box(self, path, face):
        b = self.boxes(path)
        if face >= len(b):
            raise ValueError(f"guise finds {len(b)} face(s) in {path}, not face {face}")
        return b[face]

    def points68(self, path, face):
        d = self._json("landmarks", path, "--face", str(face))
        return np.array([[p["x"], p["y"]] for p in d["points68"]], dtype=np.float64)

    def mesh(self, path, face):
        d = self._json("landmarks", path, "--face", str(face))
        return np.array([[p["x"], p["y"]] for p in d["mesh"]], dtype=np.float64)

    def face_mask(self, path, face, out):
        r = subprocess.run([self.binary, "segment", path, "--what", "face", "--out", out,
                            "--face", str(face)], capture_output=True, text=True)
        if r.returncode != 0:
            raise ValueError(f"guise segment {path}: {r.stderr.strip()}")
        m = cv2.imread(out, cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ValueError(f"guise segment wrote no readable mask for {path}")
        return m > 127


class Dlib:
    def __init__(self, models):
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))

    def faces(self, rgb):
        return [(r.left(), r.top(), r.width(), r.height()) for r in self.detector(rgb, 1)]

    def describe(self, rgb, box):
        x, y, w, h = box
        rect = dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1))
        chip = dlib.get_face_chip(rgb, self.shape(rgb, rect), size=150, padding=0.25)
        return np.array(self.net.compute_face_descriptor(chip, 0))

    def match(self, rgb, box):
        """The dlib face overlapping `box` most (IoU >= MATCH_IOU), or None."""
        best, best_iou = None, MATCH_IOU
        for f in self.faces(rgb):
            v = iou(f, box)
            if v >= best_iou:
                best, best_iou = f, v
        return best


def degraded(rgb):
    """JPEG q90 then ×SCALE with INTER_AREA: what a result goes through before identity is read
    (DEGRADE "harsh": blurred first, and JPEG q60)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if DEGRADE == "harsh":
        bgr = cv2.GaussianBlur(bgr, (0, 0), 1.0)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 60 if DEGRADE == "harsh" else 90])
    assert ok
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, round(w * SCALE)), max(1, round(h * SCALE))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


# Generic 3-D face (millimetre-ish, y up): nose tip, chin, outer eye corners, mouth corners.
MODEL3D = np.array([(0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0),
                    (225.0, 170.0, -135.0), (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)])
POSE_POINTS = [30, 8, 36, 45, 48, 54]


def head_pose(p68, size, guess=None):
    """(rvec, tvec) of the generic face, or None. Six points admit a mirrored solution; the
    result's pose starts from the target's (`guess`) so both land on the same branch."""
    h, w = size
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    pts = p68[POSE_POINTS].astype(np.float64)
    if guess is None:
        ok, rvec, tvec = cv2.solvePnP(MODEL3D, pts, cam, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    else:
        ok, rvec, tvec = cv2.solvePnP(MODEL3D, pts, cam, np.zeros(4), guess[0].copy(), guess[1].copy(),
                                      useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    return (rvec, tvec) if ok else None


def pose_difference(r_result, r_target):
    """|yaw|, |pitch|, |roll| of the rotation taking the target's head to the result's, in degrees.

    Decomposing the small relative rotation avoids the ±180° flips that decomposing each
    head's own rotation gives near the model's axis conventions."""
    rel = r_result @ r_target.T
    pitch, yaw, roll = cv2.RQDecomp3x3(rel)[0]
    total = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(rel) - 1) / 2))))
    return {"d_yaw": abs(yaw), "d_pitch": abs(pitch), "d_roll": abs(roll), "d_rotation": total}


def read_same(path):
    im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if im is None:
        raise ValueError(f"cannot read {path}")
    if im.ndim == 2:
        im = im[:, :, None]
    return im


class Evaluator:
    def __init__(self, guise, models):
        self.guise = Guise(guise)
        self.dlib = Dlib(models)
        self.descriptors = {}
        self.tmp = tempfile.mkdtemp(prefix="swap_eval-")
        atexit.register(shutil.rmtree, self.tmp, True)

    def photo_face(self, path, face):
        """dlib's box for Guise's face `face` in the photo (the best-overlapping HOG detection)."""
        rgb = read_rgb(path)
        gbox = self.guise.box(path, face)
        box = self.dlib.match(rgb, gbox)
        return rgb, gbox, box

    def descriptor(self, path, face):
        key = (os.path.abspath(path), face)
        if key not in self.descriptors:
            rgb, _, box = self.photo_face(path, face)
            if box is None:
                raise ValueError(f"dlib finds no face matching Guise's face {face} in {path}")
            self.descriptors[key] = self.dlib.describe(rgb, box)
        return self.descriptors[key]

    def identity(self, sw, means):
        rgb, gbox, tbox = self.photo_face(sw["target"], sw["target_face"])
        if tbox is None:
            raise ValueError(f"dlib finds no face matching Guise's face {sw['target_face']} in {sw['target']}")
        small = degraded(read_rgb(sw["result"]))
        box = self.dlib.match(small, tuple(v * SCALE for v in tbox))
        src, tgt = means[sw["person_source"]], means[sw["person_target"]]
        out = {"d_source_target": float(np.linalg.norm(src - tgt))}
        if box is None:
            out.update(found=False, d_source=NO_FACE_DISTANCE, d_target=NO_FACE_DISTANCE, top1=None, closer=False)
            return out
        d = self.dlib.describe(small, box)
        ds, dt = float(np.linalg.norm(d - src)), float(np.linalg.norm(d - tgt))
        nearest = min(sorted(means), key=lambda p: np.linalg.norm(d - means[p]))
        out.update(found=True, d_source=ds, d_target=dt, top1=nearest, closer=ds < dt)
        # The source photo's own pixels can carry identity a generator would not: where the
        # person has other photos, the distance to those alone.
        others = sorted(self.photos[sw["person_source"]] - {(sw["source"], sw["source_face"])})
        if others:
            held = np.mean([self.descriptor(path, f) for path, f in others], axis=0)
            out["d_source_other_photos"] = float(np.linalg.norm(d - held))
        return out

    def pose(self, sw):
        tbox = self.guise.box(sw["target"], sw["target_face"])
        rboxes = self.guise.boxes(sw["result"])
        if not rboxes:
            return {"found": False}
        rface = max(range(len(rboxes)), key=lambda i: iou(rboxes[i], tbox))
        if iou(rboxes[rface], tbox) < MATCH_IOU:
            return {"found": False}
        pt = self.guise.points68(sw["target"], sw["target_face"])
        pr = self.guise.points68(sw["result"], rface)
        iod = np.linalg.norm(pt[36] - pt[45])
        err = float(np.mean(np.linalg.norm(pr - pt, axis=1)) / iod)
        size = read_same(sw["target"]).shape[:2]
        out = {"found": True, "landmark_error_iod": err}
        pose_t = head_pose(pt, size)
        pose_r = head_pose(pr, size, pose_t) if pose_t else None
        if pose_r:
            out.update(pose_difference(cv2.Rodrigues(pose_r[0])[0], cv2.Rodrigues(pose_t[0])[0]))
        return out

    def pixels(self, sw, index):
        target, result = read_same(sw["target"]), read_same(sw["result"])
        if target.shape[:2] != result.shape[:2]:
            return {"same_size": False}
        # Compare colour only; an alpha channel the result dropped is not a pixel change.
        c = min(target.shape[2], result.shape[2], 3)
        t, r = target[:, :, :c], result[:, :, :c]
        changed = np.any(t != r, axis=2)
        mask = self.guise.face_mask(sw["target"], sw["target_face"], os.path.join(self.tmp, f"mask{index}.png"))
        xs = np.where(mask.any(axis=0))[0]
        face_w = (xs[-1] - xs[0] + 1) if len(xs) else 0
        # On a turned head the oval runs along the far cheek and the nose, lips and near eye
        # stand out past it; discs round the mesh points cover that visible face.
        disc = max(1, int(round(0.025 * face_w)))
        for x, y in np.round(self.guise.mesh(sw["target"], sw["target_face"])).astype(int):
            cv2.circle(mask.view(np.uint8), (int(x), int(y)), disc, 1, -1)
        rad = max(1, int(round(0.15 * face_w)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1, 2 * rad + 1))
        allowed = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        outside = changed & ~allowed
        diff = np.abs(t.astype(np.int16) - r.astype(np.int16)).max(axis=2)
        out = {"same_size": True, "changed_pixels": int(changed.sum()),
               "background_changed": int(outside.sum()),
               "background_max_diff": int(diff[~allowed].max()) if (~allowed).any() else 0}
        def grad(im):
            g = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) if im.shape[2] >= 3 else im[:, :, 0]
            g = g.astype(np.float32)
            return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)).astype(np.float64)

        gt_all, gr_all = grad(t), grad(r)

        def seam(region):
            ring = (cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~region
            if not ring.any():
                return None
            gt = gt_all[ring].mean()
            return float(gr_all[ring].mean() / gt) if gt > 0 else None

        out["seam_ratio"] = seam(changed)
        # A blend that fades to nothing puts the ring above where nothing shows; the ring of
        # the visibly changed region (a step of more than STRONG levels, specks of under 3x3
        # opened away) is where a pasted-on edge would be.
        strong = cv2.morphologyEx((diff > STRONG).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        out["seam_ratio_strong"] = seam(strong)
        return out

    def run(self, swaps, gallery):
        photos = {}
        for sw in swaps:
            photos.setdefault(sw["person_source"], set()).add((sw["source"], sw["source_face"]))
            photos.setdefault(sw["person_target"], set()).add((sw["target"], sw["target_face"]))
        for person, items in gallery.items():
            if person in photos:
                photos[person] |= {(it["image"], it["face"]) for it in items}
        means = {p: np.mean([self.descriptor(path, f) for path, f in sorted(items)], axis=0)
                 for p, items in photos.items()}
        self.photos = photos
        rows = []
        for i, sw in enumerate(swaps):
            row = {k: sw[k] for k in ("person_source", "person_target", "source", "target", "result")}
            if not os.path.exists(sw["result"]):
                row["error"] = "no result file"
                row["identity"] = {"found": False, "d_source": NO_FACE_DISTANCE, "d_target": NO_FACE_DISTANCE,
                                   "top1": None, "closer": False,
                                   "d_source_target": float(np.linalg.norm(means[sw["person_source"]] - means[sw["person_target"]]))}
                rows.append(row)
                continue
            row["identity"] = self.identity(sw, means)
            row["pose"] = self.pose(sw)
            row["pixels"] = self.pixels(sw, i)
            rows.append(row)
            print(f"swap_eval: {i + 1}/{len(swaps)} {sw['person_source']} -> {sw['person_target']}", file=sys.stderr)
        return rows


def mean(xs):
    # None is "not measured"; a NaN stays and shows in the summary rather than vanish.
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def summarise(rows):
    ids = [r["identity"] for r in rows]
    n = len(rows)
    poses = [r.get("pose", {}) for r in rows]
    pix = [r.get("pixels", {}) for r in rows]
    return {
        "pairs": n,
        "no_face": sum(not i["found"] for i in ids),
        "closer_to_source_pct": 100.0 * sum(i["closer"] for i in ids) / n,
        "top1_pct": 100.0 * sum(i["top1"] == r["person_source"] for i, r in zip(ids, rows)) / n,
        "same_person_pct": 100.0 * sum(i["found"] and i["d_source"] < SAME_PERSON for i in ids) / n,
        "mean_d_source": mean([i["d_source"] for i in ids]),
        "mean_d_source_other_photos": mean([i.get("d_source_other_photos") for i in ids]),
        "pairs_with_other_photos": sum("d_source_other_photos" in i for i in ids),
        "mean_d_target": mean([i["d_target"] for i in ids]),
        "mean_d_source_target": mean([i["d_source_target"] for i in ids]),
        "landmark_error_iod_pct": None if mean([p.get("landmark_error_iod") for p in poses]) is None
        else 100.0 * mean([p.get("landmark_error_iod") for p in poses]),
        "no_landmarks": sum(not p.get("found", False) for p in poses),
        "mean_d_yaw": mean([p.get("d_yaw") for p in poses]),
        "mean_d_pitch": mean([p.get("d_pitch") for p in poses]),
        "mean_d_roll": mean([p.get("d_roll") for p in poses]),
        "mean_d_rotation": mean([p.get("d_rotation") for p in poses]),
        "background_changed_total": sum(p.get("background_changed", 0) for p in pix),
        "size_mismatch": sum(p.get("same_size") is False for p in pix),
        "mean_seam_ratio": mean([p.get("seam_ratio") for p in pix]),
        "max_seam_ratio": max([p["seam_ratio"] for p in pix if p.get("seam_ratio") is not None], default=None),
        "mean_seam_ratio_strong": mean([p.get("seam_ratio_strong") for p in pix]),
        "max_seam_ratio_strong": max([p["seam_ratio_strong"] for p in pix if p.get("seam_ratio_strong") is not None], default=None),
    }


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def markdown(rows, s):
    out = ["| source → target | d(src) | d(tgt) | d(src,tgt) | top-1 | lmk %IOD | Δyaw | Δpitch | Δroll | bg px | seam | seam>10 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i, p, x = r["identity"], r.get("pose", {}), r.get("pixels", {})
        name = f"{r['person_source']} → {r['person_target']}"
        top = "no face" if not i["found"] else ("yes" if i["top1"] == r["person_source"] else i["top1"])
        lmk = None if p.get("landmark_error_iod") is None else 100 * p["landmark_error_iod"]
        bg = "size≠" if x.get("same_size") is False else (str(x["background_changed"]) if "background_changed" in x else "–")
        out.append(f"| {name} | {fmt(i['d_source'])} | {fmt(i['d_target'])} | {fmt(i['d_source_target'])} | {top} | "
                   f"{fmt(lmk, '.2f')} | {fmt(p.get('d_yaw'), '.1f')} | {fmt(p.get('d_pitch'), '.1f')} | "
                   f"{fmt(p.get('d_roll'), '.1f')} | {bg} | {fmt(x.get('seam_ratio'), '.2f')} | {fmt(x.get('seam_ratio_strong'), '.2f')} |")
    out += ["",
            f"{s['pairs']} pairs; dlib found no face in {s['no_face']} result(s) (counted as failures, distance {NO_FACE_DISTANCE}).",
            "Identity read after " + ("blur σ 1, JPEG q60 and ×0.6 (--degrade harsh)." if DEGRADE == "harsh" else "JPEG q90 and ×0.9."),
            f"- closer to source than target: {s['closer_to_source_pct']:.0f} %",
            f"- top-1 retrieval among all persons: {s['top1_pct']:.0f} %",
            f"- same person as the source by dlib's threshold (distance < {SAME_PERSON}): {s['same_person_pct']:.0f} %",
            f"- mean dlib distance to source: {fmt(s['mean_d_source'])} (to target {fmt(s['mean_d_target'])}, "
            f"source-to-target {fmt(s['mean_d_source_target'])})",
            f"- mean distance to the source person's other photos (not the one swapped from), over "
            f"{s['pairs_with_other_photos']} pair(s): {fmt(s['mean_d_source_other_photos'])}",
            f"- 68-point error: {fmt(s['landmark_error_iod_pct'], '.2f')} % of IOD "
            f"(no landmarks in {s['no_landmarks']}); mean |Δ| yaw {fmt(s['mean_d_yaw'], '.1f')}°, "
            f"pitch {fmt(s['mean_d_pitch'], '.1f')}°, roll {fmt(s['mean_d_roll'], '.1f')}°, "
            f"whole rotation {fmt(s['mean_d_rotation'], '.1f')}°",
            f"- background pixels changed outside the dilated face: {s['background_changed_total']} "
            f"(size mismatches {s['size_mismatch']}; goal 0)",
            f"- seam gradient ratio: mean {fmt(s['mean_seam_ratio'], '.2f')}, max {fmt(s['max_seam_ratio'], '.2f')} (goal ≤ 1.3); "
            f"on the ring of the visibly changed region (> {STRONG} levels): mean {fmt(s['mean_seam_ratio_strong'], '.2f')}, "
            f"max {fmt(s['max_seam_ratio_strong'], '.2f')}"]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("swaps")
    ap.add_argument("--guise", required=True)
    ap.add_argument("--gallery")
    ap.add_argument("--models", default="Models")
    ap.add_argument("--out-json")
    ap.add_argument("--out-md")
    ap.add_argument("--degrade", choices=["standard", "harsh"], default="standard",
                    help="how results are degraded before identity is read (harsh: blur σ 1, JPEG q60, ×0.6)")
    a = ap.parse_args()
    global DEGRADE, SCALE
    DEGRADE = a.degrade
    SCALE = 0.6 if a.degrade == "harsh" else 0.9
    with open(a.swaps) as f:
        swaps = json.load(f)
    if not swaps:
        fail(f"{a.swaps} lists no swaps")
    gallery = {}
    if a.gallery:
        with open(a.gallery) as f:
            gallery = json.load(f)
    try:
        rows = Evaluator(a.guise, a.models).run(swaps, gallery)
    except (ValueError, RuntimeError) as e:
        fail(str(e))
    s = summarise(rows)
    md = markdown(rows, s)
    print(md)
    if a.out_md:
        with open(a.out_md, "w") as f:
            f.write(md + "\n")
    if a.out_json:
        with open(a.out_json, "w") as f:
            json.dump({"summary": s, "pairs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
