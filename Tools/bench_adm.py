"""ADM benchmark: Guise against PyTorch CPU (2 threads) on DiffFace's 256² configuration
(num_channels 256, attention 32,16,8, head channels 64, resblock_updown, scale-shift norm,
learn_sigma, id_embed), batch 1, the same random weights.

    .venv/bin/python Tools/bench_adm.py --guise .build/release/ADMBench [--cache DIR] [--small]

Each measurement runs in its own process so that peak RSS (load included) is per case:
forward, and forward+backward w.r.t. the input (parameters frozen in both), the latter also with
Guise's gradient checkpointing. PyTorch and Guise run
back to back per case, so load from other processes hits both about alike. --small uses a
128-channel model for a quick check.
"""
import argparse, json, os, resource, subprocess, sys, time

import numpy as np
import torch as th
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io  # noqa: E402
from reference_adm import create_model, randomize  # noqa: E402

DIFFFACE = dict(image_size=256, num_channels=256, num_res_blocks=2, channel_mult="", attention_resolutions="32,16,8",
                num_heads=4, num_head_channels=64, num_heads_upsample=-1, use_scale_shift_norm=True,
                resblock_updown=True, use_new_attention_order=False, learn_sigma=True, class_cond=False, id_dim=512)


def prepare(cache, small):
    cfg = dict(DIFFFACE)
    if small:
        cfg["num_channels"] = 128
    tag = "adm_bench_%d" % cfg["num_channels"]
    paths = {k: os.path.join(cache, f"{tag}{ext}") for k, ext in
             [("weights", ".safetensors"), ("config", ".json"), ("inputs", "_io.safetensors")]}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.makedirs(cache, exist_ok=True)
    gen = th.Generator().manual_seed(2024)
    model = create_model(cfg)
    randomize(model, gen, f16_exact=True)
    fixture_io.save(paths["weights"], {k: v.half().numpy() for k, v in model.state_dict().items()})
    with open(paths["config"], "w") as f:
        json.dump(cfg, f)
    x = th.randn(1, 3, 256, 256, generator=gen)
    src = F.normalize(th.randn(1, 512, generator=gen), dim=1)
    out_ch = 6
    fixture_io.save(paths["inputs"], {"x": x.numpy(), "t": np.array([740.0], dtype=np.float32), "id": src.numpy(),
                                      "seed": th.randn(1, out_ch, 256, 256, generator=gen).numpy()})
    return paths


def torch_worker(paths, mode, out):
    th.set_num_threads(2)
    t0 = time.perf_counter()
    with open(paths["config"]) as f:
        cfg = json.load(f)
    model = create_model(cfg).eval()
    sd = {k: th.from_numpy(v.astype(np.float32)) for k, v in fixture_io.load(paths["weights"]).items()}
    model.load_state_dict(sd)
    del sd
    model.requires_grad_(False)
    load = time.perf_counter() - t0
    io = fixture_io.load(paths["inputs"])
    x, t, src = th.from_numpy(io["x"].copy()), th.from_numpy(io["t"].copy()), th.from_numpy(io["id"].copy())
    t1 = time.perf_counter()
    res = {}
    if mode == "fwd":
        with th.no_grad():
            res["out"] = model(x, t, src_id=src)
    else:
        x.requires_grad_(True)
        o = model(x, t, src_id=src)
        (o * th.from_numpy(io["seed"].copy())).sum().backward()
        res["out"], res["grad_x"] = o.detach(), x.grad
    secs = time.perf_counter() - t1
    fixture_io.save(out, {k: v.numpy() for k, v in res.items()})
    print(json.dumps({"mode": mode, "load_seconds": load, "seconds": secs,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", help="path to the ADMBench executable")
    ap.add_argument("--cache", default=os.path.join(".build", "bench-adm"))
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--worker", nargs=3, metavar=("MODE", "OUT", "TAG"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    paths = prepare(a.cache, a.small)
    if a.worker:
        torch_worker(paths, a.worker[0], a.worker[1])
        return
    print(f"ADM benchmark, load average {open('/proc/loadavg').read().split()[:3]}", flush=True)
    rows = []
    # The last case is Guise with gradient checkpointing (ADMUNet.checkpointing) against the same
    # PyTorch run without it.
    torch_runs = {}
    for case, mode, extra in (("fwd", "fwd", []), ("fwdbwd", "fwdbwd", []), ("fwdbwd ckpt", "fwdbwd", ["--checkpoint"])):
        tout = os.path.join(a.cache, f"torch_{mode}.safetensors")
        if mode not in torch_runs:
            torch_runs[mode] = run([sys.executable, os.path.abspath(__file__), "--cache", a.cache]
                                   + (["--small"] if a.small else []) + ["--worker", mode, tout, "x"])
        row = {"mode": case, "torch": torch_runs[mode]}
        if a.guise:
            gout = os.path.join(a.cache, f"guise_{mode}.safetensors")
            gr = run([a.guise, "--weights", paths["weights"], "--config", paths["config"], "--inputs", paths["inputs"],
                      "--mode", mode, "--out", gout] + extra)
            row["guise"] = gr
            ref, got = fixture_io.load(tout), fixture_io.load(gout)
            row["max_rel_err"] = {k: float(np.abs(got[k] - ref[k]).max() / max(1.0, np.abs(ref[k]).max())) for k in ref}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"{'case':<12} {'torch s':>9} {'guise s':>9} {'ratio':>7} {'torch MB':>9} {'guise MB':>9} {'mem ratio':>9}  max rel err")
    for r in rows:
        t = r["torch"]
        g = r.get("guise")
        if g:
            print(f"{r['mode']:<12} {t['seconds']:9.2f} {g['seconds']:9.2f} {g['seconds'] / t['seconds']:7.2f} "
                  f"{t['peak_rss_mb']:9.0f} {g['peak_rss_mb']:9.0f} {g['peak_rss_mb'] / t['peak_rss_mb']:9.2f}  {r['max_rel_err']}")
        else:
            print(f"{r['mode']:<12} {t['seconds']:9.2f}")


if __name__ == "__main__":
    main()
