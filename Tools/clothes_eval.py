#!/usr/bin/env python3
"""Runs `guise clothes` on person/garment pairs from Samples/ and measures the results.

For each pair: the report's own numbers (coverage of the upper torso, spill outside the person,
CIEDE2000 of the upper torso's mean colour against the garment's central panel, and the same for
the person's original clothing), plus checks made here from the pixels alone: how many pixels
changed outside the person mask (`guise pose --mask`, grown by 1 % of the photo's height), and,
for the striped football shirt, the number of colour stripes across the chest between the
shoulders in the garment photo and in the result. Two checks of occlusion, also from pixels:
`old_visible`, the share of the person's old clothing (the person's pixels coloured like the
upper torso's clothing, above the hips and joined to it) that the result left exactly as it was
(neither covered by the new garment nor made skin or background), with the same share less the forearms lying across the
torso (`old_visible_no_front`, kept in front on purpose); `old_colour`, the share of it that
in the result, touched or not, is still within 15 Lab units of one of the old clothing's colours
and of none of the new garment's (from the garment photo: a product shot's garment, or its
wearer's torso); and `hair_changed`, the share of the hair
below the chin beside the neck, down to a little below the shoulders (the person's pixels there
coloured like those round the top of the head, not like the old clothing, and joined to them),
that the result changed, and `hair_replaced`, the share of it changed by more than 0.15 in a
channel (0…1): hair painted over or filled, not an edge re-composited. Also writes a contact sheet (person | garment |
result per row).

Usage: clothes_eval.py --guise .build/release/guise --out /tmp/clothes-eval
Needs numpy and OpenCV (the eval venv).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np

PAIRS = [
    ("obama.jpg", "astronaut.png"),
    ("astronaut.png", "messi5.jpg"),
    ("obama.jpg", "grace_hopper.jpg"),
    ("grace_hopper.jpg", "obama.jpg"),
    ("biden.jpg", "astronaut.png"),
    ("astronaut.png", "biden.jpg"),
    ("messi5.jpg", "obama.jpg"),
    ("grace_hopper.jpg", "messi5.jpg"),
    ("astronaut.png", "product:obama.jpg"),
    ("grace_hopper.jpg", "product:obama.jpg"),
    ("messi5.jpg", "product:obama.jpg"),
    ("astronaut.png", "product:biden.jpg"),
    ("obama.jpg", "product:biden.jpg"),
    # Shoulder-length hair over a dark top: the hair must stay in front of the new garment.
    ("anne_helene.jpg", "astronaut.png"),
    ("anne_helene.jpg", "messi5.jpg"),
    ("anne_helene.jpg", "product:obama.jpg"),
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


def pose(guise, path, tmp):
    mask_path = os.path.join(tmp, os.path.basename(path) + ".mask.png")
    report = json.loads(run([guise, "pose", path, "--json", "--mask", mask_path]))
    lm = {l["name"]: (l["x"], l["y"]) for l in report["landmarks"]}
    return lm, cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127


def product_shot(guise, name, samples, tmp):
    """The garment cut out of a portrait and laid upright on a plain light background with a
    margin, as a catalogue photo shows it: the person mask from a little above the shoulders to
    a little below the hips, less the head and bare skin beside the torso (YCrCb skin rule), turned so the body's
    axis is vertical."""
    path = os.path.join(samples, name)
    lm, person = pose(guise, path, tmp)
    im = cv2.imread(path)
    ls, rs = np.array(lm["left_shoulder"]), np.array(lm["right_shoulder"])
    lh, rh = np.array(lm["left_hip"]), np.array(lm["right_hip"])
    sc, hc = (ls + rs) / 2, (lh + rh) / 2
    sw = np.linalg.norm(ls - rs)
    axis = (sc - hc) / max(np.linalg.norm(sc - hc), 1e-6)
    angle = np.degrees(np.arctan2(axis[0], -axis[1]))
    h, w = person.shape
    yy, xx = np.mgrid[0:h, 0:w]
    # Height along the body's axis above the hips' centre.
    along = (xx - hc[0]) * axis[0] + (yy - hc[1]) * axis[1]
    top = np.dot(sc - hc, axis) + 0.2 * sw
    ycc = cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)
    skin = (ycc[..., 1] > 135) & (ycc[..., 1] < 175) & (ycc[..., 2] > 80) & (ycc[..., 2] < 130)
    # Across the body's axis: bare arms reach out beyond the torso.
    across = np.abs((xx - hc[0]) * -axis[1] + (yy - hc[1]) * axis[0])
    bare = skin & ((along > np.dot(sc - hc, axis) - 0.25 * sw) | (across > 0.55 * sw))
    keep = person & (along < top) & (along > -0.15 * sw) & ~bare
    keep = cv2.morphologyEx(keep.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(keep.astype(np.uint8), connectivity=4)
    if n > 1:
        keep = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = np.full_like(im, 245)
    out[keep] = im[keep]
    pad = int(0.3 * max(h, w))
    out = cv2.copyMakeBorder(out, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(245, 245, 245))
    centre = (float(hc[0] + pad), float(hc[1] + pad))
    out = cv2.warpAffine(out, cv2.getRotationMatrix2D(centre, angle, 1.0), (out.shape[1], out.shape[0]),
                         flags=cv2.INTER_LINEAR, borderValue=(245, 245, 245))
    mask = np.abs(out.astype(int) - 245).max(axis=2) > 8
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    crop = out[y0:y1 + 1, x0:x1 + 1]
    m = int(0.12 * max(crop.shape[:2]))
    crop = cv2.copyMakeBorder(crop, m, m, m, m, cv2.BORDER_CONSTANT, value=(245, 245, 245))
    dst = os.path.join(tmp, "product_" + os.path.splitext(name)[0] + ".png")
    cv2.imwrite(dst, crop)
    return dst


def stripes(image, keypoints, which):
    """Colour stripes (red/blue alternations of a football shirt) across the chest: the row 30 %
    of the way from the shoulders' line to the hips', between the shoulders."""
    k = {p["name"]: p[which] for p in keypoints}
    ls, rs = np.array([k["left_shoulder"]["x"], k["left_shoulder"]["y"]]), np.array([k["right_shoulder"]["x"], k["right_shoulder"]["y"]])
    if "left_hip" in k:
        lh, rh = np.array([k["left_hip"]["x"], k["left_hip"]["y"]]), np.array([k["right_hip"]["x"], k["right_hip"]["y"]])
    else:
        lh, rh = np.array([k["left_hem"]["x"], k["left_hem"]["y"]]), np.array([k["right_hem"]["x"], k["right_hem"]["y"]])
    a, b = ls + 0.3 * (lh - ls), rs + 0.3 * (rh - rs)
    n = int(max(8, np.linalg.norm(a - b)))
    pts = [b + (a - b) * t for t in np.linspace(0.05, 0.95, n)]
    vals = []
    for x, y in pts:
        x, y = int(round(x)), int(round(y))
        if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
            bl, _, r = image[y, x].astype(float)
            vals.append(bl - r)
    v = np.convolve(np.array(vals), np.ones(3) / 3, mode="same")
    s = np.sign(v[np.abs(v) > 25])
    return int(np.count_nonzero(s[1:] != s[:-1])) + 1 if len(s) else 0


def lab(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32) * np.array([100 / 255, 1, 1], np.float32) - np.array([0, 128, 128], np.float32)


def clusters(pixels, k=4):
    """Up to k Lab colour centres of `pixels` (N×3), each holding at least 4 % of them."""
    if len(pixels) < k:
        return pixels.astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    cv2.setRNGSeed(1)
    _, labels, centres = cv2.kmeans(pixels.astype(np.float32), k, None, crit, 3, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=k) / len(labels)
    return centres[share >= 0.04]


def nearest(image_lab, centres):
    d = np.linalg.norm(image_lab[..., None, :] - centres[None, None], axis=-1)
    return d.min(axis=-1)


def skin_rule(image):
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    return (ycc[..., 1] > 135) & (ycc[..., 1] < 175) & (ycc[..., 2] > 80) & (ycc[..., 2] < 130)


def joined(mask, seed):
    """The parts of `mask` (8-connected) that touch `seed`."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & mask])
    return np.isin(labels, keep[keep != 0])


def torso_panel(lm, person_mask, image):
    """The upper torso's middle, inset from the shoulders, less skin: surely clothing."""
    h, w = person_mask.shape
    P = lambda name: np.array(lm[name], float)
    ls, rs, lh, rh = P("left_shoulder"), P("right_shoulder"), P("left_hip"), P("right_hip")
    a, b = rs + 0.2 * (ls - rs), rs + 0.8 * (ls - rs)
    c, d = b + 0.6 * (lh - ls), a + 0.6 * (rh - rs)
    panel = np.zeros((h, w), np.uint8)
    cv2.fillPoly(panel, [np.round(np.array([a, b, c, d])).astype(np.int32)], 1)
    return (panel > 0) & person_mask & ~skin_rule(image)


def garment_colours(guise, gpath, product, tmp):
    """Lab colour centres of the garment: a product shot's non-background pixels, or the
    wearer's torso panel."""
    g = cv2.imread(gpath)
    if product:
        sel = np.abs(g.astype(int) - 245).max(axis=2) > 8
    else:
        glm, gmask = pose(guise, gpath, tmp)
        sel = torso_panel(glm, gmask, g)
    return clusters(lab(g)[sel])


def occlusion(person, result, lm, person_mask, new, near=15.0):
    """`old_visible`, `old_visible_no_front` and `hair_changed` (see the module's docstring)."""
    h, w = person_mask.shape
    P = lambda name: np.array(lm[name], float)
    ls, rs, lh, rh = P("left_shoulder"), P("right_shoulder"), P("left_hip"), P("right_hip")
    sw = max(np.linalg.norm(ls - rs), 4)
    panel = torso_panel(lm, person_mask, person)
    pl, rl = lab(person), lab(result)
    old = clusters(pl[panel])
    yy, xx = np.mgrid[0:h, 0:w]
    nose = P("nose")
    head = (xx - nose[0]) ** 2 + (yy - nose[1]) ** 2 < (0.45 * sw) ** 2
    old_like = nearest(pl, old) < near
    # Above the hips: a top's, not the trousers' (which may share its colours).
    hc, sc = (lh + rh) / 2, (ls + rs) / 2
    up = (sc - hc) / max(np.linalg.norm(sc - hc), 1e-6)
    above_hips = (xx - hc[0]) * up[0] + (yy - hc[1]) * up[1] > -0.05 * sw
    clothing = joined(person_mask & old_like & ~head & above_hips, panel)
    # Still there: the result's pixel is the person photo's, untouched.
    still = clothing & np.all(person == result, axis=2)
    # Still the old clothing's colour, touched or not (smeared into a fill), and none of the
    # new garment's.
    old_colour = clothing & (nearest(rl, old) < near) & (nearest(rl, new) >= near)
    # Forearms across the torso stay as they are: capsules round elbow-wrist inside the torso.
    front = np.zeros((h, w), np.uint8)
    for e, wr in (("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")):
        cv2.line(front, tuple(int(v) for v in P(e)), tuple(int(v) for v in P(wr)), 1, thickness=max(1, int(0.3 * sw)))
    across = (ls - rs) / sw
    torso = np.array([rs - 0.12 * sw * across, ls + 0.12 * sw * across, lh + 0.22 * sw * across, rh - 0.22 * sw * across])
    tmask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(tmask, [np.round(torso).astype(np.int32)], 1)
    front = (front > 0) & (tmask > 0)
    area = max(int(clothing.sum()), 1)
    # Hair below the chin: coloured like the person's pixels round the top of the head (neither
    # the old clothing's colours nor skin) and joined to them.
    chin = nose[1] + 0.25 * sw
    face = (xx - nose[0]) ** 2 + (yy - nose[1]) ** 2 < (0.3 * sw) ** 2
    hairlike = person_mask & ~old_like & ~face
    ring = head & ~face & (yy < nose[1]) & hairlike
    hair = np.zeros((h, w), bool)
    if ring.sum() >= 32:
        hair_like = hairlike & (nearest(pl, clusters(pl[ring], 3)) < near) & above_hips
        # Blonde hair is skin-coloured: only the sides of the neck down to a little below the
        # shoulders count, not the neck or the arms.
        sides = (np.abs(xx - sc[0]) > 0.2 * sw) & (yy < max(ls[1], rs[1]) + 0.35 * sw)
        hair = joined(hair_like, ring) & (yy > chin) & ~head & sides
    changed = np.any(person != result, axis=2)
    replaced = np.any(np.abs(person.astype(np.int16) - result.astype(np.int16)) > 0.15 * 255, axis=2)
    return dict(old_visible=round(float(still.sum()) / area, 4), old_colour=round(float(old_colour.sum()) / area, 4),
                old_visible_no_front=round(float((still & ~front).sum()) / max(int((clothing & ~front).sum()), 1), 4),
                hair_px=int(hair.sum()), hair_changed=round(float((hair & changed).sum()) / max(int(hair.sum()), 1), 4),
                hair_replaced=round(float((hair & replaced).sum()) / max(int(hair.sum()), 1), 4)), still, hair


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", default=".build/release/guise")
    ap.add_argument("--samples", default="Samples")
    ap.add_argument("--out", default="/tmp/clothes-eval")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows, sheet = [], []
    for person, garment in PAIRS:
        gpath = product_shot(args.guise, garment.split(":", 1)[1], args.samples, args.out) if garment.startswith("product:") \
            else os.path.join(args.samples, garment)
        ppath = os.path.join(args.samples, person)
        tag = f"{os.path.splitext(person)[0]}__{os.path.splitext(os.path.basename(gpath))[0]}"
        out = os.path.join(args.out, tag + ".png")
        start = time.time()
        report = json.loads(run([args.guise, "clothes", "--person", ppath, "--garment", gpath, "-o", out, "--json", "--quiet"]))["report"]
        wall = time.time() - start
        a, b = cv2.imread(ppath), cv2.imread(out)
        plm, person_mask = pose(args.guise, ppath, args.out)
        grow = max(1, int(0.01 * a.shape[0]))
        grown = cv2.dilate(person_mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))) > 0
        changed = np.any(a != b, axis=2)
        row = dict(pair=tag, source=report["garmentSource"], coverage=report["coverage"], spill=report["spill"],
                   dE=report.get("deltaE"), dE_original=report.get("deltaEOriginal"), residual=report["warpResidual"],
                   changed=int(changed.sum()), changed_off_person=int((changed & ~grown).sum()), seconds=round(wall, 2))
        new = garment_colours(args.guise, gpath, garment.startswith("product:"), args.out)
        occ, still, hair = occlusion(a, b, plm, person_mask, new)
        row.update(occ)
        # Where the old clothing still shows (red) and the hair below the chin (green), for looking.
        overlay = b.copy()
        overlay[still] = (0, 0, 255)
        overlay[hair] = (0.5 * overlay[hair] + (0, 127, 0)).astype(np.uint8)
        cv2.imwrite(os.path.join(args.out, tag + ".occlusion.png"), overlay)
        if "messi5" in gpath:
            row["stripes_garment"] = stripes(cv2.imread(gpath), report["keypoints"], "garment")
            row["stripes_result"] = stripes(b, report["keypoints"], "person")
        rows.append(row)
        sheet.append((ppath, gpath, out))
        print(json.dumps(row), flush=True)
    des = [r["dE"] for r in rows if r["dE"] is not None]
    print(f"mean ΔE2000 {np.mean(des):.2f}; ≤ 10 in {sum(d <= 10 for d in des)}/{len(des)}; "
          f"coverage ≥ 0.85 in {sum(r['coverage'] >= 0.85 for r in rows)}/{len(rows)}; "
          f"max spill {max(r['spill'] for r in rows):.4f}; changed pixels off the person: {sum(r['changed_off_person'] for r in rows)}; "
          f"old clothing still visible: mean {np.mean([r['old_visible'] for r in rows]):.4f}, "
          f"less forearms in front {np.mean([r['old_visible_no_front'] for r in rows]):.4f}; "
          f"still the old clothing's colour: mean {np.mean([r['old_colour'] for r in rows]):.4f}; "
          f"hair below the chin changed: {sum(r['hair_px'] * r['hair_changed'] for r in rows) / max(sum(r['hair_px'] for r in rows), 1):.4f}, "
          f"by more than 0.15: {sum(r['hair_px'] * r['hair_replaced'] for r in rows) / max(sum(r['hair_px'] for r in rows), 1):.4f}")
    h = 300
    lines = []
    for paths in sheet:
        ims = [cv2.imread(p) for p in paths]
        ims = [cv2.resize(i, (max(1, int(i.shape[1] * h / i.shape[0])), h), interpolation=cv2.INTER_AREA) for i in ims]
        lines.append(np.hstack(ims))
    w = max(l.shape[1] for l in lines)
    lines = [np.pad(l, ((0, 4), (0, w - l.shape[1]), (0, 0)), constant_values=255) for l in lines]
    cv2.imwrite(os.path.join(args.out, "contact_sheet.jpg"), np.vstack(lines), [cv2.IMWRITE_JPEG_QUALITY, 85])
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
