"""PyTorch reference for Guise's diffusion core: the guided-diffusion ADM UNet and the Gaussian
diffusion sampling math, written for this project from the published layout facts
(openai/guided-diffusion unet.py / nn.py / script_util.py / gaussian_diffusion.py / respace.py,
hxngiee/DiffFace's id_embed, andreas128/RePaint's jump schedule).

Run by `make fixtures`, or alone in its torch venv:  .venv/bin/python Tools/reference_adm.py
Writes
  Tests/Fixtures/adm_<name>.pt            torch.save(state_dict), loadable as is
  Tests/Fixtures/adm_<name>.json          create_model argument names (+ num_classes, id_dim)
  Tests/Fixtures/adm_<name>_io.safetensors  x, t, [y], [id], out, seed, grad_x
  Tests/Fixtures/diffusion_*.safetensors  schedules, respacing, trajectories, RePaint lists
  Tests/Fixtures/adm_refattn_io.safetensors  reference attention on the tiny and legacy ADMs

Every weight is random (zero-initialised layers included) with scales chosen so activations stay O(1).
The `bench` subcommand times the DiffFace-sized model on CPU for `make bench`.
"""
import json, math, os, sys, zlib

import numpy as np
import torch as th
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET_DIR = DIFF_DIR = fixture_io.FIXTURES

# ---------------------------------------------------------------------------------------------
# ADM UNet
# ---------------------------------------------------------------------------------------------


class GroupNorm32(nn.GroupNorm):
    """32 groups, computed in float32 whatever the input dtype (as guided-diffusion does)."""

    def __init__(self, channels):
        super().__init__(32, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t, dim, max_period=10000):
    """[cos(t·f_i), sin(t·f_i)] with f_i = exp(−ln(max_period)·i/half), i < half; zero pad if odd."""
    half = dim // 2
    freqs = th.exp(-math.log(max_period) * th.arange(half, dtype=th.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = th.cat([th.cos(args), th.sin(args)], dim=-1)
    if dim % 2:
        emb = th.cat([emb, th.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Upsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.channels, self.use_conv = channels, use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.op(x)


class ResBlock(nn.Module):
    def __init__(self, channels, emb_channels, out_channels=None, use_scale_shift_norm=False, up=False, down=False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(p=0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1))
        # The UNet never asks for the 3x3 skip (use_conv), so only identity or 1x1 exist.
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = th.chunk(e, 2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


def qkv_attention_legacy(qkv, heads):
    """Heads split first: qkv viewed as [N·H, 3·ch, T], then q, k, v."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    s = 1 / math.sqrt(math.sqrt(ch))
    w = th.softmax(th.einsum("bct,bcs->bts", q * s, k * s).float(), dim=-1).type(q.dtype)
    return th.einsum("bts,bcs->bct", w, v).reshape(bs, -1, length)


def qkv_attention_new(qkv, heads):
    """q, k, v split first (chunks of the channel axis), then heads."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.chunk(3, dim=1)
    s = 1 / math.sqrt(math.sqrt(ch))
    w = th.einsum("bct,bcs->bts", (q * s).reshape(bs * heads, ch, length), (k * s).reshape(bs * heads, ch, length))
    w = th.softmax(w.float(), dim=-1).type(w.dtype)
    return th.einsum("bts,bcs->bct", w, v.reshape(bs * heads, ch, length)).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.new_order = use_new_attention_order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        if REFERENCE is not None:
            h = qkv_attention_reference(qkv, self.num_heads, self.new_order, *REFERENCE)
        else:
            h = (qkv_attention_new if self.new_order else qkv_attention_legacy)(qkv, self.num_heads)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


# Reference attention: (samples, log w) while a forward runs with reference rows after the samples
# in its batch; None otherwise.
REFERENCE = None


def qkv_attention_reference(qkv, heads, new_order, samples, log_w):
    """Rows 0..samples-1 are samples, the rest references (one per sample, or one for all). A
    sample's queries see its own keys and values followed by its reference's, the reference's
    logits raised by log w; a reference row attends to itself only."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    if new_order:
        q, k, v = (a.reshape(bs, heads, ch, length) for a in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(bs, heads, ch * 3, length).split(ch, dim=2)
    refs = bs - samples
    pair = list(range(samples)) if refs == samples else [0] * samples
    kr, vr = k[samples:][pair], v[samples:][pair]
    scale = 1 / math.sqrt(ch)
    logits_own = th.einsum("bhct,bhcs->bhts", q[:samples], k[:samples]) * scale
    logits_ref = th.einsum("bhct,bhcs->bhts", q[:samples], kr) * scale + log_w
    w = th.softmax(th.cat([logits_own, logits_ref], dim=-1), dim=-1)
    out_s = th.einsum("bhts,bhcs->bhct", w, th.cat([v[:samples], vr], dim=-1))
    w_r = th.softmax(th.einsum("bhct,bhcs->bhts", q[samples:], k[samples:]) * scale, dim=-1)
    out_r = th.einsum("bhts,bhcs->bhct", w_r, v[samples:])
    return th.cat([out_s, out_r], dim=0).reshape(bs, heads * ch, length)


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    def __init__(self, image_size, in_channels, model_channels, out_channels, num_res_blocks, attention_resolutions,
                 channel_mult=(1, 2, 4, 8), conv_resample=True, num_classes=None, num_heads=1, num_head_channels=-1,
                 num_heads_upsample=-1, use_scale_shift_norm=False, resblock_updown=False,
                 use_new_attention_order=False, id_dim=None):
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.model_channels = model_channels
        self.num_classes = num_classes
        self.id_dim = id_dim
        ted = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
        if id_dim is not None:  # DiffFace: emb = time_embed(t) + id_embed(src_id)
            self.id_embed = nn.Sequential(nn.Linear(id_dim, ted), nn.SiLU(), nn.Linear(ted, ted))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, ted)

        def attn(c, heads):
            return AttentionBlock(c, num_heads=heads, num_head_channels=num_head_channels,
                                  use_new_attention_order=use_new_attention_order)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, ted, int(mult * model_channels), use_scale_shift_norm)]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                down = (ResBlock(ch, ted, ch, use_scale_shift_norm, down=True) if resblock_updown
                        else Downsample(ch, conv_resample, ch))
                self.input_blocks.append(TimestepEmbedSequential(down))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, ted, None, use_scale_shift_norm), attn(ch, num_heads), ResBlock(ch, ted, None, use_scale_shift_norm))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                ich = chans.pop()
                layers = [ResBlock(ch + ich, ted, int(model_channels * mult), use_scale_shift_norm)]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, ted, ch, use_scale_shift_norm, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample, ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(input_ch, out_channels, 3, padding=1))

    def forward(self, x, timesteps, y=None, src_id=None):
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.id_dim is not None:
            emb = emb + self.id_embed(src_id)
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs = []
        h = x
        for m in self.input_blocks:
            h = m(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for m in self.output_blocks:
            h = m(th.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


DEFAULT_MULT = {512: (1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


def create_model(cfg):
    """guided-diffusion's create_model, driven by a dict of its argument names (+ num_classes, id_dim)."""
    size = cfg["image_size"]
    cm = cfg.get("channel_mult", "")
    mult = DEFAULT_MULT[size] if cm == "" else tuple(int(c) for c in cm.split(","))
    ds = tuple(size // int(r) for r in cfg.get("attention_resolutions", "16").split(","))
    return UNetModel(
        image_size=size, in_channels=3, model_channels=cfg["num_channels"],
        out_channels=6 if cfg.get("learn_sigma", False) else 3, num_res_blocks=cfg["num_res_blocks"],
        attention_resolutions=ds, channel_mult=mult,
        num_classes=cfg.get("num_classes", 1000) if cfg.get("class_cond", False) else None,
        num_heads=cfg.get("num_heads", 1), num_head_channels=cfg.get("num_head_channels", -1),
        num_heads_upsample=cfg.get("num_heads_upsample", -1),
        use_scale_shift_norm=cfg.get("use_scale_shift_norm", False), resblock_updown=cfg.get("resblock_updown", False),
        use_new_attention_order=cfg.get("use_new_attention_order", False), id_dim=cfg.get("id_dim"))


def randomize(model, gen, f16_exact):
    """Random weights for every parameter, zero-initialised layers included, scaled to keep
    activations O(1): conv/linear ~ N(0, 0.8²/fan_in), norms ~ 1 ± 0.1, biases ~ 0.05."""
    with th.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "in_layers.0" in name or "out_layers.0" in name or name.startswith("out.0")):
                v = (1 + 0.1 * th.randn(p.shape, generator=gen)) if name.endswith("weight") else 0.1 * th.randn(p.shape, generator=gen)
            elif p.dim() == 1:
                v = 0.05 * th.randn(p.shape, generator=gen)
            elif "label_emb" in name:
                v = 0.5 * th.randn(p.shape, generator=gen)
            else:
                fan_in = p[0].numel()
                v = th.randn(p.shape, generator=gen) * (0.8 / math.sqrt(fan_in))
            if f16_exact:
                v = v.half().float()
            p.copy_(v)


ADM_CONFIGS = {
    # Every checkpoint is stored in fp16 (as a use_fp16 model's converted weights) to keep the committed
    # fixtures small; the reference runs in float32 on exactly those values.
    # 32², two levels, new attention order with head channels, scale-shift norm, resblock up/down, learn_sigma.
    "tiny": dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,1", attention_resolutions="16",
                 num_heads=4, num_head_channels=16, num_heads_upsample=-1, use_scale_shift_norm=True,
                 resblock_updown=True, use_new_attention_order=True, learn_sigma=True, class_cond=False,
                 dtype="float16"),
    # Legacy attention order, heads by count with a different upsampling head count, conv resampling,
    # additive timestep embedding.
    "legacy": dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,1", attention_resolutions="16,8",
                   num_heads=2, num_head_channels=-1, num_heads_upsample=4, use_scale_shift_norm=False,
                   resblock_updown=False, use_new_attention_order=False, learn_sigma=False, class_cond=False,
                   dtype="float16"),
    # Class-conditional, one level.
    "class": dict(image_size=8, num_channels=32, num_res_blocks=1, channel_mult="1", attention_resolutions="8",
                  num_heads=1, num_head_channels=-1, num_heads_upsample=-1, use_scale_shift_norm=True,
                  resblock_updown=False, use_new_attention_order=False, learn_sigma=False, class_cond=True,
                  num_classes=10, dtype="float16"),
    # DiffFace-style identity embedding added to the timestep embedding.
    "id": dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1", attention_resolutions="16",
               num_heads=4, num_head_channels=32, num_heads_upsample=-1, use_scale_shift_norm=True,
               resblock_updown=False, use_new_attention_order=False, learn_sigma=True, class_cond=False,
               id_dim=512, dtype="float16"),
}


def make_adm_fixtures():
    os.makedirs(NET_DIR, exist_ok=True)
    for i, (name, cfg) in enumerate(ADM_CONFIGS.items()):
        gen = th.Generator().manual_seed(1000 + i)
        model = create_model(cfg).eval()
        f16 = cfg["dtype"] == "float16"
        randomize(model, gen, f16_exact=f16)
        sd = model.state_dict()
        stored = {k: (v.half() if f16 else v.clone()) for k, v in sd.items()}
        th.save(stored, os.path.join(NET_DIR, f"adm_{name}.pt"))
        with open(os.path.join(NET_DIR, f"adm_{name}.json"), "w") as f:
            json.dump({k: v for k, v in cfg.items() if k != "dtype"}, f, indent=1, sort_keys=True)

        size = cfg["image_size"]
        x = th.randn(2, 3, size, size, generator=gen)
        t = th.tensor([3.0, 617.5])  # fractional timesteps occur with rescale_timesteps
        io = {"x": x.numpy(), "t": t.numpy()}
        kwargs = {}
        if cfg.get("class_cond"):
            y = th.tensor([3, 7], dtype=th.long)
            kwargs["y"] = y
            io["y"] = y.numpy()
        if cfg.get("id_dim"):
            src = F.normalize(th.randn(2, cfg["id_dim"], generator=gen), dim=1)
            kwargs["src_id"] = src
            io["id"] = src.numpy()
        xl = x.clone().requires_grad_(True)
        out = model(xl, t, **kwargs)
        seed = th.randn(out.shape, generator=gen)
        (out * seed).sum().backward()
        io.update(out=out.detach().numpy(), seed=seed.numpy(), grad_x=xl.grad.numpy())
        fixture_io.save(os.path.join(NET_DIR, f"adm_{name}_io.safetensors"), io)
        n = sum(p.numel() for p in model.parameters())
        print(f"adm_{name}: {n} parameters, |out| max {out.abs().max():.3f}, |grad| max {xl.grad.abs().max():.3f}")


# ---------------------------------------------------------------------------------------------
# Gaussian diffusion (float64 tables, float32 tensors, as guided-diffusion)
# ---------------------------------------------------------------------------------------------


def named_betas(name, n):
    if name == "linear":
        scale = 1000 / n
        return np.linspace(scale * 0.0001, scale * 0.02, n, dtype=np.float64)
    if name == "cosine":
        f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)])
    raise ValueError(name)


def space_timesteps(n, sections):
    if sections.startswith("ddim"):
        want = int(sections[4:])
        for stride in range(1, n):
            if len(range(0, n, stride)) == want:
                return sorted(range(0, n, stride))
        raise ValueError(f"cannot create exactly {want} steps with an integer stride")
    counts = [int(c) for c in sections.split(",")]
    size_per, extra = divmod(n, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(steps))


class Diffusion:
    def __init__(self, schedule="linear", steps=1000, respacing="", var_type="learned_range", rescale=False):
        base = named_betas(schedule, steps)
        use = space_timesteps(steps, respacing) if respacing else list(range(steps))
        ac_base = np.cumprod(1.0 - base)
        last, betas, self.timestep_map = 1.0, [], []
        for i, a in enumerate(ac_base):
            if i in use:
                betas.append(1 - a / last)
                last = a
                self.timestep_map.append(i)
        b = np.array(betas, dtype=np.float64)
        self.original_steps, self.var_type, self.rescale = steps, var_type, rescale
        self.betas = b
        self.num_timesteps = len(b)
        ac = np.cumprod(1.0 - b)
        self.alphas_cumprod = ac
        self.alphas_cumprod_prev = np.append(1.0, ac[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(ac)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1)
        self.posterior_variance = b * (1.0 - self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = b * np.sqrt(self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(1.0 - b) / (1.0 - ac)

    def tables(self):
        return {k: getattr(self, k) for k in (
            "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
            "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2")}

    @staticmethod
    def f(arr, t):  # a table entry as the float32 scalar guided-diffusion multiplies by
        return th.tensor(float(arr[t]), dtype=th.float64).float()

    def model_t(self, t, n):
        v = float(self.timestep_map[t])
        if self.rescale:
            v = v * (1000.0 / self.original_steps)
        return th.full((n,), v, dtype=th.float32)

    def q_sample(self, x0, t, noise):
        return self.f(self.sqrt_alphas_cumprod, t) * x0 + self.f(self.sqrt_one_minus_alphas_cumprod, t) * noise

    def xstart_from_eps(self, x, t, eps):
        return self.f(self.sqrt_recip_alphas_cumprod, t) * x - self.f(self.sqrt_recipm1_alphas_cumprod, t) * eps

    def eps_from_xstart(self, x, t, x0):
        return (self.f(self.sqrt_recip_alphas_cumprod, t) * x - x0) / self.f(self.sqrt_recipm1_alphas_cumprod, t)

    def posterior_mean(self, x0, x, t):
        return self.f(self.posterior_mean_coef1, t) * x0 + self.f(self.posterior_mean_coef2, t) * x

    def p_mean_variance(self, model, x, t, clip, kw):
        out = model(x, self.model_t(t, x.shape[0]), **kw)
        C = x.shape[1]
        if self.var_type == "learned_range":
            eps, v = out[:, :C], out[:, C:]
            min_log = self.f(self.posterior_log_variance_clipped, t)
            max_log = self.f(np.log(self.betas), t)
            frac = (v + 1) / 2
            log_var = frac * max_log + (1 - frac) * min_log
            var = th.exp(log_var)
        else:
            eps = out
            if self.var_type == "fixed_large":
                table = np.append(self.posterior_variance[1], self.betas[1:])
                var_t, log_t = table, np.log(table)
            else:
                var_t, log_t = self.posterior_variance, self.posterior_log_variance_clipped
            var = self.f(var_t, t).expand(x.shape)
            log_var = self.f(log_t, t).expand(x.shape)
        x0 = self.xstart_from_eps(x, t, eps)
        if clip:
            x0 = x0.clamp(-1, 1)
        return dict(mean=self.posterior_mean(x0, x, t), variance=var, log_variance=log_var, pred_xstart=x0, eps=eps)

    def p_sample(self, model, x, t, noise, clip, kw, cond_fn=None):
        out = self.p_mean_variance(model, x, t, clip, kw)
        mean = out["mean"]
        if cond_fn is not None:
            mean = mean.float() + out["variance"] * cond_fn(x, t).float()
        nonzero = 0.0 if t == 0 else 1.0
        return mean + nonzero * th.exp(0.5 * out["log_variance"]) * noise, out["pred_xstart"]

    def ddim_sample(self, model, x, t, noise, clip, kw, eta, cond_fn=None):
        out = self.p_mean_variance(model, x, t, clip, kw)
        x0 = out["pred_xstart"]
        if cond_fn is not None:
            eps = self.eps_from_xstart(x, t, x0)
            eps = eps - self.f(np.sqrt(1 - self.alphas_cumprod), t) * cond_fn(x, t)
            x0 = self.xstart_from_eps(x, t, eps)
        eps = self.eps_from_xstart(x, t, x0)
        ab = self.f(self.alphas_cumprod, t)
        abp = self.f(self.alphas_cumprod_prev, t)
        sigma = eta * th.sqrt((1 - abp) / (1 - ab)) * th.sqrt(1 - ab / abp)
        mean = x0 * th.sqrt(abp) + th.sqrt(1 - abp - sigma ** 2) * eps
        nonzero = 0.0 if t == 0 else 1.0
        return mean + nonzero * sigma * noise, x0


def get_schedule_jump(t_T, jump_length, jump_n_sample):
    """RePaint's time-travel schedule (n_sample = 1, no second/third-level jumps)."""
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


def analytic_eps(w, learn_sigma):
    """A smooth stand-in denoiser, also written in the Swift tests. With q(t) = 1e-4·(t+1) +
    0.0199/1998·t·(t+1) (≈ −log ᾱ of the 1000-step linear schedule at network timestep t),
    ab = exp(−q), per batch element:
        m = 0.5·w + 0.3·x / (1 + x²),   eps = (x − sqrt(ab)·m) / sqrt(1 − ab)
    so that x̂0 ≈ m stays O(1) without clipping; variance values (learn_sigma) = 0.25·x."""
    def model(x, t):
        td = t.double()
        q = 1e-4 * (td + 1) + 0.0199 / 1998 * td * (td + 1)
        ab = th.exp(-q)
        g = (1 / th.sqrt(1 - ab)).float().view(-1, 1, 1, 1)
        h = th.sqrt(ab).float().view(-1, 1, 1, 1)
        m = 0.5 * w + 0.3 * x / (1 + x * x)
        eps = (x - h * m) * g
        return th.cat([eps, 0.25 * x], dim=1) if learn_sigma else eps
    return model


def make_diffusion_fixtures():
    os.makedirs(DIFF_DIR, exist_ok=True)
    # Schedules and respacing, in float64.
    sched = {}
    for name in ("linear", "cosine"):
        sched[f"{name}_1000_betas"] = named_betas(name, 1000)
    for key, (schedule, steps, spacing) in {
        "linear_100": ("linear", 1000, "100"), "linear_ddim50": ("linear", 1000, "ddim50"),
        "linear_10_10_10": ("linear", 1000, "10,10,10"), "cosine_25": ("cosine", 1000, "25"),
        "linear_250": ("linear", 1000, "250"), "cosine_4000_ddim25": ("cosine", 4000, "ddim25"),
        "linear_100_5_7_3": ("linear", 100, "5,7,3"),
    }.items():
        d = Diffusion(schedule, steps, spacing)
        sched[f"{key}_map"] = np.array(d.timestep_map, dtype=np.int64)
        for k, v in d.tables().items():
            sched[f"{key}_{k}"] = v
    fixture_io.save(os.path.join(DIFF_DIR, "diffusion_schedules.safetensors"), sched)

    # RePaint jump schedules.
    rp = {}
    for (tT, jl, jn) in [(250, 10, 10), (20, 3, 2), (50, 5, 4), (10, 1, 1)]:
        rp[f"repaint_{tT}_{jl}_{jn}"] = np.array(get_schedule_jump(tT, jl, jn), dtype=np.int64)
    fixture_io.save(os.path.join(DIFF_DIR, "diffusion_repaint.safetensors"), rp)

    # Trajectories with fixed noise. Noise order per run: the initial noise, then one tensor per step
    # (drawn even where a step adds none), then, with a mask, one tensor per step for the noised input.
    gen = th.Generator().manual_seed(7)
    shape = (2, 3, 6, 6)
    x0 = (th.rand(shape, generator=gen) * 2 - 1) * 0.9
    w = th.randn(shape, generator=gen) * 0.5
    target = (th.rand(shape, generator=gen) * 2 - 1) * 0.5
    mask = th.zeros(1, 1, 6, 6)
    mask[:, :, 1:4, 2:5] = 1
    traj = {"x0": x0, "w": w, "target": target, "mask": mask}

    def energy(g):  # a simple guidance energy on the guidance image
        return 0.05 * ((g - target) ** 2).sum()

    def run(key, method, var_type, respacing, skip, clip, rescale, eta=0.0, guide=None, guide_image="xstart",
            mask_ramp=None):
        d = Diffusion("linear", 1000, respacing, var_type, rescale)
        model = analytic_eps(w, var_type == "learned_range")
        steps = list(range(d.num_timesteps - skip))[::-1]
        g = th.Generator().manual_seed(zlib.crc32(key.encode()))
        noises = [th.randn(shape, generator=g) for _ in range(1 + len(steps))]
        blend_noises = [th.randn(shape, generator=g) for _ in range(len(steps))] if mask_ramp is not None else []
        x = d.q_sample(x0, steps[0], noises[0]) if skip else noises[0]
        traj[f"{key}_noise"] = th.stack(noises)
        if blend_noises:
            traj[f"{key}_blend_noise"] = th.stack(blend_noises)

        def cond_fn(xt, t):
            xl = xt.detach().requires_grad_(True)
            out = model(xl, d.model_t(t, xt.shape[0]))[:, :xt.shape[1]]
            if guide == "prediction":
                out = out.detach()
            x0p = d.xstart_from_eps(xl, t, out)  # guidance never clips (as DiffFace)
            if guide_image == "diffface":
                fac = d.f(d.sqrt_one_minus_alphas_cumprod, t)
                x0p = x0p * fac + xl * (1 - fac)
            return -th.autograd.grad(energy(x0p), xl)[0]

        xs, x0s = [], []
        for j, t in enumerate(steps):
            kw = {}
            cf = cond_fn if guide else None
            if method == "ddpm":
                x, px = d.p_sample(lambda a, b: model(a, b), x, t, noises[1 + j], clip, kw, cf)
            else:
                x, px = d.ddim_sample(lambda a, b: model(a, b), x, t, noises[1 + j], clip, kw, eta, cf)
            if mask_ramp is not None:  # DiffFace: blend with the input noised to the step's own level t
                m = mask * min(1.0, j / mask_ramp)
                x = x * m + d.q_sample(x0, t, blend_noises[j]) * (1 - m)
            xs.append(x.detach())
            x0s.append(px.detach())
        traj[f"{key}_x"] = th.stack(xs)
        traj[f"{key}_pred_xstart"] = th.stack(x0s)
        if mask_ramp is not None:
            traj[f"{key}_final"] = x0 * (1 - mask) + x0s[-1] * mask

    run("ddpm_learned", "ddpm", "learned_range", "10", 0, True, False)
    run("ddpm_fixed_large", "ddpm", "fixed_large", "10", 0, False, True)
    run("ddpm_fixed_small_skip", "ddpm", "fixed_small", "10", 6, True, True)
    run("ddim_eta0", "ddim", "learned_range", "ddim10", 0, True, False)
    run("ddim_eta05_skip", "ddim", "fixed_large", "10", 5, False, True, eta=0.5)
    run("ddpm_guided_unet", "ddpm", "learned_range", "10", 4, False, True, guide="unet")
    run("ddpm_guided_prediction", "ddpm", "learned_range", "10", 4, False, True, guide="prediction")
    run("ddim_guided_unet", "ddim", "learned_range", "10", 4, False, True, guide="unet")
    run("ddim_guided_prediction_eta05", "ddim", "fixed_large", "10", 4, True, False, eta=0.5, guide="prediction")
    run("diffface", "ddpm", "learned_range", "10", 3, False, True, guide="unet", guide_image="diffface",
        mask_ramp=10 - 6)
    for k, v in traj.items():
        assert th.isfinite(v).all(), k
    fixture_io.save(os.path.join(DIFF_DIR, "diffusion_trajectories.safetensors"),
                    {k: v.numpy() if isinstance(v, th.Tensor) else v for k, v in traj.items()})


def make_adm_sampling_fixture():
    """The tiny ADM as the denoiser of short DDPM and guided DDIM runs, with fixed noise: checks the
    sampler and the network together (timestep mapping, learned variance, gradient through the UNet)."""
    cfg = ADM_CONFIGS["tiny"]
    model = create_model(cfg).eval()
    sd = th.load(os.path.join(NET_DIR, "adm_tiny.pt"))
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    model.requires_grad_(False)
    gen = th.Generator().manual_seed(99)
    shape = (1, 3, 32, 32)
    x0 = (th.rand(shape, generator=gen) * 2 - 1) * 0.8
    target = th.zeros(shape)
    res = {"x0": x0}
    for key, method, spacing, skip, guide in [("ddpm", "ddpm", "6", 2, False), ("ddim_guided", "ddim", "ddim6", 2, True)]:
        d = Diffusion("linear", 1000, spacing, "learned_range", rescale=True)
        steps = list(range(d.num_timesteps - skip))[::-1]
        noises = [th.randn(shape, generator=gen) for _ in range(1 + len(steps))]
        x = d.q_sample(x0, steps[0], noises[0])

        def cond_fn(xt, t):
            xl = xt.detach().requires_grad_(True)
            eps = model(xl, d.model_t(t, 1))[:, :3]
            g = d.xstart_from_eps(xl, t, eps)
            return -th.autograd.grad(0.5 * ((g - target) ** 2).sum(), xl)[0]

        xs = []
        for j, t in enumerate(steps):
            net = lambda a, b: model(a, b)
            if method == "ddpm":
                x, _ = d.p_sample(net, x, t, noises[1 + j], True, {}, cond_fn if guide else None)
            else:
                x, _ = d.ddim_sample(net, x, t, noises[1 + j], False, {}, 0.5, cond_fn if guide else None)
            xs.append(x.detach())
        res[f"{key}_noise"] = th.stack(noises)
        res[f"{key}_x"] = th.stack(xs)
    fixture_io.save(os.path.join(NET_DIR, "adm_tiny_sampling.safetensors"), {k: v.numpy() for k, v in res.items()})


def make_refattn_fixture():
    """Reference attention on two stored ADMs: tiny (new attention order, a reference per sample,
    w = 0.6, different timesteps) and legacy (legacy order, attention at two levels, one reference
    shared by both samples at one timestep, w = 2.5). The reference rows get their sample's
    timestep; outputs and input gradients are of the sample rows."""
    global REFERENCE
    res = {}
    for i, (name, shared, w, t) in enumerate([("tiny", False, 0.6, [40.0, 700.0]), ("legacy", True, 2.5, [300.0, 300.0])]):
        cfg = ADM_CONFIGS[name]
        model = create_model(cfg).eval()
        sd = th.load(os.path.join(NET_DIR, f"adm_{name}.pt"))
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        model.requires_grad_(False)
        gen = th.Generator().manual_seed(2000 + i)
        size = cfg["image_size"]
        x = th.randn(2, 3, size, size, generator=gen)
        xr = th.randn(1 if shared else 2, 3, size, size, generator=gen)
        tt = th.tensor(t)
        t_all = th.cat([tt, tt[:1] if shared else tt])
        xl = x.clone().requires_grad_(True)
        REFERENCE = (2, math.log(w))
        try:
            out = model(th.cat([xl, xr]), t_all)[:2]
        finally:
            REFERENCE = None
        seed = th.randn(out.shape, generator=gen)
        (out * seed).sum().backward()
        plain = model(x, tt)
        res.update({f"{name}.x": x, f"{name}.reference": xr, f"{name}.t": tt, f"{name}.weight": th.tensor([w]),
                    f"{name}.out": out.detach(), f"{name}.seed": seed, f"{name}.grad_x": xl.grad, f"{name}.plain": plain.detach()})
        print(f"adm_refattn {name}: |out - plain| max {(out - plain).abs().max():.4f}, |out| max {out.abs().max():.3f}")
    fixture_io.save(os.path.join(NET_DIR, "adm_refattn_io.safetensors"), {k: v.numpy() for k, v in res.items()})


# ---------------------------------------------------------------------------------------------

if __name__ == "__main__":
    th.manual_seed(0)
    what = sys.argv[1:] or ["adm", "diffusion", "refattn"]
    if "adm" in what:
        make_adm_fixtures()
        make_adm_sampling_fixture()
    if "refattn" in what:
        make_refattn_fixture()
    if "diffusion" in what:
        make_diffusion_fixtures()
