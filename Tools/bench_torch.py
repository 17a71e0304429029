"""PyTorch CPU timings of the rows GuiseBench times, and the side-by-side table.

    .venv/bin/python Tools/bench_torch.py                                   # PyTorch alone
    .venv/bin/python Tools/bench_torch.py --guise .build/release/GuiseBench  # side by side

Same shapes, 2 threads, warm-up then the median of several runs, as GuiseBench does. Each
row runs in GuiseBench and then here, back to back, so load from other processes on the
machine hits both about alike. Add a row by adding a function to ROWS under the name
GuiseBench uses.
"""
import argparse, os, subprocess, time

import bench_timing
import blas_info
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


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


def with_grads(make):
    """Times forward alone, or forward+backward w.r.t. the input and every parameter."""
    def rows(c, s, *shape_args):
        def fwd():
            x, ps, f = make(c, s, *shape_args)
            def body():
                with torch.no_grad():
                    f(x, ps)
            return body

        def fwd_bwd():
            x, ps, f = make(c, s, *shape_args)
            for t in [x] + ps:
                t.requires_grad_(True)
            gy = torch.randn_like(x)
            def body():
                f(x, ps).backward(gy)
                for t in [x] + ps:
                    t.grad = None
            return body
        return fwd, fwd_bwd
    return rows


@with_grads
def resblock(c, s, e):
    """guided-diffusion ResBlock with scale-shift norm, as GuiseBench's row."""
    x = torch.randn(1, c, s, s)
    shapes = [(c,), (c,), (c, c, 3, 3), (c,), (1, e), (2 * c, e), (2 * c,), (c,), (c,), (c, c, 3, 3), (c,)]
    ps = [torch.randn(*sh) * 0.05 for sh in shapes]
    def f(x, p):
        h = F.silu(F.group_norm(x, 32, p[0], p[1]))
        h = F.conv2d(h, p[2], p[3], padding=1)
        scale, shift = F.linear(F.silu(p[4]), p[5], p[6]).chunk(2, dim=1)
        h = F.group_norm(h, 32, p[7], p[8]) * (1 + scale[..., None, None]) + shift[..., None, None]
        return x + F.conv2d(F.silu(h), p[9], p[10], padding=1)
    return x, ps, f


@with_grads
def attention(c, s, d):
    """guided-diffusion AttentionBlock; PyTorch's own fused scaled_dot_product_attention."""
    heads, t = c // d, s * s
    x = torch.randn(1, c, s, s)
    shapes = [(c,), (c,), (3 * c, c, 1, 1), (3 * c,), (c, c, 1, 1), (c,)]
    ps = [torch.randn(*sh) * 0.05 for sh in shapes]
    def f(x, p):
        h = F.group_norm(x, 32, p[0], p[1])
        q, k, v = F.conv2d(h, p[2], p[3]).reshape(1, 3, heads, d, t).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + F.conv2d(a.transpose(-1, -2).reshape(1, c, s, s), p[4], p[5])
    return x, ps, f


def arcface(backward, batch=1):
    """SimSwap/DiffFace's IR-SE50 at 112² (Tools/make_fixtures_arcface.py's network), batch 1 or
    DiffFace's 8 views: forward, or forward and backward to the input only, as identity guidance
    needs."""
    import make_fixtures_arcface as arc
    net = arc.randomise(arc.ResNet([3, 4, 14, 3]), seed=3).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, seed = arc.face_batch(batch, 7), torch.randn(batch, 512)
    if not backward:
        def body():
            with torch.no_grad():
                net(x)
        return body
    x.requires_grad_(True)
    def body():
        net(x).backward(seed)
        x.grad = None
    return body


RESBLOCK = resblock(256, 64, 1024)
ATTENTION = attention(512, 32, 64)

ROWS = {
    "resblock 256 @64 fwd": RESBLOCK[0],
    "resblock 256 @64 fwd+bwd": RESBLOCK[1],
    "attention 512 @32 fwd": ATTENTION[0],
    "attention 512 @32 fwd+bwd": ATTENTION[1],
    "sgemm 2048": lambda: sgemm(2048),
    "conv3x3 256->256 @64 fwd": lambda: conv_fwd(256, 64),
    "conv3x3 256->256 @64 fwd+bwd": lambda: conv_fwd_bwd(256, 64),
    "conv3x3 128->128 @128 fwd": lambda: conv_fwd(128, 128),
    "conv3x3 128->128 @128 fwd+bwd": lambda: conv_fwd_bwd(128, 128),
    "arcface ir-se50 fwd": lambda: arcface(False),
    "arcface ir-se50 fwd+bwd x": lambda: arcface(True),
    "arcface ir-se50 x8 fwd": lambda: arcface(False, 8),
    "arcface ir-se50 x8 fwd+bwd x": lambda: arcface(True, 8),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", help="path of the GuiseBench executable to compare against")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate Guise and PyTorch this many times per row (steadier on a loaded machine)")
    ap.add_argument("rows", nargs="*", help="row names (default: all)")
    args = ap.parse_args()

    def run_guise(name):
        out = subprocess.run([args.guise, "--tsv", "--only", name], check=True, capture_output=True, text=True).stdout
        _, ms, best, gflop = out.strip().split("\t")
        return float(ms), float(best), float(gflop)

    def rounds(name):
        """(Guise median, Guise best, torch median, torch best, GFLOP): medians of the rounds' medians, best of all."""
        g, t = [], []
        for _ in range(args.rounds):
            if args.guise:
                g.append(run_guise(name))
            t.append(tuple(v * 1e3 for v in bench_timing.measure(ROWS[name]())))
        med = lambda xs: sorted(xs)[len(xs) // 2]
        if not g:
            return None, None, med([x[0] for x in t]), min(x[1] for x in t), None
        return med([x[0] for x in g]), min(x[1] for x in g), med([x[0] for x in t]), min(x[1] for x in t), g[0][2]

    if args.guise:
        names = subprocess.run([args.guise, "--list"], check=True, capture_output=True, text=True).stdout.split("\n")
        # The embedded networks' rows are Tools/bench_litert.py's.
        names = [n for n in names if n and not n.startswith(("tflite ", "dlib ")) and (not args.rows or n in args.rows)]
    else:
        names = args.rows or list(ROWS)
    load = os.getloadavg()[0]
    # On an AVX-512 CPU PyTorch's kernels are twice as wide as Guise's AVX2 ones; running this with
    # ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 compares the same vector width.
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads; "
          f"load average {load:.2f} at start; "
          f"{args.rounds} round(s) per row")
    print(blas_info.describe())
    if args.guise:
        print(subprocess.run([args.guise, "--gemm"], check=True, capture_output=True, text=True).stdout.strip())
    print("ratio = Guise/torch of median times; 'best ratio' of each side's fastest run. GFLOP/s count a")
    print("conv's direct-convolution FLOPs (so Winograd can pass the sgemm peak), %peak is of Guise's sgemm")
    print(f"{'op':30} {'Guise ms':>9} {'torch ms':>9} {'ratio':>6} {'best ratio':>10} {'GFLOP/s':>8} {'%peak':>6} {'torch GF/s':>10}")
    peak = None
    for name in names:
        if name not in ROWS:
            print(f"{name:30} (no PyTorch row)")
            continue
        ms, best, t, tbest, gflop = rounds(name)
        if ms is None:
            print(f"{name:30} {'':9} {t:9.2f}", flush=True)
            continue
        gf = gflop / ms * 1e3
        if name.startswith("sgemm"):
            peak = gf
        pct = f"{100 * gf / peak:5.0f}%" if peak else ""
        print(f"{name:30} {ms:9.2f} {t:9.2f} {ms / t:6.2f} {best / tbest:10.2f} {gf:8.1f} {pct:>6} {gflop / t * 1e3:10.1f}",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
