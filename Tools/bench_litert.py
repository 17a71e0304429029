"""The embedded networks in Guise against LiteRT (and dlib's own ResNet), side by side.

    .venv-litert/bin/python Tools/bench_litert.py --guise .build/release/GuiseBench [--rounds 3] [ROW...]

Each row runs in GuiseBench (`--tsv --only NAME`, inference without a tape) and then here in
LiteRT's interpreter, back to back, 2 threads each, warm-up then the median of several runs, so
load from other processes hits both about alike. The dlib row runs dlib's
face_recognition_model_v1 on one 150² chip (dlib picks its own threading). A row whose model
file is missing under Models/ is skipped.
"""
import argparse, os, subprocess, time

import bench_timing
import numpy as np
from ai_edge_litert.interpreter import Interpreter

MODELS = "Models"


def litert(name):
    path = os.path.join(MODELS, name + ".tflite")
    if not os.path.exists(path):
        return None
    it = Interpreter(model_path=path, num_threads=2)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.uniform(-1, 1, d["shape"]).astype(np.float32))
    return it.invoke


def dlib_resnet():
    path = os.path.join(MODELS, "dlib_face_recognition_resnet_model_v1.dat")
    try:
        import dlib
    except ImportError:
        return None
    if not os.path.exists(path):
        return None
    rec = dlib.face_recognition_model_v1(path)
    chip = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    return lambda: rec.compute_face_descriptor(chip)


def reference(name):
    if name == "dlib resnet":
        return dlib_resnet()
    if name.startswith("tflite "):
        return litert(name[len("tflite "):])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", required=True, help="path of the GuiseBench executable")
    ap.add_argument("--rounds", type=int, default=1, help="alternate Guise and the reference this many times per row")
    ap.add_argument("rows", nargs="*", help="row names (default: every network row)")
    args = ap.parse_args()

    names = subprocess.run([args.guise, "--list"], check=True, capture_output=True, text=True).stdout.split("\n")
    names = [n for n in names if (n.startswith("tflite ") or n == "dlib resnet") and (not args.rows or n in args.rows)]
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"load average {os.getloadavg()[0]:.2f} at start; 2 threads each; {args.rounds} round(s) per row")
    print("ratio = Guise/reference of median times; 'best ratio' of each side's fastest run; target ratio <= 1.5")
    print(f"{'network':42} {'Guise ms':>9} {'ref ms':>9} {'ratio':>6} {'best ratio':>10}")
    for name in names:
        body = reference(name)
        if body is None:
            print(f"{name:42} (model file or reference runtime missing: skipped)")
            continue
        g, r = [], []
        for _ in range(args.rounds):
            out = subprocess.run([args.guise, "--tsv", "--only", name], check=True, capture_output=True, text=True).stdout
            _, ms, best, _ = out.strip().split("\t")
            g.append((float(ms), float(best)))
            r.append(tuple(v * 1e3 for v in bench_timing.measure(body, max_runs=30)))
        gm, gb = med([x[0] for x in g]), min(x[1] for x in g)
        rm, rb = med([x[0] for x in r]), min(x[1] for x in r)
        print(f"{name:42} {gm:9.2f} {rm:9.2f} {gm / rm:6.2f} {gb / rb:10.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
