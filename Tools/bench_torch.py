"""PyTorch CPU timings of the rows GuiseBench times, and the side-by-side table.

    .venv/bin/python Tools/bench_torch.py                                   # PyTorch alone
    .venv/bin/python Tools/bench_torch.py --guise .build/release/GuiseBench  # side by side

Same shapes, 2 threads, warm-up then the median of several runs, as GuiseBench does. Each
row runs in GuiseBench and then here, back to back, so load from other processes on the
machine hits both about alike. Add a row by adding a function to ROWS under the name
GuiseBench uses.
"""
import argparse, os, subprocess, time
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def measure(body, budget=3.0, max_runs=15):
    body(); body()
    times, start = [], time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        body()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if len(times) >= 5 and t1 - start > budget:
            break
    times.sort()
    return times[len(times) // 2], times[0]


def sgemm(n):
    a, b = torch.full((n, n), 0.5), torch.full((n, n), 0.25)
    return lambda: torch.mm(a, b)


def conv_fwd(c, s):
    x, w, b = torch.full((1, c, s, s), 0.5), torch.full((c, c, 3, 3), 0.01), torch.full((c,), 0.1)
    def body():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=1)
    return body


def conv_fwd_bwd(c, s):
    x, w, b = torch.full((1, c, s, s), 0.5), torch.full((c, c, 3, 3), 0.01), torch.full((c,), 0.1)
    for t in (x, w, b):
        t.requires_grad_(True)
    gy = torch.ones(1, c, s, s)
    def body():
        F.conv2d(x, w, b, padding=1).backward(gy)
        for t in (x, w, b):
            t.grad = None
    return body


ROWS = {
    "sgemm 2048": lambda: sgemm(2048),
    "conv3x3 256->256 @64 fwd": lambda: conv_fwd(256, 64),
    "conv3x3 256->256 @64 fwd+bwd": lambda: conv_fwd_bwd(256, 64),
    "conv3x3 128->128 @128 fwd": lambda: conv_fwd(128, 128),
    "conv3x3 128->128 @128 fwd+bwd": lambda: conv_fwd_bwd(128, 128),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", help="path of the GuiseBench executable to compare against")
    ap.add_argument("rows", nargs="*", help="row names (default: all)")
    args = ap.parse_args()

    def run_guise(name):
        out = subprocess.run([args.guise, "--tsv", "--only", name], check=True, capture_output=True, text=True).stdout
        _, ms, best, gflop = out.strip().split("\t")
        return float(ms), float(best), float(gflop)

    if args.guise:
        names = subprocess.run([args.guise, "--list"], check=True, capture_output=True, text=True).stdout.split("\n")
        names = [n for n in names if n and (not args.rows or n in args.rows)]
    else:
        names = args.rows or list(ROWS)
    guise, peak = {}, None
    if args.guise and "sgemm 2048" in names:
        guise["sgemm 2048"] = run_guise("sgemm 2048")
        peak = guise["sgemm 2048"][2] / guise["sgemm 2048"][0] * 1e3
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load:.2f} at start"
          + (f"; Guise sgemm peak {peak:.1f} GFLOP/s" if peak else ""))
    print("median of runs (ratio = Guise/torch); 'best ratio' uses each side's fastest run;")
    print("GFLOP/s count a conv's direct-convolution FLOPs, so Winograd can exceed the sgemm peak")
    print(f"{'op':30} {'Guise ms':>9} {'torch ms':>9} {'ratio':>6} {'best ratio':>10} {'GFLOP/s':>8} {'%peak':>6} {'torch GF/s':>10}")
    for name in names:
        if name not in ROWS:
            print(f"{name:30} (no PyTorch row)")
            continue
        if args.guise and name not in guise:
            guise[name] = run_guise(name)
        t, tbest = (v * 1e3 for v in measure(ROWS[name]()))
        if name in guise:
            ms, best, gflop = guise[name]
            gf = gflop / ms * 1e3
            pct = f"{100 * gf / peak:5.0f}%" if peak else ""
            print(f"{name:30} {ms:9.2f} {t:9.2f} {ms / t:6.2f} {best / tbest:10.2f} {gf:8.1f} {pct:>6} {gflop / t * 1e3:10.1f}",
                  flush=True)
        else:
            print(f"{name:30} {'':9} {t:9.2f}", flush=True)


if __name__ == "__main__":
    main()
