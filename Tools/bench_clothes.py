#!/usr/bin/env python3
"""`make bench` row for guise clothes: seconds for a 1024-pixel-tall person photo.

    .venv-eval/bin/python Tools/bench_clothes.py --guise .build/release/guise [--rounds 2]

The person is Samples/obama3.jpg scaled to 1024 pixels tall, the garment the astronaut's suit
(Samples/astronaut.png); best of --rounds runs against the 30 s goal. There is no reference
implementation of a clothes swap on this machine to compare with, so the row reports the time
alone, with `guise pose` on the same photo (the analysis every run starts with) for scale.
"""
import argparse, os, subprocess, sys, tempfile, time

import cv2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, rounds):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"bench_clothes: error: {r.stderr.strip()}", file=sys.stderr)
            sys.exit(1)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        im = cv2.imread(os.path.join(ROOT, "Samples", "obama3.jpg"))
        s = 1024 / im.shape[0]
        person = os.path.join(d, "person.png")
        cv2.imwrite(person, cv2.resize(im, (round(im.shape[1] * s), 1024), interpolation=cv2.INTER_AREA))
        out = os.path.join(d, "out.png")
        t = timed([a.guise, "clothes", "--person", person, "--garment", os.path.join(ROOT, "Samples", "astronaut.png"),
                   "-o", out, "--quiet"], a.rounds)
        p = timed([a.guise, "pose", person], a.rounds)
    print("guise clothes, 1024-pixel-tall person, %d cores (best of %d)" % (os.cpu_count() or 0, a.rounds))
    print(f"  clothes swap   {t:6.2f} s   goal ≤ 30 s   ({t / p:4.1f}× `guise pose` on the same photo, {p:.2f} s)")


if __name__ == "__main__":
    main()
