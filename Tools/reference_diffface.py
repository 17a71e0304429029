"""One guided DiffFace step in PyTorch, written for this project from the facts of DiffFace's public
`optimization/image_editor.py` (hxngiee/DiffFace): the losses on x_in = x̂0·√(1−ᾱ) + x_t·(1−√(1−ᾱ)),
their gradient back through the ID-conditioned ADM, guided-diffusion's condition_mean, and the ramped
blend with the noised target. The networks are small random-weight versions of the public layouts
(ADM with id_embed, SimSwap's IR-SE ArcFace, face-parsing BiSeNet, the stacked-hourglass EyeNet),
saved the way DiffFace's files are (a pickled DataParallel ArcFace, state_dicts for the rest).

    .venv/bin/python Tools/reference_diffface.py          # run by `make fixtures`

Writes Tests/Fixtures/diffface_step/: Model.pt, model.json (its config), Arcface.tar,
FaceParser.pth, GazeEstimator.pt and step.safetensors (inputs, replayed noise, the augmented views as
matrices, each weighted loss term, the gradient w.r.t. x_t, the guided mean, the blended sample, for a
DDPM step with the gradient through the network and one with the gradient through x̂0 only).

Where DiffFace draws random kornia augmentations, the reference takes the views Guise draws as
explicit matrices (an affine grid with border padding, then a homography grid with zero padding),
so both sides sample the same images.
"""
import json, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io  # noqa: E402
from reference_adm import Diffusion, create_model, randomize  # noqa: E402
import make_fixtures_arcface as arc  # noqa: E402
import make_fixtures_parsing as parsing  # noqa: E402

OUT = os.path.join(fixture_io.FIXTURES, "diffface_step")
EMB = 32  # the identity width of these small networks (DiffFace's is 512)
ADM = dict(image_size=256, num_channels=32, num_res_blocks=1, channel_mult="1,1,1,1", attention_resolutions="32",
           num_heads=1, num_head_channels=32, num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=False,
           use_new_attention_order=False, learn_sigma=True, class_cond=False, id_dim=EMB)
BISENET = dict(classes=19, stem=4, stages=(4, 8, 8, 16), arm=8, fuse=8, mids=(8, 4, 4))
EYENET = dict(nstack=2, nfeatures=4, nlandmarks=3, stem=4, mid=8, hidden=4)
FACE_CLASSES = [1, 2, 3, 4, 5, 10, 11, 12, 13]
WEIGHTS = dict(identity=6000.0, semantic=200.0, gaze=200.0, background=50.0)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def imagenet(x):
    """(x + 1)/2, ImageNet-normalised."""
    return ((x + 1) / 2 - MEAN) / STD


def homography_grid(m, h, w):
    xs = (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=torch.float64) + 1) / h - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    m = m.double()
    d = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    u = (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / d
    v = (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / d
    return torch.stack([u, v], -1).float().unsqueeze(0)


def view(x, affine, persp):
    if affine is not None:
        grid = F.affine_grid(affine.view(1, 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if persp is not None:
        x = F.grid_sample(x, homography_grid(persp.view(3, 3), x.shape[2], x.shape[3]), mode="bilinear",
                          padding_mode="zeros", align_corners=False)
    return x


def random_views(gen, count):
    """Views like Guise's: a rotation ±15° and shift ±0.2 (normalised) with p 0.7, then corners
    moved inwards by up to 0.7 with p 0.7. Returned as matrices; the sampling here is only a source
    of test cases."""
    views = []
    for _ in range(count):
        u = lambda: float(torch.rand((), generator=gen, dtype=torch.float64))  # noqa: E731
        affine = persp = None
        if u() < 0.7:
            a = (u() * 2 - 1) * 15 * np.pi / 180
            tx, ty = (u() * 2 - 1) * 0.2, (u() * 2 - 1) * 0.2
            affine = torch.tensor([np.cos(a), np.sin(a), -tx, -np.sin(a), np.cos(a), -ty], dtype=torch.float32)
        if u() < 0.7:
            corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            moved = [(cx + (0.7 * u() if cx < 0 else -0.7 * u()), cy + (0.7 * u() if cy < 0 else -0.7 * u())) for cx, cy in corners]
            a_rows = []
            for (x, y), (u_, v_) in zip(moved, corners):
                a_rows.append([x, y, 1, 0, 0, 0, -u_ * x, -u_ * y, u_])
                a_rows.append([0, 0, 0, x, y, 1, -v_ * x, -v_ * y, v_])
            a_m = np.array(a_rows)
            h = np.linalg.solve(a_m[:, :8], a_m[:, 8])
            persp = torch.tensor(list(h) + [1.0], dtype=torch.float32)
        views.append((affine, persp))
    return views


def embedding(net, x, mask=None, views=((None, None),)):
    a = imagenet(x)
    if mask is not None:
        a = a * mask
    small = F.interpolate(a, (112, 112))  # nearest, as DiffFace
    return net(torch.cat([view(small, af, pe) for af, pe in views], 0))


def cosine(a, b):
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def parse(net, x):
    big = F.interpolate(imagenet(x), (512, 512), mode="bilinear", align_corners=False)
    big = (big - 0.5) / 0.5  # SimSwap's SpecificNorm after the ImageNet normalisation
    return F.interpolate(net(big)[0], (256, 256), mode="bilinear", align_corners=False)


def eye_gaze(net, x, box):
    x0, y0, x1, y1 = box
    crop = (x * 0.5 + 0.5)[:, :, y0:y1, x0:x1].mean(1, keepdim=True)
    eye = F.interpolate(crop, (96, 160), mode="bilinear", align_corners=False)
    return net(eye.squeeze(1))[2]


def losses(nets, x_in, t, target, mask, src_emb, targ_parse, boxes, targ_gaze, views):
    arcnet, bisenet, eyenet = nets
    terms = {}
    e = embedding(arcnet, x_in, mask, [(None, None)] + views)
    terms["identity"] = (1 - cosine(e, src_emb)).mean() * WEIGHTS["identity"]
    p = parse(bisenet, x_in)
    terms["semantic"] = sum(F.l1_loss(p[0, c], targ_parse[0, c]) for c in FACE_CLASSES) * WEIGHTS["semantic"]
    if 10 < t < 50:
        terms["gaze"] = sum(F.l1_loss(eye_gaze(eyenet, x_in, b), g) for b, g in zip(boxes, targ_gaze)) * WEIGHTS["gaze"]
    terms["background"] = F.mse_loss(x_in, target) * WEIGHTS["background"]
    return terms


def sampled(fixture, name, t, gen, count=8192):
    """A 256² result kept small: its values at `count` random places, and its sum and sum of
    squares in float64 over all of it."""
    flat = t.detach().reshape(-1)
    idx = torch.randperm(flat.numel(), generator=gen)[:count].sort().values
    fixture[f"{name}_idx"] = idx
    fixture[f"{name}_val"] = flat[idx].clone()
    fixture[f"{name}_sums"] = torch.tensor([flat.double().sum(), flat.double().pow(2).sum()], dtype=torch.float64)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(11)

    model = create_model(ADM)
    randomize(model, gen, f16_exact=True)
    model.eval()
    torch.save({k: v.half() for k, v in model.state_dict().items()}, os.path.join(OUT, "Model.pt"))
    cfg = {k: v for k, v in ADM.items()}
    cfg.update(diffusion_steps=1000, noise_schedule="linear", rescale_timesteps=True)
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump(cfg, f, indent=1)

    arcnet = arc.randomise(arc.ResNet([1, 1, 1, 1], widths=(16, 16, 16, 32), emb=EMB), 5)
    metric = arc.ArcMarginModel(10, EMB)
    torch.save(arc.arcface_checkpoint(arcnet, metric), os.path.join(OUT, "Arcface.tar"))
    arcnet.eval()

    bisenet = parsing.BiSeNet(**BISENET)
    parsing.noise_state_dict(bisenet)
    bisenet.eval()
    torch.save(bisenet.state_dict(), os.path.join(OUT, "FaceParser.pth"))

    eyenet = parsing.EyeNet(**EYENET)
    parsing.noise_state_dict(eyenet)
    # DiffFace never puts its gaze network in eval mode: its batch norms use each batch's statistics.
    eyenet.train()
    torch.save({"nstack": EYENET["nstack"], "nfeatures": EYENET["nfeatures"], "nlandmarks": EYENET["nlandmarks"],
                "model_state_dict": eyenet.state_dict()}, os.path.join(OUT, "GazeEstimator.pt"))
    for m in (model, arcnet, bisenet, eyenet):
        m.requires_grad_(False)
    nets = (arcnet, bisenet, eyenet)

    # Inputs are the hash noise both sides regenerate (Tests/GuiseTestSupport/FixtureNoise.swift),
    # so only results are stored; √3 gives the diffusion noises unit variance.
    shape = [1, 3, 256, 256]
    target = parsing.noise_tensor("diffface.target", shape, 0.0, 0.8)
    source = parsing.noise_tensor("diffface.source", shape, 0.0, 0.8)
    mask = torch.zeros(1, 1, 256, 256)
    mask[:, :, 60:200, 70:190] = 1
    boxes = [[80, 100, 120, 118], [136, 101, 178, 119]]
    d = Diffusion("linear", 1000, "100", "learned_range", rescale=True)
    with torch.no_grad():
        src = F.normalize(embedding(arcnet, source), p=2, dim=1)
        targ_parse = parse(bisenet, target)
        targ_gaze = [eye_gaze(eyenet, target, b) for b in boxes]

    t, j = 30, 44  # 75 steps run from t = 74: the 45th step, gaze on, the ramp at 44/45
    views = random_views(gen, 7)
    noise_start, noise_step, noise_blend = (parsing.noise_tensor(f"diffface.{n}", shape, 0.0, 3 ** 0.5)
                                            for n in ("noise_start", "noise_step", "noise_blend"))
    x_t = d.q_sample(target, t, noise_start)
    kw = {"src_id": src}

    fixture = {"mask_box": torch.tensor([60, 200, 70, 190]), "boxes": torch.tensor(boxes, dtype=torch.int64),
               "source_embedding": src, "t": torch.tensor([t]), "step": torch.tensor([j])}
    sampled(fixture, "target_parsing", targ_parse, gen)
    fixture["target_gaze"] = torch.cat(targ_gaze, 0)
    fixture["view_affine"] = torch.stack([v[0] if v[0] is not None else torch.zeros(6) for v in views])
    fixture["view_affine_used"] = torch.tensor([v[0] is not None for v in views], dtype=torch.int64)
    fixture["view_perspective"] = torch.stack([v[1] if v[1] is not None else torch.zeros(9) for v in views])
    fixture["view_perspective_used"] = torch.tensor([v[1] is not None for v in views], dtype=torch.int64)

    for mode in ("unet", "x0"):
        x = x_t.detach().clone().requires_grad_(True)
        out = model(x, d.model_t(t, 1), **kw)
        eps = out[:, :3] if mode == "unet" else out[:, :3].detach()
        x0 = d.xstart_from_eps(x, t, eps)
        fac = d.f(d.sqrt_one_minus_alphas_cumprod, t)
        x_in = x0 * fac + x * (1 - fac)
        terms = losses(nets, x_in, t, target, mask, src, targ_parse, boxes, targ_gaze, views)
        total = sum(terms.values())
        grad = -torch.autograd.grad(total, x)[0]
        with torch.no_grad():
            o = d.p_mean_variance(model, x_t, t, False, kw)
            mean = o["mean"] + o["variance"] * grad
            sample = mean + torch.exp(0.5 * o["log_variance"]) * noise_step
            m = mask * min(1.0, j / 45)
            blended = sample * m + d.q_sample(target, t, noise_blend) * (1 - m)
        for k, v in terms.items():
            fixture[f"{mode}_term_{k}"] = v.detach().reshape(1)
        sampled(fixture, f"{mode}_grad", grad, gen)
        if mode == "unet":
            sampled(fixture, "pred_xstart", o["pred_xstart"], gen)
            sampled(fixture, "mean", mean, gen)
            sampled(fixture, "blended", blended, gen)
        print(mode, {k: round(float(v.detach()), 5) for k, v in terms.items()}, "grad rms %.3g" % float(grad.pow(2).mean().sqrt()))
    for k, v in fixture.items():
        assert torch.isfinite(v.double()).all(), k
    fixture_io.save(os.path.join(OUT, "step.safetensors"), {k: v.detach() for k, v in fixture.items()})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
