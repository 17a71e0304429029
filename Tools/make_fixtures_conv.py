"""Reference outputs and gradients for the spatial ops (conv, pooling, padding, resampling,
affine_grid/grid_sample), computed with PyTorch CPU autograd.

Run:  .venv/bin/python Tools/make_fixtures_conv.py   (the PyTorch venv `make bench` creates)
Writes Tests/GuiseTensorTests/Fixtures/conv_ops.safetensors. For every case NAME it stores
the inputs (NAME.x, NAME.w, ...), a fixed upstream gradient NAME.gy, the output NAME.y and
the gradient of sum(y * gy) for each input (NAME.g_x, NAME.g_w, ...). Integer settings
(stride, padding, ...) go in NAME.p, in the order the Swift test reads them.
"""
import os, sys
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io

torch.manual_seed(0)
out = {}


def rnd(*shape, scale=1.0):
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1).float() * scale


def case(name, fn, inputs, params):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    y = fn(**leaves)
    gy = rnd(*y.shape)
    y.backward(gy)
    for k, v in inputs.items():
        out[f"{name}.{k}"] = v.numpy()
        out[f"{name}.g_{k}"] = leaves[k].grad.numpy()
    out[f"{name}.y"] = y.detach().numpy()
    out[f"{name}.gy"] = gy.numpy()
    out[f"{name}.p"] = np.asarray(params, dtype=np.int32)


# conv2d. p = [sh, sw, top, bottom, left, right, dh, dw, groups, has_bias]
def conv(name, x, w, b=None, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1), groups=1):
    t, bo, l, r = pad
    def fn(x, w, b=None):
        xp = F.pad(x, (l, r, t, bo)) if (t != bo or l != r) else x
        p = (0, 0) if (t != bo or l != r) else (t, l)
        return F.conv2d(xp, w, b, stride=stride, padding=p, dilation=dil, groups=groups)
    inputs = {"x": x, "w": w}
    if b is not None:
        inputs["b"] = b
    case(name, fn, inputs, [*stride, *pad, *dil, groups, int(b is not None)])


conv("conv_basic", rnd(1, 3, 7, 6), rnd(4, 3, 3, 3), rnd(4), pad=(1, 1, 1, 1))
conv("conv_stride2_groups2", rnd(2, 4, 9, 8), rnd(6, 2, 3, 3), rnd(6), stride=(2, 2), pad=(1, 1, 0, 0), groups=2)
conv("conv_dilation2", rnd(1, 3, 10, 9), rnd(5, 3, 3, 2), None, pad=(2, 2, 1, 1), dil=(2, 2))
conv("conv_depthwise", rnd(2, 4, 8, 7), rnd(4, 1, 3, 3), rnd(4), stride=(2, 1), pad=(1, 1, 1, 1), groups=4)
conv("conv_depth_mult", rnd(1, 2, 6, 6), rnd(6, 1, 3, 3), None, pad=(1, 1, 1, 1), groups=2)
conv("conv_pointwise", rnd(2, 5, 6, 4), rnd(3, 5, 1, 1), rnd(3))
conv("conv_asym_pad", rnd(1, 2, 7, 8), rnd(3, 2, 3, 3), rnd(3), stride=(2, 2), pad=(0, 1, 1, 0))
conv("conv_1x1_stride2", rnd(1, 4, 7, 6), rnd(3, 4, 1, 1), None, stride=(2, 2))
# 16+ channels per group take the stride-1 path without im2col (ShiftedConv.swift).
conv("conv_wide_c16", rnd(2, 16, 6, 5), rnd(16, 16, 3, 3, scale=0.3), rnd(16), pad=(1, 1, 1, 1))
conv("conv_wide_groups_dil_asym", rnd(1, 32, 7, 6), rnd(32, 16, 3, 2, scale=0.3), rnd(32), pad=(2, 1, 0, 1), dil=(2, 1), groups=2)
conv("conv_wide_overpad", rnd(1, 16, 4, 5), rnd(16, 16, 3, 3, scale=0.3), None, pad=(3, 3, 2, 2))
# 3×3 stride 1 with 16+ channels per group: Winograd F(2×2, 3×3) (Winograd.swift); odd sizes,
# asymmetric padding and groups exercise partial tiles.
conv("conv_wino_odd_groups", rnd(1, 32, 8, 5), rnd(32, 16, 3, 3, scale=0.3), rnd(32), pad=(1, 0, 2, 1), groups=2)
conv("conv_wino_batch", rnd(2, 16, 9, 11), rnd(24, 16, 3, 3, scale=0.3), rnd(24), pad=(1, 1, 1, 1))
conv("conv_5x5_rect", rnd(2, 3, 11, 7), rnd(2, 3, 5, 3), rnd(2), stride=(1, 2), pad=(2, 2, 1, 1), dil=(1, 2))


# conv_transpose2d. p = [sh, sw, ph, pw, oph, opw, dh, dw, groups, has_bias]
def convt(name, x, w, b=None, stride=(1, 1), pad=(0, 0), opad=(0, 0), dil=(1, 1), groups=1):
    def fn(x, w, b=None):
        return F.conv_transpose2d(x, w, b, stride=stride, padding=pad, output_padding=opad, groups=groups, dilation=dil)
    inputs = {"x": x, "w": w}
    if b is not None:
        inputs["b"] = b
    case(name, fn, inputs, [*stride, *pad, *opad, *dil, groups, int(b is not None)])


convt("convt_stride2", rnd(1, 4, 5, 6), rnd(4, 3, 3, 3), rnd(3), stride=(2, 2), pad=(1, 1), opad=(1, 1))
convt("convt_groups_dil", rnd(2, 4, 4, 5), rnd(4, 2, 3, 3), rnd(4), dil=(2, 2), groups=2)
convt("convt_4x4_up", rnd(1, 3, 4, 4), rnd(3, 2, 4, 4), None, stride=(2, 2), pad=(1, 1), opad=(0, 1))
convt("convt_wide", rnd(1, 16, 5, 4), rnd(16, 16, 3, 3, scale=0.3), rnd(16), pad=(1, 1))
convt("convt_dil_opad", rnd(1, 2, 3, 4), rnd(2, 2, 3, 3), None, stride=(1, 2), pad=(1, 0), opad=(1, 1), dil=(2, 1))


# Pooling. max/avg p = [kh, kw, sh, sw, ph, pw, dh|count_include_pad, dw]
def perm(*shape):
    # Distinct values so the argmax is unambiguous.
    n = int(np.prod(shape))
    return (torch.randperm(n).float() / n * 2 - 1).reshape(shape)


def maxpool(name, x, k, s, p, d=(1, 1)):
    case(name, lambda x: F.max_pool2d(x, k, s, p, d), {"x": x}, [*k, *s, *p, *d])


maxpool("maxpool_k3s2p1", perm(2, 3, 8, 9), (3, 3), (2, 2), (1, 1))
maxpool("maxpool_k2", perm(1, 2, 7, 7), (2, 2), (2, 2), (0, 0))
maxpool("maxpool_dil2_rect", perm(1, 2, 9, 8), (3, 2), (1, 2), (1, 1), (2, 1))


def avgpool(name, x, k, s, p, include):
    case(name, lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include), {"x": x}, [*k, *s, *p, int(include), 0])


avgpool("avgpool_k3s2p1", rnd(2, 3, 7, 8), (3, 3), (2, 2), (1, 1), True)
avgpool("avgpool_rect_nopad", rnd(1, 2, 6, 9), (2, 3), (2, 1), (1, 1), False)


# Adaptive pooling and area resize. p = [oh, ow]
for name, shape, size in [("adaptive_down", (2, 3, 7, 9), (3, 4)), ("adaptive_global", (1, 4, 5, 6), (1, 1)),
                          ("adaptive_up", (1, 2, 3, 4), (5, 6))]:
    case(name, lambda x, size=size: F.adaptive_avg_pool2d(x, size), {"x": rnd(*shape)}, list(size))
case("area_resize", lambda x: F.interpolate(x, size=(4, 3), mode="area"), {"x": rnd(1, 2, 9, 7)}, [4, 3])


# Padding. p = [top, bottom, left, right, mode(0 constant, 1 reflect, 2 replicate)]
for name, mode, (t, b, l, r) in [("pad_constant", 0, (1, 2, 0, 3)), ("pad_reflect", 1, (2, 1, 3, 0)),
                                 ("pad_replicate", 2, (3, 1, 2, 4))]:
    m = ["constant", "reflect", "replicate"][mode]
    kwargs = {"value": 0.5} if mode == 0 else {}
    case(name, lambda x, m=m, kw=kwargs, p=(l, r, t, b): F.pad(x, p, mode=m, **kw), {"x": rnd(2, 3, 4, 5)}, [t, b, l, r, mode])


# Resampling. p = [mode(0 nearest, 1 bilinear), align_corners, by_scale, scale, oh, ow]
def resize(name, shape, mode, align=False, scale=None, size=None):
    m = ["nearest", "bilinear"][mode]
    kwargs = {} if mode == 0 else {"align_corners": align}
    if scale is not None:
        fn = lambda x: F.interpolate(x, scale_factor=scale, mode=m, **kwargs)
    else:
        fn = lambda x: F.interpolate(x, size=size, mode=m, **kwargs)
    x = rnd(*shape)
    y = fn(x)
    case(name, fn, {"x": x}, [mode, int(align), int(scale is not None), scale or 0, y.shape[2], y.shape[3]])


resize("nearest_x2", (1, 2, 3, 4), 0, scale=2)
resize("nearest_x3", (2, 2, 3, 2), 0, scale=3)
resize("nearest_x7", (1, 1, 2, 3), 0, scale=7)
resize("nearest_size", (1, 2, 3, 4), 0, size=(5, 7))
resize("nearest_down", (1, 2, 5, 7), 0, size=(2, 3))
resize("bilinear_x2", (2, 2, 3, 4), 1, align=False, scale=2)
resize("bilinear_x3", (1, 2, 3, 3), 1, align=False, scale=3)
resize("bilinear_size_align", (1, 2, 4, 3), 1, align=True, size=(7, 5))
resize("bilinear_size", (1, 2, 4, 6), 1, align=False, size=(5, 9))
resize("bilinear_down", (1, 2, 7, 9), 1, align=False, size=(3, 4))
resize("bilinear_align_one", (1, 1, 3, 5), 1, align=True, size=(1, 4))


# grid_sample. p = [padding(0 zeros, 1 border), align_corners]
for name, pad, align in [("grid_zeros", 0, False), ("grid_border", 1, False),
                         ("grid_zeros_align", 0, True), ("grid_border_align", 1, True)]:
    m = ["zeros", "border"][pad]
    fn = lambda x, grid, m=m, a=align: F.grid_sample(x, grid, mode="bilinear", padding_mode=m, align_corners=a)
    case(name, fn, {"x": rnd(2, 3, 6, 7), "grid": rnd(2, 5, 4, 2, scale=1.25)}, [pad, int(align)])


# affine_grid alone and chained into grid_sample (a differentiable crop). p = [oh, ow, align, padding]
for name, align in [("affine", False), ("affine_align", True)]:
    theta = torch.tensor([[[0.8, 0.1, 0.05], [-0.15, 0.9, -0.1]], [[0.5, -0.2, 0.3], [0.25, 0.6, 0.2]]])
    theta = theta + rnd(2, 2, 3, scale=0.05)
    case(name, lambda theta, a=align: F.affine_grid(theta, (2, 3, 5, 6), align_corners=a), {"theta": theta}, [5, 6, int(align), 0])
    fn = lambda x, theta, a=align: F.grid_sample(x, F.affine_grid(theta, (2, 3, 5, 6), align_corners=a),
                                                 padding_mode="zeros", align_corners=a)
    case(name + "_crop", fn, {"x": rnd(2, 3, 9, 8), "theta": theta}, [5, 6, int(align), 0])

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "GuiseTensorTests", "Fixtures", "conv_ops.safetensors")
fixture_io.save(os.path.normpath(path), out, metadata={"torch": torch.__version__, "script": "Tools/make_fixtures_conv.py"})
print(f"{len(out)} tensors, {os.path.getsize(path)} bytes -> {os.path.normpath(path)}")
