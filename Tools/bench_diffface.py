"""DiffFace's guided step at full size: Guise against PyTorch CPU (2 threads each), time per step
and peak memory, with the gradient back through the UNet and through x̂0 only.

    .venv/bin/python Tools/bench_diffface.py --guise .build/release/guise [--cache DIR] [--steps N]

The networks are the published layouts at their published sizes with random weights, written the
way DiffFace's files are (Model.pt: the 256-channel ADM with id_embed, fp16 state_dict; Arcface.tar:
a pickled DataParallel IR-SE50 beside a 93431-class metric_fc; FaceParser.pth; GazeEstimator.pt),
cached in --cache (about 1.4 GB). Guise runs `guise swap --diffface` on two sample photos for N
steps (the recipe's own start, 25 steps down a 100-step chain, cut short) and reports its fastest
step (the report's fastestStepSeconds: loading and the first step's warm-up left out); PyTorch
runs the same step (the reference in reference_diffface.py) N times on a 256² face and reports its
fastest. Each side runs in its own process, so peak RSS includes loading.

PyTorch runs twice: as installed, where oneDNN takes the widest vector ISA the CPU has (AVX-512 on
an AVX-512 machine, twice the FMA width of the AVX2 code Guise is built for), and limited to AVX2
(ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2), the ISA of the machine Guise targets, where
the two sides run the same vector width. On an AVX2-only machine the two PyTorch columns agree.
"""
import argparse, json, os, subprocess, sys, time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_adm import Diffusion, create_model, randomize  # noqa: E402
import make_fixtures_arcface as arc  # noqa: E402
import make_fixtures_parsing as parsing  # noqa: E402
import reference_diffface as ref  # noqa: E402
import blas_info  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADM = dict(image_size=256, num_channels=256, num_res_blocks=2, channel_mult="", attention_resolutions="32,16,8",
           num_heads=4, num_head_channels=64, num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True,
           use_new_attention_order=False, learn_sigma=True, class_cond=False, id_dim=512)


def networks():
    gen = torch.Generator().manual_seed(3)
    model = create_model(ADM)
    randomize(model, gen, f16_exact=True)
    arcnet = arc.randomise(arc.ResNet([3, 4, 14, 3]), 5)
    bisenet = parsing.BiSeNet()
    parsing.noise_state_dict(bisenet)
    eyenet = parsing.EyeNet(**parsing.EYENET_FULL)
    parsing.noise_state_dict(eyenet)
    return model, arcnet, bisenet, eyenet


def prepare(cache):
    names = ["Model.pt", "Arcface.tar", "FaceParser.pth", "GazeEstimator.pt"]
    if all(os.path.exists(os.path.join(cache, n)) for n in names):
        return
    os.makedirs(cache, exist_ok=True)
    model, arcnet, bisenet, eyenet = networks()
    torch.save({k: v.half() for k, v in model.state_dict().items()}, os.path.join(cache, "Model.pt"))
    torch.save(arc.arcface_checkpoint(arcnet, arc.ArcMarginModel(93431, 512)), os.path.join(cache, "Arcface.tar"))
    torch.save(bisenet.state_dict(), os.path.join(cache, "FaceParser.pth"))
    e = parsing.EYENET_FULL
    torch.save({"nstack": e["nstack"], "nfeatures": e["nfeatures"], "nlandmarks": e["nlandmarks"],
                "model_state_dict": eyenet.state_dict()}, os.path.join(cache, "GazeEstimator.pt"))


def torch_steps(cache, mode, steps):
    """Runs in a child process: loads the files as DiffFace does and times `steps` guided steps."""
    torch.set_num_threads(2)
    model = create_model(ADM)
    model.load_state_dict({k: v.float() for k, v in torch.load(os.path.join(cache, "Model.pt")).items()})
    arcnet = torch.load(os.path.join(cache, "Arcface.tar"), weights_only=False)["model"].module.eval()
    bisenet = parsing.BiSeNet()
    bisenet.load_state_dict(torch.load(os.path.join(cache, "FaceParser.pth")))
    bisenet.eval()
    g = torch.load(os.path.join(cache, "GazeEstimator.pt"))
    eyenet = parsing.EyeNet(g["nstack"], g["nfeatures"], g["nlandmarks"])
    eyenet.load_state_dict(g["model_state_dict"])
    eyenet.train()
    for m in (model, arcnet, bisenet, eyenet):
        m.requires_grad_(False)
    model.eval()
    nets = (arcnet, bisenet, eyenet)
    gen = torch.Generator().manual_seed(1)
    target = parsing.noise_tensor("diffface.target", [1, 3, 256, 256], 0.0, 0.8)
    source = parsing.noise_tensor("diffface.source", [1, 3, 256, 256], 0.0, 0.8)
    mask = torch.zeros(1, 1, 256, 256)
    mask[:, :, 60:200, 70:190] = 1
    boxes = [[80, 100, 120, 118], [136, 101, 178, 119]]
    d = Diffusion("linear", 1000, "100", "learned_range", rescale=True)
    with torch.no_grad():
        src = torch.nn.functional.normalize(ref.embedding(arcnet, source), p=2, dim=1)
        targ_parse = ref.parse(bisenet, target)
        targ_gaze = [ref.eye_gaze(eyenet, target, b) for b in boxes]
    x = d.q_sample(target, 74, torch.randn(1, 3, 256, 256, generator=gen))
    times = []
    for k in range(steps):
        t = 30  # gaze on, as in most of the chain's middle
        start = time.perf_counter()
        xl = x.detach().requires_grad_(True)
        # One UNet forward a step, reused for the mean (DiffFace's cond_fn calls p_mean_variance a
        # second time; that second forward is left out here, as Guise leaves it out).
        if mode == "through-unet":
            out = model(xl, d.model_t(t, 1), src_id=src)
        else:
            with torch.no_grad():
                out = model(xl, d.model_t(t, 1), src_id=src)
        x0 = d.xstart_from_eps(xl, t, out[:, :3])
        fac = d.f(d.sqrt_one_minus_alphas_cumprod, t)
        terms = ref.losses(nets, x0 * fac + xl * (1 - fac), t, target, mask, src, targ_parse, boxes, targ_gaze,
                           ref.random_views(gen, 7))
        grad = -torch.autograd.grad(sum(terms.values()), xl)[0]
        with torch.no_grad():
            o = d.p_mean_variance(lambda *a, **k: out.detach(), x, t, False, {"src_id": src})
            x = o["mean"] + o["variance"] * grad + torch.exp(0.5 * o["log_variance"]) * torch.randn(x.shape, generator=gen)
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds_per_step": min(times), "all": times,
                      "isa": torch.backends.cpu.get_cpu_capability()}))


AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def child_json(cmd, env=None):
    """Runs cmd (with env added to ours); its stdout, and its own peak RSS in MB (from wait4, so per process)."""
    import tempfile
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=dict(os.environ, **(env or {})))
        _, status, usage = os.wait4(p.pid, 0)
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"{' '.join(cmd)} failed: {err.read().strip()[-400:]}")
        return out.read(), usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guise", required=True)
    ap.add_argument("--cache", default=os.path.join(ROOT, ".build", "bench-diffface"))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--torch-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_child:
        torch_steps(a.cache, a.torch_child[0], int(a.torch_child[1]))
        return
    prepare(a.cache)
    print(f"DiffFace step, full size (ADM 256 channels at 256², IR-SE50, BiSeNet 512², EyeNet), {a.steps} steps, 2 threads each")
    print(f"{'gradient':<14}{'Guise s/step':>13}{'PyTorch s/step':>15}{'ratio':>7}{'PyTorch AVX2':>13}{'ratio':>7}"
          f"{'Guise peak MB':>14}{'PyTorch peak MB':>16}")
    isa = None
    for mode in ("through-unet", "x0"):
        out, g_peak = child_json([a.guise, "swap", "--source", os.path.join(ROOT, "Samples/obama.jpg"),
                                "--target", os.path.join(ROOT, "Samples/biden.jpg"), "-o", "/tmp/guise-bench-diffface.png",
                                "--json", "--quiet", "--diffface", a.cache, "--grad", mode, "--steps", "100",
                                "--strength", str(a.steps / 100), "--samples", "1"])
        r = json.loads(out)
        # The fastest step, as PyTorch's side reports its fastest: loading and warm-up left out.
        g_step = r["report"].get("fastestStepSeconds") or r["report"]["seconds"]["diffusion"] / max(1, r["report"]["stepsRun"])
        runs = []
        for env in (None, AVX2):
            out, peak = child_json([sys.executable, __file__, "--guise", a.guise, "--cache", a.cache,
                                    "--torch-child", mode, str(a.steps)], env)
            runs.append((json.loads(out.strip().splitlines()[-1]), peak))
        (t, t_peak), (t2, _) = runs
        isa = t["isa"]
        print(f"{mode:<14}{g_step:>13.2f}{t['seconds_per_step']:>15.2f}{g_step / t['seconds_per_step']:>7.2f}"
              f"{t2['seconds_per_step']:>13.2f}{g_step / t2['seconds_per_step']:>7.2f}{g_peak:>14.0f}{t_peak:>16.0f}", flush=True)
    print(f"PyTorch's CPU capability as installed: {isa}; Guise's own kernels are AVX2 (Haswell); {blas_info.describe()}.")

if __name__ == "__main__":
    main()
