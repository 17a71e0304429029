#!/usr/bin/env python3
"""Run a face-swap command over the evaluation pairs, then measure and draw the results.

    .venv-eval/bin/python Tools/run_swaps.py --command TEMPLATE --guise .build/release/guise \
        --out DIR [--pairs Tools/swap_pairs.json] [--people Tools/swap_people.json] [--samples Samples]

TEMPLATE is one command line with the fields {source}, {source_face}, {target},
{target_face}, {out} and {guise}, e.g.
    '{guise} swap --source {source} --source-face {source_face} --target {target} --target-face {target_face} -o {out} --quiet'
so Guise and the classical baseline (Tools/baseline_swap.py) go through the same path.

People and their photos come from swap_people.json; a photo with a `crop` is cut out of its
sample into DIR/inputs/ (PNG, lossless) first. Each pair of swap_pairs.json names a source
and a target person and which of their photos. Results go to DIR/results/SOURCE__TARGET.png
(an existing result is redone); a command that fails leaves no result and counts as a
failure. Then DIR/swaps.json (swap_eval.py's input), DIR/gallery.json (every photo of every
person, for the mean identity descriptors), DIR/report.md, DIR/report.json, DIR/sheet.png,
and DIR/times.tsv (seconds per swap).
"""
import argparse, json, os, shlex, subprocess, sys, time

import cv2

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    print(f"run_swaps: error: {msg}", file=sys.stderr)
    sys.exit(1)


def photo_paths(people, samples, inputs):
    """person -> list of {image, face, box} with crops written out."""
    out = {}
    for p in people:
        items = []
        for ph in p["photos"]:
            path = os.path.join(samples, ph["file"])
            if not os.path.exists(path):
                fail(f"{path} is missing (run `make samples`)")
            if "crop" in ph:
                x, y, w, h = ph["crop"]
                stem = os.path.splitext(ph["file"])[0]
                cropped = os.path.join(inputs, f"{stem}_{x}_{y}_{w}_{h}.png")
                if not os.path.exists(cropped):
                    im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
                    if im is None:
                        fail(f"cannot read {path}")
                    if not cv2.imwrite(cropped, im[y:y + h, x:x + w]):
                        fail(f"cannot write {cropped}")
                path = cropped
            items.append({"image": path, "face": ph["face"], "box": ph["box"]})
        out[p["name"]] = items
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--command", required=True)
    ap.add_argument("--guise", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", default=os.path.join(HERE, "swap_pairs.json"))
    ap.add_argument("--people", default=os.path.join(HERE, "swap_people.json"))
    ap.add_argument("--samples", default="Samples")
    ap.add_argument("--models", default="Models")
    a = ap.parse_args()
    with open(a.people) as f:
        people = json.load(f)["people"]
    with open(a.pairs) as f:
        pairs = json.load(f)["pairs"]
    for d in ("inputs", "results"):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    photos = photo_paths(people, a.samples, os.path.join(a.out, "inputs"))
    swaps, times = [], []
    for n, pr in enumerate(pairs):
        for role in ("source", "target"):
            if pr[role] not in photos:
                fail(f"pair {n}: no person {pr[role]!r} in {a.people}")
        s = photos[pr["source"]][pr.get("source_photo", 0)]
        t = photos[pr["target"]][pr.get("target_photo", 0)]
        result = os.path.join(a.out, "results", f"{pr['source']}__{pr['target']}.png")
        if os.path.exists(result):
            os.unlink(result)
        fields = {"source": s["image"], "source_face": s["face"], "target": t["image"],
                  "target_face": t["face"], "out": result, "guise": a.guise}
        cmd = [part.format(**fields) for part in shlex.split(a.command)]
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.monotonic() - t0
        ok = r.returncode == 0 and os.path.exists(result)
        print(f"run_swaps: {n + 1}/{len(pairs)} {pr['source']} -> {pr['target']}: "
              f"{'%.1f s' % dt if ok else 'FAILED: ' + (r.stderr.strip().splitlines() or ['exit %d' % r.returncode])[-1]}",
              file=sys.stderr)
        times.append((pr["source"], pr["target"], dt, ok))
        swaps.append({"source": s["image"], "source_face": s["face"], "target": t["image"],
                      "target_face": t["face"], "result": result, "person_source": pr["source"],
                      "person_target": pr["target"], "source_box": s["box"], "target_box": t["box"]})
    with open(os.path.join(a.out, "swaps.json"), "w") as f:
        json.dump(swaps, f, indent=1)
    with open(os.path.join(a.out, "gallery.json"), "w") as f:
        json.dump({p: [{"image": i["image"], "face": i["face"]} for i in items] for p, items in photos.items()}, f, indent=1)
    with open(os.path.join(a.out, "times.tsv"), "w") as f:
        f.write("source\ttarget\tseconds\tok\n")
        f.writelines(f"{s}\t{t}\t{dt:.2f}\t{int(ok)}\n" for s, t, dt, ok in times)
    py = sys.executable
    subprocess.run([py, os.path.join(HERE, "contact_sheet.py"), "--swaps", os.path.join(a.out, "swaps.json"),
                    "--out", os.path.join(a.out, "sheet.png"), "--columns", "2", "--height", "160"], check=True)
    r = subprocess.run([py, os.path.join(HERE, "swap_eval.py"), os.path.join(a.out, "swaps.json"),
                        "--guise", a.guise, "--gallery", os.path.join(a.out, "gallery.json"), "--models", a.models,
                        "--out-json", os.path.join(a.out, "report.json"), "--out-md", os.path.join(a.out, "report.md")])
    if r.returncode != 0:
        sys.exit(r.returncode)
    ok = sum(t[3] for t in times)
    print(f"run_swaps: {ok}/{len(times)} swaps ran; mean {sum(t[2] for t in times if t[3]) / max(ok, 1):.1f} s each; "
          f"report in {a.out}/report.md, sheet {a.out}/sheet.png")


if __name__ == "__main__":
    main()
