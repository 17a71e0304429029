"""PyTorch reference for Guise's ArcFace experts, written for this project from the published
layout facts of SimSwap's / DiffFace's `models.py` (ResNet of IRBlocks with squeeze-excitation,
BN-PReLU, a first 3×3 conv without padding, 2×2 max pool, fc over the 7×7 map, BatchNorm1d) and
insightface's `iresnet` (IBasicBlock, per-channel PReLU, padded first conv, stride 2 in every
stage, `features` BatchNorm1d).

Run by `make fixtures`, or alone in its torch venv:  .venv/bin/python Tools/make_fixtures_arcface.py
Writes, with small random weights (same block types and wiring, narrower and shallower):
  Tests/Fixtures/arcface_irse.tar        DiffFace's Arcface.tar layout, torch zip format: a dict
                                         {'model': DataParallel(ResNet), 'metric_fc':
                                         DataParallel(ArcMarginModel), 'optimizer': SGD, ...}, the
                                         modules pickled whole, classes named models.models.*
  Tests/Fixtures/arcface_irse_cuda.tar   the same in the legacy format, as written on a GPU: every
                                         storage's location is 'cuda:0' (see save_on_cuda)
  Tests/Fixtures/arcface_irse_state.pth  the same network as a plain state_dict
  Tests/Fixtures/arcface_iresnet.pth     insightface's iresnet as a state_dict (backbone.pth)
  Tests/Fixtures/arcface_<name>_io.safetensors  x, seed, out, grad_x (= d sum(out*seed)/dx)
  Tests/Fixtures/arcface_module_{loop,web}.pt   a module inside itself; shared submodules whose
                                         names double at every level

The references are computed in float64 (the same weights), so they are closer to exact than
torch's own float32 run; torch float32's error against them is kept in the io file's metadata.

`bench` times the full-size IR-SE50 (and IR-SE100 with --depth 100) on 2 threads and, given
--guise, checks `guise model run` on it against the float64 reference:
    .venv/bin/python Tools/make_fixtures_arcface.py bench --guise .build/release/guise
"""
import argparse, copy, os, subprocess, sys, tempfile, time, types

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io  # noqa: E402

OUT = fixture_io.FIXTURES
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# SimSwap / DiffFace: ResNet with IRBlocks (models/models.py). Widths and the embedding size are
# parameters here so the fixtures stay small; the full network is widths (64, 128, 256, 512),
# 512-d, blocks (3, 4, 14, 3) for IR-SE50 and (3, 13, 30, 3) for IR-SE100.
# ---------------------------------------------------------------------------------------------


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class SEBlock(nn.Module):
    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction), nn.PReLU(),
                                nn.Linear(channel // reduction, channel), nn.Sigmoid())

    def forward(self, x):
        n, c = x.shape[:2]
        gate = self.fc(self.avg_pool(x).view(n, c)).view(n, c, 1, 1)
        return x * gate


class IRBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()          # one slope, used twice: after bn1 and after the sum
        self.conv2 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.use_se = use_se
        if use_se:
            self.se = SEBlock(planes)

    def forward(self, x):
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.use_se:
            out = self.se(out)
        skip = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + skip)


class ResNet(nn.Module):
    def __init__(self, layers, widths=(64, 128, 256, 512), emb=512, use_se=True, side=7):
        super().__init__()
        self.inplanes = widths[0]
        self.use_se = use_se
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, bias=False)   # padding 0: 112 -> 110
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.layer1 = self._make_layer(widths[0], layers[0])
        self.layer2 = self._make_layer(widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(widths[3], layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.dropout = nn.Dropout()
        self.fc = nn.Linear(widths[3] * side * side, emb)
        self.bn3 = nn.BatchNorm1d(emb)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [IRBlock(self.inplanes, planes, stride, downsample, use_se=self.use_se)]
        self.inplanes = planes
        layers += [IRBlock(planes, planes, use_se=self.use_se) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x))
        return self.bn3(self.fc(x.view(x.size(0), -1)))


class ArcMarginModel(nn.Module):
    """The training head Arcface.tar also carries (93431 classes there); only its weight matters."""

    def __init__(self, classes, emb, margin=0.5, scale=64.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, emb))
        nn.init.xavier_uniform_(self.weight)
        self.easy_margin, self.m, self.s = False, margin, scale


# The classes pickle by reference as models.models.<Name>, the module DiffFace loads them from.
_models = types.ModuleType("models")
_models_models = types.ModuleType("models.models")
_models.models = _models_models
sys.modules.setdefault("models", _models)
sys.modules.setdefault("models.models", _models_models)
for _cls in (SEBlock, IRBlock, ResNet, ArcMarginModel):
    _cls.__module__ = "models.models"
    setattr(_models_models, _cls.__name__, _cls)

# ---------------------------------------------------------------------------------------------
# insightface arcface_torch: iresnet (backbones/iresnet.py).
# ---------------------------------------------------------------------------------------------


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, layers, widths=(64, 128, 256, 512), emb=512, side=7):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-05)
        self.prelu = nn.PReLU(widths[0])
        self.layer1 = self._make_layer(widths[0], layers[0])
        self.layer2 = self._make_layer(widths[1], layers[1])
        self.layer3 = self._make_layer(widths[2], layers[2])
        self.layer4 = self._make_layer(widths[3], layers[3])
        self.bn2 = nn.BatchNorm2d(widths[3], eps=1e-05)
        self.dropout = nn.Dropout(p=0, inplace=True)
        self.fc = nn.Linear(widths[3] * side * side, emb)
        self.features = nn.BatchNorm1d(emb, eps=1e-05)

    def _make_layer(self, planes, blocks, stride=2):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


# ---------------------------------------------------------------------------------------------


def randomise(net, seed):
    """Random weights with scales that keep activations O(1) through the depth: He-scaled convs
    (shrunk inside residual branches so the sum grows slowly), batch-norm statistics far from
    (0, 1), PReLU slopes of both signs' worth of interest, a trained-looking BatchNorm1d."""
    g = torch.Generator().manual_seed(seed)
    u = lambda shape, lo, hi: torch.rand(shape, generator=g, dtype=torch.float64).float() * (hi - lo) + lo
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                branch = ".conv2" in name or name.endswith("conv2")
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5 * (0.5 if branch else 1.0))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                c = m.num_features
                m.weight.copy_(u(c, 0.6, 1.4))
                m.bias.copy_(u(c, -0.2, 0.2))
                m.running_mean.copy_(u(c, -0.3, 0.3))
                m.running_var.copy_(u(c, 0.5, 2.0))
                m.num_batches_tracked.fill_(1000)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(u(m.weight.shape, 0.05, 0.4))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / m.in_features) ** 0.5)
                m.bias.copy_(u(m.out_features, -0.1, 0.1))
    return net


def face_batch(n, seed):
    """Images in [0, 1] normalised as DiffFace feeds ArcFace (ImageNet mean and std), 112²."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, 3, 112, 112, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (img - mean) / std


def reference(net, x, seed):
    """out and grad_x = d sum(out*seed)/dx in float64, plus float32 torch's errors against them
    relative to each one's scale."""
    net = net.eval()
    n64 = copy.deepcopy(net).double()
    x64 = x.double().requires_grad_(True)
    out64 = n64(x64)
    out64.backward(seed.double())
    x32 = x.clone().requires_grad_(True)
    out32 = net(x32)
    out32.backward(seed)
    rel = lambda a, b: float((a.double() - b).abs().max() / max(1.0, float(b.abs().max())))
    return out64.detach().float(), x64.grad.float(), rel(out32.detach(), out64.detach()), rel(x32.grad, x64.grad)


def save_io(name, net, n, seed):
    # x is stored as float16 (half the bytes); the references are of the stored values.
    x = face_batch(n, seed).half().float()
    with torch.no_grad():
        probe = net.eval()(x)
    s = torch.Generator().manual_seed(seed + 1)
    seed_t = torch.randn(probe.shape, generator=s)
    out, grad, e_out, e_grad = reference(net, x, seed_t)
    fixture_io.save(os.path.join(OUT, "arcface_%s_io.safetensors" % name),
                    {"x": x.half().numpy(), "seed": seed_t.numpy(), "out": out.numpy(), "grad_x": grad.numpy()},
                    metadata={"torch_f32_out_error": "%.3g" % e_out, "torch_f32_grad_error": "%.3g" % e_grad})
    print("arcface_%s: out %s scale %.3g, grad_x scale %.3g; torch float32 vs float64: out %.2g, grad_x %.2g"
          % (name, list(out.shape), float(out.abs().max()), float(grad.abs().max()), e_out, e_grad))


def save_on_cuda(obj, path, legacy):
    """torch.save as on a GPU: storages record the location 'cuda:0'. Writing from a real GPU is
    not possible here, so the location tag torch.save asks for is answered with 'cuda:0'; the
    bytes are the CPU tensors' own, exactly what a GPU writer would store. torch itself loads
    the result only with map_location, as it does a real GPU checkpoint on a CPU machine."""
    import torch.serialization as ser
    saved = ser.location_tag
    ser.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        ser.location_tag = saved
    if legacy:
        # Legacy files name storages by memory address; renamed in order, the bytes repeat.
        from make_fixtures_formats import stable_legacy_keys
        stable_legacy_keys(path)


def arcface_checkpoint(net, metric, epoch=12):
    """The dict InsightFace-v2's training loop saves and DiffFace ships as Arcface.tar."""
    model, metric_fc = nn.DataParallel(net), nn.DataParallel(metric)
    # Plain SGD keeps no per-parameter tensors, which keeps the fixture small; its param_groups
    # still refer to every parameter, as a saved optimiser's do.
    opt = torch.optim.SGD([{"params": model.parameters()}, {"params": metric_fc.parameters()}], lr=0.1)
    net.train()
    model(face_batch(2, 99)).sum().backward()
    opt.step()
    opt.zero_grad()
    return {"epoch": epoch, "epochs_since_improvement": 0, "acc": 0.9, "model": model, "metric_fc": metric_fc,
            "optimizer": opt}


def check_load(path, net, x, **kw):
    """torch's own reader gives back the module (or state dict) with the same outputs."""
    obj = torch.load(path, weights_only=False, **kw)
    if isinstance(obj, dict) and "model" in obj:
        other = obj["model"].module.eval()
    else:
        other = copy.deepcopy(net)
        other.load_state_dict(obj)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), net.eval()(x)), path


def fixtures():
    torch.manual_seed(0)
    # IR-SE: every block kind (stride-1 identity, stride-2 with a downsample, a widening conv2),
    # SE on 16 and 32 channels, a 7×7 map before the fc as in the full network.
    net = randomise(ResNet([2, 1, 1, 1], widths=(16, 16, 16, 32), emb=8), seed=1)
    ckpt = arcface_checkpoint(net, ArcMarginModel(40, 8))
    # The training step above moved the weights and batch-norm statistics; set them again. The
    # modules are pickled in training mode, as a checkpoint saved mid-training has them.
    randomise(net, seed=1).train()
    torch.save(ckpt, os.path.join(OUT, "arcface_irse.tar"))
    save_on_cuda(ckpt, os.path.join(OUT, "arcface_irse_cuda.tar"), legacy=True)
    torch.save(net.state_dict(), os.path.join(OUT, "arcface_irse_state.pth"))
    net.eval()
    x = face_batch(2, 5)
    check_load(os.path.join(OUT, "arcface_irse.tar"), net, x)
    check_load(os.path.join(OUT, "arcface_irse_cuda.tar"), net, x, map_location="cpu")
    check_load(os.path.join(OUT, "arcface_irse_state.pth"), net, x)
    save_io("irse", net, 2, 5)

    # Hostile module structures: a module inside itself, and a web of shared submodules whose
    # state-dict names double at every level (2^24 names from a few kilobytes).
    loop = nn.Sequential(nn.Linear(2, 2))
    loop._modules["again"] = loop
    torch.save({"model": loop}, os.path.join(OUT, "arcface_module_loop.pt"))
    web = nn.Sequential(nn.Linear(2, 2))
    for _ in range(24):
        web = nn.Sequential(web, web)
    torch.save({"model": web}, os.path.join(OUT, "arcface_module_web.pt"))

    ir = randomise(IResNet([1, 2, 1, 1], widths=(16, 16, 16, 32), emb=8), seed=2).eval()
    torch.save(ir.state_dict(), os.path.join(OUT, "arcface_iresnet.pth"))
    check_load(os.path.join(OUT, "arcface_iresnet.pth"), ir, face_batch(1, 6))
    save_io("iresnet", ir, 1, 6)


def bench(args):
    """Full-size IR-SE (random weights, DiffFace's file layout): torch's forward time on 2
    threads, and with --guise, guise model run's output and input gradient against float64."""
    torch.set_num_threads(2)
    blocks = {50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}[args.depth]
    net = randomise(ResNet(blocks), seed=3).eval()
    for p in net.parameters():
        p.requires_grad_(False)   # the gradient wanted is the input's alone
    x = face_batch(args.batch, 7)
    import bench_timing
    with torch.no_grad():
        fwd = bench_timing.measure(lambda: net(x))
    xg = x.clone().requires_grad_(True)
    seed = torch.randn(args.batch, 512, generator=torch.Generator().manual_seed(8))

    def fwd_bwd():
        xg.grad = None
        net(xg).backward(seed)
    both = bench_timing.measure(fwd_bwd, budget=5)
    print("torch %s, 2 threads: IR-SE%d batch %d forward %.1f ms (best %.1f), forward+backward to x %.1f ms (best %.1f)"
          % (torch.__version__, args.depth, args.batch, fwd[0] * 1e3, fwd[1] * 1e3, both[0] * 1e3, both[1] * 1e3))
    if not args.guise:
        return
    work = os.path.join(ROOT, ".build", "arcface-bench")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "irse%d.tar" % args.depth)
    torch.save({"model": nn.DataParallel(net), "metric_fc": nn.DataParallel(ArcMarginModel(93431, 512))}, model)
    out, grad, e_out, e_grad = reference(net, x, seed)
    inputs, seeds, result = (os.path.join(work, n) for n in ("in.safetensors", "seed.safetensors", "out.safetensors"))
    fixture_io.save(inputs, {"x": x.numpy()})
    fixture_io.save(seeds, {"seed": seed.numpy()})
    subprocess.run([args.guise, "model", "run", model, "--inputs", inputs, "--out", result, "--grad-wrt", "x",
                    "--grad-seed", seeds, "--quiet"], check=True)
    got = fixture_io.load(result)
    rel = lambda a, b: float(np.abs(a.astype(np.float64) - b).max() / max(1.0, np.abs(b).max()))
    print("IR-SE%d parity against float64 (error / output scale): guise out %.3g, grad_x %.3g; torch float32 out %.3g, grad_x %.3g"
          " (scales: out %.3g, grad_x %.3g)"
          % (args.depth, rel(got["out"], out.numpy()), rel(got["grad_x"], grad.numpy()), e_out, e_grad,
             float(out.abs().max()), float(grad.abs().max())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", nargs="?", default="fixtures", choices=["fixtures", "bench"])
    ap.add_argument("--guise", help="guise executable whose model run is checked on the full-size network")
    ap.add_argument("--depth", type=int, default=50, choices=[50, 100])
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    if args.command == "bench":
        bench(args)
    else:
        fixtures()


if __name__ == "__main__":
    main()
