#!/usr/bin/env python3
"""`make bench` row for guise swap: seconds per face on a 1024×1024 target (the engine's
thread pool uses every core: 2 on this project's machines).

    .venv-eval/bin/python Tools/bench_swap.py --guise .build/release/guise [--rounds 2]

The target is Samples/obama3.jpg cut to a square around its face and scaled to 1024²
(a face about 260 pixels wide); the source is Samples/biden.jpg. Rows: the default settings
(guided diffusion refinement) and --no-diffusion, each the best of --rounds runs, against the
goals (30 s and 2 s per face). The classical swap (Tools/baseline_swap.py: mesh, triangle
warp, seamlessClone) runs on the same pair as a reference on this machine; its time includes
two `guise landmarks` processes, as Guise's includes loading its networks. The last rows do
the same on the target scaled to 4096² (16.8 Mpx, a face about 1000 pixels wide, as a camera
photo of a portrait has it): the masks, low-passes and chips must not cost in proportion to
the photo or to the face's size squared.
"""
import argparse, os, subprocess, sys, tempfile, time

import cv2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, rounds, env):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            print(f"bench_swap: error: {' '.join(cmd[:2])}: {r.stderr.strip()}", file=sys.stderr)
            sys.exit(1)
        best = min(best, elapsed)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as d:
        im = cv2.imread(os.path.join(ROOT, "Samples", "obama3.jpg"))
        h, w = im.shape[:2]
        # A square around the face (found by eye on this photo: upper middle), then 1024².
        side = min(w, h, 1100)
        x0 = max(0, min(w - side, 240)); y0 = max(0, min(h - side, 100))
        target = os.path.join(d, "target1024.png")
        cv2.imwrite(target, cv2.resize(im[y0:y0 + side, x0:x0 + side], (1024, 1024), interpolation=cv2.INTER_AREA))
        source = os.path.join(ROOT, "Samples", "biden.jpg")
        out = os.path.join(d, "out.png")
        swap = [a.guise, "swap", "--source", source, "--target", target, "-o", out, "--quiet"]
        t_default = timed(swap, a.rounds, env)
        t_fast = timed(swap + ["--no-diffusion"], a.rounds, env)
        base = [sys.executable, os.path.join(ROOT, "Tools", "baseline_swap.py"), "--guise", a.guise,
                "--source", source, "--source-face", "0", "--target", target, "--target-face", "0", "-o", out, "--quiet"]
        t_base = timed(base, a.rounds, env)
        big = os.path.join(d, "target4096.jpg")
        cv2.imwrite(big, cv2.resize(cv2.imread(target), (4096, 4096), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 95])
        out = os.path.join(d, "out.jpg")
        big_swap = [a.guise, "swap", "--source", source, "--target", big, "-o", out, "--quiet"]
        t_big = timed(big_swap, a.rounds, env)
        t_big_fast = timed(big_swap + ["--no-diffusion"], a.rounds, env)
        t_big_base = timed([big if c == target else out if c.endswith("out.png") else c for c in base], a.rounds, env)
    print("guise swap, 1024² target, %d cores (best of %d)" % (os.cpu_count() or 0, a.rounds))
    print(f"  default (guided diffusion)  {t_default:6.2f} s/face   goal ≤ 30 s   {t_default / t_base:5.2f}× the classical swap")
    print(f"  --no-diffusion              {t_fast:6.2f} s/face   goal ≤ 2 s    {t_fast / t_base:5.2f}× the classical swap")
    print(f"  classical swap (reference)  {t_base:6.2f} s/face")
    print("guise swap, the same target at 4096² (16.8 Mpx)")
    print(f"  default (guided diffusion)  {t_big:6.2f} s/face                 {t_big / t_big_base:5.2f}× the classical swap")
    print(f"  --no-diffusion              {t_big_fast:6.2f} s/face                 {t_big_fast / t_big_base:5.2f}× the classical swap")
    print(f"  classical swap (reference)  {t_big_base:6.2f} s/face")


if __name__ == "__main__":
    main()
