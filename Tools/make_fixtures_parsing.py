"""PyTorch references for two of DiffFace's guidance experts, written for this project from the
published layouts (hxngiee/DiffFace models/parsing.py, the face-parsing.PyTorch BiSeNet, and
models/gaze_estimation/, the stacked-hourglass EyeNet):

- BiSeNet: a ResNet-18 context path with attention refinement modules and a global-average
  context, a feature-fusion module fed by the backbone's 1/8 feature (no spatial path), three
  heads upsampled bilinearly with align_corners=True. DiffFace runs it in eval mode.
- EyeNet: pre (7x7 conv, residuals, max pool), hourglasses of depth 4 with bilinear upsampling
  (align_corners=False), heatmaps, a soft-argmax (beta 100) over the last stack's heatmaps, and a
  gaze head on a strided branch plus the landmarks. DiffFace never calls eval() on it, so its
  batch norms use the batch's own statistics; the fixtures hold both modes.

The classes take the widths the public code hard-codes as arguments (the defaults are the
published ones), so narrow copies fit in committed fixtures; Guise reads every width from the
checkpoint's shapes.

Run by `make fixtures`, or alone in the torch venv:  .venv/bin/python Tools/make_fixtures_parsing.py
Writes to Tests/Fixtures:
  bisenet_tiny.pt              a narrow BiSeNet (5 classes) state_dict, zip format, storages on 'cuda:0'
  bisenet_tiny_io.safetensors  out, out16, out32, grad_x (inputs x and seed are fixture noise)
  bisenet_full_io.safetensors  the published widths, 19 classes, weights from fixture noise
                               (metadata 'weights'): out, grad_x
  eyenet_tiny.pt               {'nstack', 'nfeatures', 'nlandmarks', 'model_state_dict'}, legacy format
                               as GPU-era torch wrote it: torch.cuda storage types on 'cuda:0' (a zip
                               archive of this network's ~900 small storages would be 300 KB)
  eyenet_tiny_io.safetensors   heatmaps (first stack), landmarks, gaze, grad_x; with suffix _train, landmarks, gaze
                               and grad_x with batch statistics (training-mode batch norm, as DiffFace
                               runs it)
  eyenet_full_io.safetensors   nstack 3, nfeatures 32, nlandmarks 34, weights from fixture noise

Fixture noise: value i (from 0) of tensor NAME is splitmix64's finaliser applied to
fnv1a64(NAME) + (i + 1)·0x9E3779B97F4A7C15, top 24 bits mapped to [-1, 1); a weight is
offset + scale·noise with (offset, scale) listed in the metadata. Tests/GuiseTestSupport
regenerates the same float32 values, so full-size networks need no committed weights.

The 'cuda:0' files are made on a CPU by having torch.serialization.location_tag answer 'cuda:0'
while saving (the persistent id's location field), and for the legacy file by renaming the
storage classes in the pickle to torch.cuda's; torch.load(map_location='cpu') reads both back.

`check` (not part of `make fixtures`; needs a release build) runs the published-size networks
(BiSeNet at 512²) through `guise model run` against torch and times both on 2 threads; its files
go to .cache/parsing-check:  .venv/bin/python Tools/make_fixtures_parsing.py check
"""
import argparse, copy, io, json, math, os, pickletools, subprocess, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io  # noqa: E402
from make_fixtures_formats import stable_legacy_keys  # noqa: E402

OUT = fixture_io.FIXTURES
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# Fixture noise
# ---------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & _M64
    return h


def noise(name, count):
    """count float32 values in [-1, 1), a pure function of (name, index)."""
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) * np.float32(2) - np.float32(1)


def noise_tensor(name, shape, offset=0.0, scale=1.0):
    n = int(np.prod(shape))
    v = np.float32(offset) + np.float32(scale) * noise(name, n)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def weight_recipe(name, shape, gains):
    """(offset, scale) of a state_dict entry: He-uniform convs and linears, batch norms near identity."""
    if name.endswith("running_mean"):
        return 0.0, 0.1
    if name.endswith("running_var"):
        return 1.0, 0.25
    if len(shape) == 1:  # batch-norm affines, and every bias
        return (1.0, 0.2) if name.endswith(".weight") else (0.0, 0.1)
    fan_in = int(np.prod(shape[1:]))
    gain = 1.0
    for pattern, g in gains.items():
        if pattern in name:
            gain = g
    return 0.0, gain * math.sqrt(6.0 / fan_in)


def noise_state_dict(model, gains=None, bn_bias=0.0):
    """Fills model with fixture-noise weights (batch-norm biases shifted by bn_bias); returns
    the recipe [(name, shape, offset, scale)]."""
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    recipe, sd = [], {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.zeros((), dtype=torch.long)
            continue
        off, sc = weight_recipe(name, list(t.shape), gains or {})
        if name.endswith(".bias") and name[:-len(".bias")] in norms:
            off += bn_bias
        sd[name] = noise_tensor(name, list(t.shape), off, sc)
        recipe.append([name, list(t.shape), off, sc])
    model.load_state_dict(sd, strict=True)
    return recipe


# ---------------------------------------------------------------------------------------------
# BiSeNet (models/parsing.py)
# ---------------------------------------------------------------------------------------------


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, ks=3, stride=1, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(s + r)


class Resnet18(nn.Module):
    def __init__(self, stem=64, stages=(64, 128, 256, 512), blocks=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem
        for k, c in enumerate(stages):
            layers = [BasicBlock(cin, c, 1 if k == 0 else 2)] + [BasicBlock(c, c) for _ in range(blocks - 1)]
            setattr(self, "layer%d" % (k + 1), nn.Sequential(*layers))
            cin = c

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        f8 = self.layer2(x)
        f16 = self.layer3(f8)
        f32 = self.layer4(f16)
        return f8, f16, f32


class ARM(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        f = self.conv(x)
        a = torch.sigmoid(self.bn_atten(self.conv_atten(F.avg_pool2d(f, f.shape[2:]))))
        return f * a


class ContextPath(nn.Module):
    def __init__(self, stem, stages, arm):
        super().__init__()
        self.resnet = Resnet18(stem, stages)
        self.arm16 = ARM(stages[2], arm)
        self.arm32 = ARM(stages[3], arm)
        self.conv_head32 = ConvBNReLU(arm, arm, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(arm, arm, 3, 1, 1)
        self.conv_avg = ConvBNReLU(stages[3], arm, 1, 1, 0)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(F.avg_pool2d(f32, f32.shape[2:]))
        avg = F.interpolate(avg, f32.shape[2:], mode="nearest")
        s32 = self.arm32(f32) + avg
        up32 = self.conv_head32(F.interpolate(s32, f16.shape[2:], mode="nearest"))
        s16 = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(s16, f8.shape[2:], mode="nearest"))
        return f8, up16, up32


class FFM(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp, fcp):
        f = self.convblk(torch.cat([fsp, fcp], dim=1))
        a = torch.sigmoid(self.conv2(F.relu(self.conv1(F.avg_pool2d(f, f.shape[2:])))))
        return f * a + f


class Head(nn.Module):
    def __init__(self, cin, mid, classes):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, classes=19, stem=64, stages=(64, 128, 256, 512), arm=128, fuse=256, mids=(256, 64, 64)):
        super().__init__()
        self.cp = ContextPath(stem, stages, arm)
        self.ffm = FFM(stages[1] + arm, fuse)
        self.conv_out = Head(fuse, mids[0], classes)
        self.conv_out16 = Head(arm, mids[1], classes)
        self.conv_out32 = Head(arm, mids[2], classes)

    def forward(self, x):
        h, w = x.shape[2:]
        f8, cp8, cp16 = self.cp(x)
        out = self.conv_out(self.ffm(f8, cp8))
        out16 = self.conv_out16(cp8)
        out32 = self.conv_out32(cp16)
        up = lambda t: F.interpolate(t, (h, w), mode="bilinear", align_corners=True)  # noqa: E731
        return up(out), up(out16), up(out32)


# ---------------------------------------------------------------------------------------------
# EyeNet (models/gaze_estimation/models/{layers,eyenet}.py, util/softargmax.py)
# ---------------------------------------------------------------------------------------------


class Conv(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, bn=False, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=True)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.use_relu = relu

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.use_relu else x


class Residual(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = int(cout / 2)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = Conv(cin, mid, 1, relu=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = Conv(mid, mid, 3, relu=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = Conv(mid, cout, 1, relu=False)
        # Built whatever the widths; used only when they differ (so always in the state_dict).
        self.skip_layer = Conv(cin, cout, 1, relu=False)
        self.need_skip = cin != cout

    def forward(self, x):
        r = self.skip_layer(x) if self.need_skip else x
        o = self.conv1(F.relu(self.bn1(x)))
        o = self.conv2(F.relu(self.bn2(o)))
        o = self.conv3(F.relu(self.bn3(o)))
        return o + r


class Hourglass(nn.Module):
    def __init__(self, n, f, increase=0):
        super().__init__()
        nf = f + increase
        self.up1 = Residual(f, f)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = Residual(f, nf)
        self.low2 = Hourglass(n - 1, nf) if n > 1 else Residual(nf, nf)
        self.low3 = Residual(nf, f)

    def forward(self, x):
        low = self.low3(self.low2(self.low1(self.pool1(x))))
        return self.up1(x) + F.interpolate(low, x.shape[2:], mode="bilinear")


class Merge(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = Conv(cin, cout, 1, relu=False, bn=False)

    def forward(self, x):
        return self.conv(x)


def softargmax2d(t, beta=100):
    *lead, h, w = t.shape
    p = F.softmax(beta * t.reshape(*lead, h * w), dim=-1)
    cols, rows = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h), indexing="xy")
    rows = torch.tensor(rows.reshape(-1, h * w))
    cols = torch.tensor(cols.reshape(-1, h * w))
    r = torch.sum((h - 1) * p * rows, dim=-1)
    c = torch.sum((w - 1) * p * cols, dim=-1)
    return torch.stack([r, c], dim=-1).type(torch.float32)


class EyeNet(nn.Module):
    def __init__(self, nstack, nfeatures, nlandmarks, stem=64, mid=128, hidden=256):
        super().__init__()
        self.nstack = nstack
        self.pre = nn.Sequential(Conv(1, stem, 7, 1, bn=True, relu=True), Residual(stem, mid), nn.MaxPool2d(2, 2),
                                 Residual(mid, mid), Residual(mid, nfeatures))
        self.pre2 = nn.Sequential(Conv(nfeatures, stem, 7, 2, bn=True, relu=True), Residual(stem, mid), nn.MaxPool2d(2, 2),
                                  Residual(mid, mid), Residual(mid, nfeatures))
        self.hgs = nn.ModuleList([nn.Sequential(Hourglass(4, nfeatures)) for _ in range(nstack)])
        self.features = nn.ModuleList([nn.Sequential(Residual(nfeatures, nfeatures), Conv(nfeatures, nfeatures, 1, bn=True, relu=True))
                                       for _ in range(nstack)])
        self.outs = nn.ModuleList([Conv(nfeatures, nlandmarks, 1, relu=False, bn=False) for _ in range(nstack)])
        self.merge_features = nn.ModuleList([Merge(nfeatures, nfeatures) for _ in range(nstack - 1)])
        self.merge_preds = nn.ModuleList([Merge(nlandmarks, nfeatures) for _ in range(nstack - 1)])
        self.gaze_fc1 = nn.Linear(int(nfeatures * 160 * 96 / 64 + nlandmarks * 2), hidden)
        self.gaze_fc2 = nn.Linear(hidden, 2)

    def forward(self, imgs):
        x = self.pre(imgs.unsqueeze(1))
        gx = self.pre2(x).flatten(start_dim=1)
        hms = []
        for i in range(self.nstack):
            feature = self.features[i](self.hgs[i](x))
            preds = self.outs[i](feature)
            hms.append(preds)
            if i < self.nstack - 1:
                x = x + self.merge_preds[i](preds) + self.merge_features[i](feature)
        landmarks = softargmax2d(preds)
        g = torch.cat((gx, landmarks.flatten(start_dim=1)), dim=1)
        gaze = self.gaze_fc2(F.relu(self.gaze_fc1(g)))
        return torch.stack(hms, 1), landmarks, gaze


# ---------------------------------------------------------------------------------------------
# Saving as DiffFace's files were saved
# ---------------------------------------------------------------------------------------------


def save_on_gpu(obj, path, legacy):
    """torch.save with every storage's location recorded as 'cuda:0' (see the module docstring)."""
    real = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        torch.serialization.location_tag = real
    if legacy:
        stable_legacy_keys(path)
        data = open(path, "rb").read()
        f = io.BytesIO(data)
        out = b""
        for _ in range(5):  # magic, protocol, sys_info, the object, the storage keys
            ops = list(pickletools.genops(f))
            ends = [pos for _, _, pos in ops[1:]] + [f.tell()]
            for (op, arg, pos), end in zip(ops, ends):
                if op.name == "GLOBAL" and arg.startswith("torch ") and arg.endswith("Storage"):
                    out += b"ctorch.cuda\n" + arg.split(" ")[1].encode() + b"\n"
                else:
                    out += data[pos:end]
        with open(path, "wb") as g:
            g.write(out + data[f.tell():])
    assert b"cuda:0" in open(path, "rb").read(), path


def loaded_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj["model_state_dict"] if "model_state_dict" in obj else obj


def vjp(f, x, seed):
    x = x.clone().requires_grad_(True)
    out = f(x)
    (g,) = torch.autograd.grad((out * seed).sum(), x)
    return out.detach(), g


def checked(name, tensors):
    for k, v in tensors.items():
        a = np.asarray(v)
        assert np.all(np.isfinite(a)), f"{name}: {k} is not finite"
    return tensors


def relative(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


def perturbed(net64, delta, tag):
    """Forward hooks adding delta·rms(output)·noise to every conv and linear output: rounding of
    about that size, as a float32 implementation makes. Returns the hooks, for removal."""
    hooks = []
    layers = [m for m in net64.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, m in enumerate(layers):
        def hook(mod, inp, out, i=i):
            n = noise_tensor("%s.%d.%s" % (tag, i, "x".join(map(str, out.shape))), list(out.shape)).double()
            return out + delta * out.detach().pow(2).mean().sqrt() * n
        hooks.append(m.register_forward_hook(hook))
    return hooks


def stable_input(prefix, make, net, head, seed, modes, tries=64):
    """The first input prefix0, prefix1, ... at which, in every batch-norm mode, the input
    gradient is not zero and moves by less than 1e-4 (relative to its largest value) when every
    conv and linear output is perturbed by 3e-7 of its rms, as float32 rounding does, and at
    which torch's float32 and float64 gradients agree as closely: a tenth of the tests' 1e-3.

    These networks are piecewise linear, and their gradient jumps where a ReLU input or a
    max-pool's top two values cross. At most points some activation that matters lies within
    rounding of such a switch, and two correct float32 implementations then disagree by up to
    several percent (the EyeNet most: with batch statistics every channel is centred, putting
    many ReLU inputs near zero). Such points test nothing; this picks one clear of every switch
    by more than rounding. Returns (name, x, float64 network)."""
    net64 = copy.deepcopy(net).double()
    for m in list(net.modules()) + list(net64.modules()):
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0  # training-mode calls must leave the running statistics as they are
    for k in range(tries):
        name = "%s%d" % (prefix, k)
        x = make(name)
        ok = True
        for train in modes:
            net.train(train)
            net64.train(train)
            g64 = vjp(lambda t: head(net64(t)), x.double(), seed.double())[1]
            ok = ok and g64.abs().max() > 0
            for d in range(2):
                if not ok:
                    break
                hooks = perturbed(net64, 3e-7, "perturbation%d" % d)
                try:
                    gp = vjp(lambda t: head(net64(t)), x.double(), seed.double())[1]
                finally:
                    for h in hooks:
                        h.remove()
                ok = relative(gp, g64) < 1e-4
            ok = ok and relative(vjp(lambda t: head(net(t)), x, seed)[1], g64) < 1e-4
            if not ok:
                break
        net.eval()
        net64.eval()
        for m in list(net.modules()) + list(net64.modules()):
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        if ok:
            return name, x, net64
        for m in list(net.modules()) + list(net64.modules()):
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.0
    raise SystemExit(f"{prefix}: none of {tries} inputs is clear of ReLU/max-pool switches")


def reference(net64, x, seed, head, train):
    """Outputs and the input gradient of head's output, computed in float64."""
    net64.train(train)
    x = x.double().clone().requires_grad_(True)
    outs = net64(x)
    (g,) = torch.autograd.grad((head(outs) * seed.double()).sum(), x)
    net64.eval()
    return tuple(o.detach().float() for o in outs), g.float()


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

BISENET_TINY = dict(classes=5, stem=4, stages=(4, 8, 8, 16), arm=8, fuse=8, mids=(8, 4, 4))
EYENET_TINY = dict(nstack=2, nfeatures=4, nlandmarks=3, stem=4, mid=8, hidden=8)
EYENET_FULL = dict(nstack=3, nfeatures=32, nlandmarks=34)
first = lambda outs: outs[0]  # noqa: E731
third = lambda outs: outs[2]  # noqa: E731


def bisenet_fixtures():
    # Narrow, from a file: odd sizes make the context path's nearest upsampling uneven (1→2→3).
    net = BiSeNet(**BISENET_TINY)
    noise_state_dict(net)
    net.eval()
    path = os.path.join(OUT, "bisenet_tiny.pt")
    save_on_gpu(net.state_dict(), path, legacy=False)
    net.load_state_dict(loaded_state_dict(path), strict=True)
    seed = noise_tensor("bisenet_tiny.seed", [2, BISENET_TINY["classes"], 24, 40])
    name, x, net64 = stable_input("bisenet_tiny.x", lambda n: noise_tensor(n, [2, 3, 24, 40]), net, first, seed, [False])
    (out, out16, out32), g = reference(net64, x, seed, first, False)
    fixture_io.save(os.path.join(OUT, "bisenet_tiny_io.safetensors"),
                    checked("bisenet_tiny", {"out": out, "out16": out16, "out32": out32, "grad_x": g}), metadata={"x": name})

    # The published widths, weights from fixture noise.
    net = BiSeNet(19)
    recipe = noise_state_dict(net)
    net.eval()
    seed = noise_tensor("bisenet_full.seed", [1, 19, 32, 32])
    name, x, net64 = stable_input("bisenet_full.x", lambda n: noise_tensor(n, [1, 3, 32, 32]), net, first, seed, [False])
    (out, _, _), g = reference(net64, x, seed, first, False)
    fixture_io.save(os.path.join(OUT, "bisenet_full_io.safetensors"), checked("bisenet_full", {"out": out, "grad_x": g}),
                    metadata={"weights": json.dumps(recipe, separators=(",", ":")), "x": name})
    print("bisenet: tiny %d parameters; full out scale %.3g, grad scale %.3g"
          % (sum(p.numel() for p in BiSeNet(**BISENET_TINY).parameters()), out.abs().max(), g.abs().max()))


def eye_input(name):
    return 0.5 + 0.5 * noise_tensor(name, [1, 96, 160])


def set_running_statistics(net, x):
    """Running statistics set to those of x's batch, layer by layer, as a trained network's
    describe its data: both batch-norm modes then see normalised activations."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    for m in bns:
        m.momentum = 0.1


def eyenet_weights(cfg, prefix, bn_bias=0.0):
    """Fixture-noise weights with running statistics measured on a calibration crop and the
    heatmap convs scaled so that β·heatmap spreads by about 2 per landmark: the soft-argmax is
    neither uniform nor a hard argmax, so its gradient is informative. Returns the network, the
    noise recipe and the running statistics (measured, so stored rather than regenerated)."""
    net = EyeNet(**cfg)
    calibration = eye_input(prefix + ".calibration")
    gain = 1.0
    for _ in range(3):
        recipe = noise_state_dict(net, {"outs.": gain}, bn_bias)
        set_running_statistics(net, calibration)
        with torch.no_grad():
            hm = net(calibration)[0]
        gain *= 0.02 / float(hm[:, -1].std(dim=(-2, -1)).mean())
    recipe = noise_state_dict(net, {"outs.": gain}, bn_bias)
    set_running_statistics(net, calibration)
    stats = {k: v.clone() for k, v in net.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    return net, [e for e in recipe if e[0] not in stats], stats


def eyenet_reference(net64, x, seed):
    io_ = {}
    for train in (False, True):
        (hm, lm, gaze), g = reference(net64, x, seed, third, train)
        sfx = "_train" if train else ""
        io_["heatmaps" + sfx], io_["landmarks" + sfx], io_["gaze" + sfx], io_["grad_x" + sfx] = hm, lm, gaze, g
    return io_


def eyenet_fixtures():
    # Narrow, from a file saved like GazeEstimator.pt.
    net, _, _ = eyenet_weights(EYENET_TINY, "eyenet_tiny")
    path = os.path.join(OUT, "eyenet_tiny.pt")
    c = EYENET_TINY
    save_on_gpu({"nstack": c["nstack"], "nfeatures": c["nfeatures"], "nlandmarks": c["nlandmarks"],
                 "model_state_dict": net.state_dict()}, path, legacy=True)
    net.load_state_dict(loaded_state_dict(path), strict=True)
    seed = noise_tensor("eyenet_tiny.seed", [1, 2])
    name, x, net64 = stable_input("eyenet_tiny.x", eye_input, net, third, seed, [False, True])
    io_ = eyenet_reference(net64, x, seed)
    # The last stack's heatmaps are checked through the landmarks; batch statistics through the
    # landmarks, gaze and gradient.
    io_["heatmaps"] = io_["heatmaps"][:, :1].contiguous()
    del io_["heatmaps_train"]
    fixture_io.save(os.path.join(OUT, "eyenet_tiny_io.safetensors"), checked("eyenet_tiny", io_), metadata={"x": name})

    # The published layout at GazeEstimator.pt's configuration, weights from fixture noise. Its
    # stem alone feeds about five million ReLU inputs at 96×160 and 48×80; with batch norms
    # centring them, a few lie within float32 rounding of zero at any input, and each moves the
    # gradient of the pixels under it by about a percent. Batch-norm biases of +3.5 open nearly
    # every ReLU, so that a point clear of the remaining switches exists; the tiny network above
    # checks ReLU masking element by element.
    net, recipe, stats = eyenet_weights(EYENET_FULL, "eyenet_full", bn_bias=3.5)
    seed = noise_tensor("eyenet_full.seed", [1, 2])
    name, x, net64 = stable_input("eyenet_full.x", eye_input, net, third, seed, [False, True])
    io_ = eyenet_reference(net64, x, seed)
    del io_["heatmaps"], io_["heatmaps_train"]  # the tiny file checks heatmaps; these would be 1 MB
    io_.update({"weights/" + k: v for k, v in stats.items()})
    fixture_io.save(os.path.join(OUT, "eyenet_full_io.safetensors"), checked("eyenet_full", io_),
                    metadata={"weights": json.dumps(recipe, separators=(",", ":")), "x": name})
    print("eyenet: full gaze %s (batch statistics %s), grad scale %.3g"
          % (io_["gaze"].numpy().round(3).tolist(), io_["gaze_train"].numpy().round(3).tolist(), io_["grad_x"].abs().max()))


def guise_run(guise, model, inputs, out, seed=None, extra=()):
    """Seconds `guise model run` takes, from its --json report."""
    cmd = [guise, "model", "run", model, "--inputs", inputs, "--out", out, "--json", *extra]
    if seed:
        cmd += ["--grad-wrt", "x", "--grad-seed", seed]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return report["seconds"]


def compare(name, got, want):
    got, want = torch.from_numpy(np.array(got)).double(), want.double()
    finite = bool(torch.isfinite(got).all())
    print("  %-28s max error %.2e of scale %.3g, norm error %.2e%s" % (
        name, float((got - want).abs().max() / want.abs().max().clamp(min=1)), float(want.abs().max()),
        float((got - want).norm() / want.norm()), "" if finite else "  NOT FINITE"))


def check(guise, folder):
    """The published-size networks through `guise model run` against torch on 2 threads: BiSeNet at
    DiffFace's 512² and EyeNet at GazeEstimator.pt's configuration, from fixture-noise weights
    saved as DiffFace's files are ('cuda:0' storages). Best times; Guise's per image is the
    difference between batches of 3 and 1, halved, so file loading is left out. At 512² some of
    BiSeNet's 30 million ReLU inputs lie within float32 rounding of zero, so its input gradient
    differs from float64 by a few percent at some pixels in torch's float32 as in Guise's."""
    os.makedirs(folder, exist_ok=True)
    torch.set_num_threads(2)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_timing import measure

    def run_case(label, net, model, x1, seed1, extra=(), train=False):
        net.train(train)
        f = lambda t: third(net(t)) if isinstance(net, EyeNet) else net(t)[0]  # noqa: E731
        with torch.no_grad():
            want = f(x1)
        want_g = vjp(f, x1, seed1)[1]
        t_fwd = measure(lambda: torch.no_grad()(f)(x1), budget=10, max_runs=5)[1]
        t_bwd = measure(lambda: vjp(f, x1, seed1), budget=10, max_runs=5)[1]
        times = {}
        for n in (1, 3):
            xs = torch.cat([x1] * n)
            seeds = torch.cat([seed1] * n)
            paths = [os.path.join(folder, "%s_%s%d.safetensors" % (label, k, n)) for k in ("in", "seed", "out", "grad")]
            fixture_io.save(paths[0], {"x": xs})
            fixture_io.save(paths[1], {"seed": seeds})
            times[n] = (min(guise_run(guise, model, paths[0], paths[2], extra=extra) for _ in range(2)),
                        min(guise_run(guise, model, paths[0], paths[3], paths[1], extra=extra) for _ in range(2)))
        net64 = copy.deepcopy(net).double()
        f64 = lambda t: third(net64(t)) if isinstance(net64, EyeNet) else net64(t)[0]  # noqa: E731
        want_g64 = vjp(f64, x1.double(), seed1.double())[1]
        got = fixture_io.load(os.path.join(folder, "%s_grad1.safetensors" % label))
        print(label)
        compare("out", got["out"], want)
        compare("grad_x", got["grad_x"], want_g)
        compare("grad_x against float64", got["grad_x"], want_g64)
        compare("torch's against float64", want_g.numpy(), want_g64)
        g_fwd, g_bwd = (times[3][0] - times[1][0]) / 2, (times[3][1] - times[1][1]) / 2
        print("  forward          guise %.3f s (a whole run of one: %.3f s), torch %.3f s: %.2f×" % (g_fwd, times[1][0], t_fwd, g_fwd / t_fwd))
        print("  forward+backward guise %.3f s (a whole run of one: %.3f s), torch %.3f s: %.2f×" % (g_bwd, times[1][1], t_bwd, g_bwd / t_bwd))

    net = BiSeNet(19)
    noise_state_dict(net)
    net.eval()
    model = os.path.join(folder, "FaceParser.pth")
    save_on_gpu(net.state_dict(), model, legacy=False)
    run_case("bisenet 512x512", net, model, noise_tensor("check.bisenet.x", [1, 3, 512, 512]),
             noise_tensor("check.bisenet.seed", [1, 19, 512, 512]))

    net, _, _ = eyenet_weights(EYENET_FULL, "check.eyenet")
    model = os.path.join(folder, "GazeEstimator.pt")
    c = EYENET_FULL
    save_on_gpu({"nstack": c["nstack"], "nfeatures": c["nfeatures"], "nlandmarks": c["nlandmarks"],
                 "model_state_dict": net.state_dict()}, model, legacy=False)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
    x, seed = eye_input("check.eyenet.x"), noise_tensor("check.eyenet.seed", [1, 2])
    run_case("eyenet", net, model, x, seed)
    run_case("eyenet, batch statistics", net, model, x, seed, extra=("--batch-statistics",), train=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command")
    c = sub.add_parser("check", help="published sizes through guise model run against torch, with times")
    c.add_argument("--guise", default=os.path.join(ROOT, ".build", "release", "guise"))
    c.add_argument("--folder", default=os.path.join(ROOT, ".cache", "parsing-check"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    if args.command == "check":
        check(args.guise, args.folder)
        return
    bisenet_fixtures()
    eyenet_fixtures()
    print("wrote the parsing and gaze fixtures to %s" % os.path.normpath(OUT))


if __name__ == "__main__":
    main()
