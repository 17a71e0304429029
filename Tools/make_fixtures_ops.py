#!/usr/bin/env python3
"""Reference values for GuiseTensor's core ops, from PyTorch (CPU, float32).

For each case: inputs x0, x1, ..., a fixed upstream gradient gy, the output y and the
gradient of sum(y * gy) with respect to every input (g0, g1, ...). Also optimiser
trajectories (SGD, Adam, AdamW, EMA) on a small quadratic.

Run: .venv/bin/python Tools/make_fixtures_ops.py   (the PyTorch venv `make bench` creates)
Writes Tests/GuiseTensorTests/Fixtures/core_ops.safetensors.
"""
import os, sys
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io

torch.manual_seed(0)
out = {}


def rnd(*shape, scale=1.0, positive=False):
    t = torch.randn(*shape) * scale
    return t.abs() + 0.1 if positive else t


def case(name, fn, *inputs):
    """inputs: tensors; every one is differentiable and gets a gradient in the fixture."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    y = fn(*leaves)
    if isinstance(y, tuple):
        y = y[0]
    gy = torch.randn_like(y)
    y.backward(gy)
    for i, x in enumerate(leaves):
        out[f"{name}.x{i}"] = x.detach().numpy()
        g = x.grad if x.grad is not None else torch.zeros_like(x)
        out[f"{name}.g{i}"] = g.numpy()
    out[f"{name}.y"] = y.detach().numpy()
    out[f"{name}.gy"] = gy.numpy()


# Linear algebra
case("linear", lambda x, w, b: F.linear(x, w, b), rnd(2, 3, 5), rnd(4, 5), rnd(4))
case("linear_nobias", lambda x, w: F.linear(x, w), rnd(6, 5), rnd(3, 5))
case("matmul", lambda a, b: a @ b, rnd(3, 4), rnd(4, 5))
case("matmul_bcast", lambda a, b: a @ b, rnd(2, 1, 3, 4), rnd(3, 4, 5))
case("matmul_vec", lambda a, b: a @ b, rnd(3, 4), rnd(4))
case("bmm", lambda a, b: torch.bmm(a, b), rnd(2, 3, 4), rnd(2, 4, 5))
case("bmm_t", lambda a, b: torch.bmm(a.transpose(1, 2), b.transpose(1, 2)), rnd(2, 4, 3), rnd(2, 5, 4))

# Elementwise
case("exp", torch.exp, rnd(3, 7))
case("log", torch.log, rnd(3, 7, positive=True))
case("sqrt", torch.sqrt, rnd(3, 7, positive=True))
case("rsqrt", torch.rsqrt, rnd(3, 7, positive=True))
case("pow2", lambda x: x ** 2, rnd(3, 7))
case("pow3", lambda x: x ** 3, rnd(3, 7))
case("pow15", lambda x: x ** 1.5, rnd(3, 7, positive=True))
case("abs", torch.abs, rnd(3, 7))
case("clamp", lambda x: x.clamp(-0.5, 0.7), rnd(3, 7))
WHERE_MASK = (torch.rand(3, 4) > 0.5).float()
out["where.mask"] = WHERE_MASK.numpy()
case("where", lambda a, b: torch.where(WHERE_MASK > 0, a, b), rnd(3, 4), rnd(4))
case("maximum", torch.maximum, rnd(3, 4), rnd(4))
case("minimum", torch.minimum, rnd(3, 4), rnd(3, 1))

# Activations (19 elements: one SIMD tail)
case("relu", F.relu, rnd(2, 19))
case("leaky_relu", lambda x: F.leaky_relu(x, 0.2), rnd(2, 19))
case("relu6", F.relu6, rnd(2, 19, scale=5))
case("silu", F.silu, rnd(2, 19, scale=3))
case("gelu", F.gelu, rnd(2, 19, scale=3))
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), rnd(2, 19, scale=3))
case("sigmoid", torch.sigmoid, rnd(2, 19, scale=4))
case("tanh", torch.tanh, rnd(2, 19, scale=2))
case("hardswish", F.hardswish, rnd(2, 19, scale=5))
case("hardsigmoid", F.hardsigmoid, rnd(2, 19, scale=5))
case("prelu", F.prelu, rnd(2, 3, 4, 5), torch.tensor([0.25, -0.1, 0.5]))

# Normalisation
case("group_norm", lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5), rnd(2, 6, 5, 5) * 2 + 1, rnd(6), rnd(6))
# 16 groups: enough for the one-task-per-group path.
case("group_norm_many", lambda x, w, b: F.group_norm(x, 8, w, b, 1e-5), rnd(2, 16, 3, 5) + 0.5, rnd(16), rnd(16))
case("group_norm_plain", lambda x: F.group_norm(x, 2, eps=1e-6), rnd(2, 4, 9))
case("group_norm_silu", lambda x, w, b: F.silu(F.group_norm(x, 4, w, b, 1e-5)), rnd(1, 8, 3, 7) * 3, rnd(8), rnd(8))
case("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5), rnd(2, 3, 4, 4), rnd(3), rnd(3))
rm, rv = rnd(3), rnd(3, positive=True)
out["batch_norm.running_mean"], out["batch_norm.running_var"] = rm.numpy(), rv.numpy()
case("batch_norm", lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5), rnd(2, 3, 4, 4), rnd(3), rnd(3))
case("layer_norm", lambda x, w, b: F.layer_norm(x, [6], w, b, 1e-5), rnd(2, 5, 6), rnd(6), rnd(6))
case("layer_norm2", lambda x, w, b: F.layer_norm(x, [5, 6], w, b, 1e-5), rnd(2, 5, 6), rnd(5, 6), rnd(5, 6))

# Softmax and attention
case("softmax", lambda x: torch.softmax(x, -1), rnd(2, 3, 13, scale=3))
case("softmax_dim1", lambda x: torch.softmax(x, 1), rnd(2, 3, 5, scale=3))
case("log_softmax", lambda x: torch.log_softmax(x, -1), rnd(2, 3, 13, scale=3))
case("log_softmax_dim0", lambda x: torch.log_softmax(x, 0), rnd(4, 3, 5, scale=3))
case("attention", F.scaled_dot_product_attention, rnd(2, 2, 7, 4), rnd(2, 2, 6, 4), rnd(2, 2, 6, 3))
case("attention_scale", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3),
     rnd(1, 3, 9, 8), rnd(1, 3, 9, 8), rnd(1, 3, 9, 8))
# guided-diffusion keeps q, k, v as [B, H, D, T]: transposed views.
case("attention_t", lambda q, k, v: F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)),
     rnd(2, 2, 4, 10), rnd(2, 2, 4, 10), rnd(2, 2, 4, 10))

# Reductions
case("sum_dim1", lambda x: x.sum(1, keepdim=True), rnd(2, 3, 4))
case("sum_dims02", lambda x: x.sum((0, 2)), rnd(2, 3, 4))
case("mean_dims12", lambda x: x.mean((1, 2)), rnd(2, 3, 4))
case("mean_all", lambda x: x.mean(), rnd(2, 3, 4))
case("norm_dim1", lambda x: torch.linalg.vector_norm(x, dim=1), rnd(2, 3, 4))
case("norm_all", lambda x: torch.linalg.vector_norm(x), rnd(2, 3, 4))
case("max_dim1", lambda x: torch.max(x, 1), rnd(2, 5, 3))
out["max_dim1.indices"] = torch.max(torch.from_numpy(out["max_dim1.x0"]), 1).indices.numpy()

# Shape
case("concat", lambda a, b, c: torch.cat([a, b, c], 1), rnd(2, 1, 3), rnd(2, 4, 3), rnd(2, 2, 3))
case("slice", lambda x: x[:, :, 1:7:2], rnd(2, 3, 8))
case("split", lambda x: torch.split(x, [2, 3], 1)[1] * 2 + torch.split(x, [2, 3], 1)[0].sum(1, keepdim=True), rnd(2, 5, 3))
case("squeeze", lambda x: x.unsqueeze(0).transpose(1, 2).squeeze(0), rnd(3, 1, 4))

# Losses
case("cosine", lambda a, b: F.cosine_similarity(a, b, 1), rnd(4, 8), rnd(4, 8))
case("cosine_bcast", lambda a, b: F.cosine_similarity(a, b, -1, eps=1e-6), rnd(3, 5), rnd(1, 5))
# A zero vector: PyTorch clamps each norm at eps, and the gradient is b̂/eps.
case("cosine_zero", lambda a, b: F.cosine_similarity(a, b, 1), torch.cat([torch.zeros(1, 6), rnd(2, 6)]), rnd(3, 6))
case("l1", F.l1_loss, rnd(3, 6), rnd(3, 6))
case("mse", F.mse_loss, rnd(3, 6), rnd(3, 6))


# Optimisers: loss = Σ c ⊙ (p − t)², a few steps from a fixed start.
p0, t0, c0 = rnd(3, 4), rnd(3, 4), rnd(3, 4, positive=True)
p1, t1, c1 = rnd(5), rnd(5), rnd(5, positive=True)
for k, v in dict(p0=p0, t0=t0, c0=c0, p1=p1, t1=t1, c1=c1).items():
    out[f"opt.{k}"] = v.numpy()
STEPS = 5
configs = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.05),
    "adam_l2": lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
    # p1 gets no gradient on odd steps, so its step count (and bias correction) lags p0's.
    "adamw_skip": lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.3, 0.9), weight_decay=0.1),
}
for name, make in configs.items():
    ps = [p0.clone().requires_grad_(True), p1.clone().requires_grad_(True)]
    opt = make(ps)
    ema = [p.detach().clone() for p in ps]
    for s in range(STEPS):
        opt.zero_grad()
        loss = (c0 * (ps[0] - t0) ** 2).sum()
        if not (name.endswith("_skip") and s % 2 == 1):
            loss = loss + (c1 * (ps[1] - t1) ** 2).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, ps):
                e.mul_(0.9).add_(p, alpha=1 - 0.9)
        for i, p in enumerate(ps):
            out[f"opt.{name}.step{s}.p{i}"] = p.detach().numpy().copy()
    for i, p in enumerate(ps):
        st = opt.state[p]
        for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
            if key in st:
                out[f"opt.{name}.{key}.p{i}"] = st[key].numpy().copy()
        out[f"opt.{name}.ema.p{i}"] = ema[i].numpy()

dst = os.path.join(os.path.dirname(__file__), "..", "Tests", "GuiseTensorTests", "Fixtures", "core_ops.safetensors")
fixture_io.save(dst, {k: np.asarray(v) for k, v in out.items()},
                metadata={"torch": torch.__version__, "script": "Tools/make_fixtures_ops.py"})
print(f"wrote {len(out)} tensors, {os.path.getsize(dst)} bytes to {os.path.normpath(dst)}")
