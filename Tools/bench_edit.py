#!/usr/bin/env python3
"""`make bench` row for `guise edit`: a fill of a 512² photo with a 15 % box, and of a 4000×3000
photo with the same box in pixels (the network sees the same window, so the large photo should cost
about the same plus decoding and encoding). Wall time per command, best of --rounds.

  python Tools/bench_edit.py --guise .build/release/guise
"""
import argparse
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--guise", default=".build/release/guise")
    p.add_argument("--samples", default="Samples")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    side = int(round((0.15 * 512 * 512) ** 0.5))  # 198
    with tempfile.TemporaryDirectory(prefix="guise-bench-edit-") as tmp:
        small = cv2.imread(os.path.join(a.samples, "astronaut.png"))
        big = cv2.resize(cv2.imread(os.path.join(a.samples, "coffee.png")), (4000, 3000), interpolation=cv2.INTER_CUBIC)
        big[1400:1912, 1700:2212] = small
        paths = {"512x512": os.path.join(tmp, "small.png"), "4000x3000": os.path.join(tmp, "big.png")}
        cv2.imwrite(paths["512x512"], small)
        cv2.imwrite(paths["4000x3000"], big)
        boxes = {"512x512": (157, 157), "4000x3000": (1857, 1557)}
        times = {}
        for _ in range(a.rounds):
            for name, path in paths.items():
                x, y = boxes[name]
                t = time.time()
                subprocess.run([a.guise, "edit", path, "--box", f"{x},{y},{side},{side}", "-o", os.path.join(tmp, "out.png"), "--quiet"], check=True)
                times[name] = min(times.get(name, 1e9), time.time() - t)
    s, b = times["512x512"], times["4000x3000"]
    print(f"| edit fill, {side}² box (15 % of 512²) | 512² photo {s:.1f} s | 4000×3000 photo {b:.1f} s | ratio {b / s:.2f} | goals ≤ 20 s, ≤ 1.5× |")


if __name__ == "__main__":
    main()
