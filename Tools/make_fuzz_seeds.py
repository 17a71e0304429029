"""Seed inputs for the fuzzers (`make fuzz-seeds` writes Fuzz/corpus/<name>/).

Small valid files of every kind each reader takes, so that mutations start from inputs that get
deep into the reader rather than failing at the first byte:

- image: PNG (8/16-bit, grey, grey+alpha, palette, RGBA), JPEG (baseline with an EXIF
  orientation, progressive), WebP (lossy, lossless, with alpha), BMP, TIFF (both byte orders).
- safetensors: every dtype Guise reads, metadata, an empty tensor.
- torch: the small committed checkpoints from Tests/Fixtures (zip, ZIP64, legacy, pickled
  modules, hostile pickles).
- tflite: tiny graphs (6x6 inputs) with every operator the executor runs, fp16 weights behind
  DEQUANTIZE, sparse weights behind DENSIFY and MediaPipe's transpose convolution, written with
  the FlatBuffers builder.
- dlib: a tiny residual network in dlib's serialisation (every layer type the encoder runs).

Seeded and deterministic: rerunning it rewrites the same bytes.
"""
import json
import math
import os
import shutil
import struct
import sys
import zlib

import cv2
import flatbuffers
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put(out, name, data):
    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


# --- images -------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def palette_png(w, h, rng):
    rows = b"".join(b"\x00" + bytes(rng.integers(0, 4, w, dtype=np.uint8)) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + png_chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]))
            + png_chunk(b"tRNS", bytes([255, 128]))
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def with_exif_orientation(jpeg, orientation):
    # An APP1 Exif segment holding one IFD entry (Orientation, SHORT), after SOI.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def big_endian_tiff(w, h, rng):
    pixels = bytes(rng.integers(0, 256, w * h * 3, dtype=np.uint8))
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 0), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at = 8 + ifd_size
    data_at = bits_at + 6
    out = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            out += struct.pack(">HHII", tag, kind, count, bits_at)
        elif tag == 273:
            out += struct.pack(">HHII", tag, kind, count, data_at)
        elif kind == 3:
            out += struct.pack(">HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack(">HHII", tag, kind, count, value)
    out += struct.pack(">I", 0) + struct.pack(">HHH", 8, 8, 8)
    return out + pixels


def images(out):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 16 * 12 * 3).reshape(12, 16, 3).astype(np.uint8)
    noisy = (ramp.astype(np.int16) + rng.integers(-20, 20, ramp.shape)).clip(0, 255).astype(np.uint8)
    enc = lambda ext, img, params=(): cv2.imencode(ext, img, list(params))[1].tobytes()
    put(out, "rgb8.png", enc(".png", noisy))
    put(out, "grey16.png", enc(".png", (noisy[..., 0].astype(np.uint16) * 257)))
    grey_alpha = np.dstack([noisy[..., 0], noisy[..., 0], noisy[..., 0], noisy[..., 1]])
    put(out, "rgba8.png", enc(".png", grey_alpha))
    put(out, "palette.png", palette_png(9, 7, rng))
    put(out, "baseline-exif6.jpg", with_exif_orientation(enc(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 80]), 6))
    put(out, "progressive.jpg", enc(".jpg", noisy, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 60]))
    put(out, "grey.jpg", enc(".jpg", noisy[..., 1]))
    put(out, "lossy.webp", enc(".webp", noisy, [cv2.IMWRITE_WEBP_QUALITY, 70]))
    put(out, "lossless.webp", enc(".webp", noisy, [cv2.IMWRITE_WEBP_QUALITY, 101]))
    put(out, "alpha.webp", enc(".webp", np.dstack([noisy, noisy[..., :1]]), [cv2.IMWRITE_WEBP_QUALITY, 70]))
    put(out, "rgb.bmp", enc(".bmp", noisy[:5, :7]))
    put(out, "little.tif", enc(".tif", noisy[:6, :6], [cv2.IMWRITE_TIFF_COMPRESSION, 1]))
    put(out, "lzw.tif", enc(".tif", noisy[:6, :6, 0]))
    put(out, "big.tif", big_endian_tiff(5, 4, rng))


# --- safetensors --------------------------------------------------------------------------------

def safetensors(out):
    rng = np.random.default_rng(1)
    arrays = {
        "f32": rng.standard_normal((2, 3)).astype("<f4"), "f16": rng.standard_normal(4).astype("<f2"),
        "bf16": (rng.standard_normal((2, 2)).astype("<f4").view("<u4") >> 16).astype("<u2"),
        "f64": rng.standard_normal(2).astype("<f8"), "i64": np.array([-3, 0, 7], "<i8"),
        "i32": np.array([1, -2], "<i4"), "i16": np.array([300, -300], "<i2"), "i8": np.array([-5, 5], "i1"),
        "u8": np.array([0, 255], "u1"), "bool": np.array([0, 1], "u1"), "empty": np.zeros((0, 3), "<f4"),
    }
    dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16", "f64": "F64", "i64": "I64", "i32": "I32", "i16": "I16",
             "i8": "I8", "u8": "U8", "bool": "BOOL", "empty": "F32"}

    def write(names, metadata=None):
        header, data = {}, b""
        if metadata is not None:
            header["__metadata__"] = metadata
        for n in names:
            raw = arrays[n].tobytes()
            header[n] = {"dtype": dtype[n], "shape": list(arrays[n].shape), "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + data

    put(out, "all-dtypes.safetensors", write(list(arrays), {"format": "pt", "note": "seed"}))
    put(out, "one.safetensors", write(["f16"]))
    put(out, "empty-tensor.safetensors", write(["empty", "f32"]))
    put(out, "no-tensors.safetensors", write([], {}))


# --- torch --------------------------------------------------------------------------------------

TORCH_SEEDS = ["zip_dtypes.pt", "zip64_dtypes.pt", "zip_views.pt", "zip_half.pt", "zip_extras_p4.pt", "dotted.pt",
               "pickled_shared_module.pt", "legacy_dtypes.pt", "legacy_views.pt", "legacy_half.pt",
               "legacy_py2_cuda.pt", "hostile_zip.pt", "hostile_legacy.pt", "hostile_exec_p4.pkl", "hostile_inst.pkl",
               "bad_deflated.pt"]


def torch(out):
    for name in TORCH_SEEDS:
        shutil.copyfile(os.path.join(ROOT, "Tests/Fixtures", name), os.path.join(out, name))


# --- TFLite -------------------------------------------------------------------------------------

FLOAT32, FLOAT16, INT32 = 0, 1, 2
BUILTIN = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4,
           "DEPTH_TO_SPACE": 5, "DEQUANTIZE": 6, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18, "RELU": 19,
           "RELU6": 21, "RESHAPE": 22, "RESIZE_BILINEAR": 23, "CUSTOM": 32, "PAD": 34, "SUB": 41, "PRELU": 54,
           "HARD_SWISH": 117, "DENSIFY": 124}


class Graph:
    """One subgraph: tensors (constants carry their bytes), operators, inputs and outputs."""

    def __init__(self):
        self.tensors, self.ops, self.inputs, self.outputs = [], [], [], []

    def tensor(self, name, shape, kind=FLOAT32, data=None, sparsity=None):
        """sparsity: (traversal order, block map, [(format, dense size, segments, indices)])."""
        self.tensors.append((name, list(shape), kind, data, sparsity))
        return len(self.tensors) - 1

    def const(self, name, array):
        kind = {np.dtype("<f4"): FLOAT32, np.dtype("<f2"): FLOAT16, np.dtype("<i4"): INT32}[array.dtype]
        return self.tensor(name, array.shape, kind, array.tobytes())

    def op(self, code, inputs, outputs, options=None, custom=None):
        """options: (union type, [(slot, kind, value)]) with kind 'b' int8, 'i' int32, 'B' bool, 'v' int32 vector."""
        self.ops.append((code, inputs, outputs, options, custom))


def tflite(graph):
    b = flatbuffers.Builder(4096)

    def ints(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def offsets(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependUOffsetTRelative(v)
        return b.EndVector()

    def bytes_vector(data, align=16):
        b.StartVector(1, len(data), align)
        for x in reversed(data):
            b.PrependUint8(x)
        return b.EndVector()

    codes = sorted({(c, cu if c == "CUSTOM" else None) for c, _, _, _, cu in graph.ops}, key=str)
    code_index = {c: i for i, c in enumerate(codes)}
    code_tables = []
    for name, custom in codes:
        custom_name = b.CreateString(custom[0]) if custom else None
        b.StartObject(4)
        b.PrependInt8Slot(0, min(BUILTIN[name], 127), 0)
        if custom_name:
            b.PrependUOffsetTRelativeSlot(1, custom_name, 0)
        b.PrependInt32Slot(3, BUILTIN[name], 0)
        code_tables.append(b.EndObject())

    def int32_vector_table(values):
        v = ints(values)
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, v, 0)
        return b.EndObject()

    def sparsity_table(order, block_map, dims):
        dim_tables = []
        for fmt, dense_size, segments, indices in dims:
            seg = int32_vector_table(segments) if fmt == 1 else None
            idx = int32_vector_table(indices) if fmt == 1 else None
            b.StartObject(6)
            b.PrependInt8Slot(0, fmt, 0)
            b.PrependInt32Slot(1, dense_size, 0)
            if seg is not None:
                b.PrependUint8Slot(2, 1, 0)
                b.PrependUOffsetTRelativeSlot(3, seg, 0)
                b.PrependUint8Slot(4, 1, 0)
                b.PrependUOffsetTRelativeSlot(5, idx, 0)
            dim_tables.append(b.EndObject())
        o, m, d = ints(order), ints(block_map), offsets(dim_tables)
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(0, o, 0)
        b.PrependUOffsetTRelativeSlot(1, m, 0)
        b.PrependUOffsetTRelativeSlot(2, d, 0)
        return b.EndObject()

    buffers = [None]  # buffer 0 is the empty one activations use
    tensor_tables = []
    for name, shape, kind, data, sparsity in graph.tensors:
        buffer = 0
        if data is not None:
            buffers.append(data)
            buffer = len(buffers) - 1
        n, s = b.CreateString(name), ints(shape)
        sp = sparsity_table(*sparsity) if sparsity else None
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(0, s, 0)
        b.PrependInt8Slot(1, kind, 0)
        b.PrependUint32Slot(2, buffer, 0)
        b.PrependUOffsetTRelativeSlot(3, n, 0)
        if sp is not None:
            b.PrependUOffsetTRelativeSlot(6, sp, 0)
        tensor_tables.append(b.EndObject())

    op_tables = []
    for code, inputs, outputs, options, custom in graph.ops:
        opts = None
        if options:
            kind, fields = options
            vectors = {slot: ints(v) for slot, k, v in fields if k == "v"}
            b.StartObject(max(slot for slot, _, _ in fields) + 1)
            for slot, k, v in fields:
                if k == "b":
                    b.PrependInt8Slot(slot, v, 0)
                elif k == "B":
                    b.PrependBoolSlot(slot, v, False)
                elif k == "i":
                    b.PrependInt32Slot(slot, v, 0)
                else:
                    b.PrependUOffsetTRelativeSlot(slot, vectors[slot], 0)
            opts = b.EndObject()
        custom_options = bytes_vector(custom[1], 1) if custom else None
        ins, outs = ints(inputs), ints(outputs)
        b.StartObject(6)
        b.PrependUint32Slot(0, code_index[(code, custom if code == "CUSTOM" else None)], 0)
        b.PrependUOffsetTRelativeSlot(1, ins, 0)
        b.PrependUOffsetTRelativeSlot(2, outs, 0)
        if opts is not None:
            b.PrependUint8Slot(3, options[0], 0)
            b.PrependUOffsetTRelativeSlot(4, opts, 0)
        if custom_options is not None:
            b.PrependUOffsetTRelativeSlot(5, custom_options, 0)
        op_tables.append(b.EndObject())

    t_vec, o_vec = offsets(tensor_tables), offsets(op_tables)
    in_vec, out_vec = ints(graph.inputs), ints(graph.outputs)
    g_name = b.CreateString("main")
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, t_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, in_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, out_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, o_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, g_name, 0)
    subgraph = b.EndObject()

    buffer_tables = []
    for data in buffers:
        vec = bytes_vector(data) if data else None
        b.StartObject(1)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buffer_tables.append(b.EndObject())

    codes_vec, graphs_vec, buffers_vec = offsets(code_tables), offsets([subgraph]), offsets(buffer_tables)
    description = b.CreateString("fuzz seed")
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, graphs_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def conv_opts(padding, stride, act=0):
    return (1, [(0, "b", padding), (1, "i", stride), (2, "i", stride), (3, "b", act), (4, "i", 1), (5, "i", 1)])


def pool_opts(padding, size, stride):
    return (5, [(0, "b", padding), (1, "i", stride), (2, "i", stride), (3, "i", size), (4, "i", size), (5, "b", 0)])


SAME, VALID = 0, 1


def tflite_models(out):
    rng = np.random.default_rng(2)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype("<f4")

    # CONV_2D (SAME, fused RELU) → DEPTHWISE_CONV_2D (VALID) → MAX_POOL_2D.
    g = Graph()
    x = g.tensor("input", [1, 6, 6, 3])
    a, b_, c = g.tensor("conv", [1, 6, 6, 4]), g.tensor("dw", [1, 4, 4, 4]), g.tensor("pool", [1, 2, 2, 4])
    g.op("CONV_2D", [x, g.const("w1", w(4, 3, 3, 3)), g.const("b1", w(4))], [a], conv_opts(SAME, 1, act=1))
    g.op("DEPTHWISE_CONV_2D", [a, g.const("w2", w(1, 3, 3, 4)), g.const("b2", w(4))], [b_],
         (2, [(0, "b", VALID), (1, "i", 1), (2, "i", 1), (3, "i", 1), (4, "b", 0), (5, "i", 1), (6, "i", 1)]))
    g.op("MAX_POOL_2D", [b_], [c], pool_opts(VALID, 2, 2))
    g.inputs, g.outputs = [x], [c]
    put(out, "conv.tflite", tflite(g))

    # PAD → CONV_2D → residual ADD → PRELU → AVERAGE_POOL_2D → RESHAPE → LOGISTIC.
    g = Graph()
    x = g.tensor("input", [1, 4, 4, 4])
    p, c1, s, pr = g.tensor("pad", [1, 6, 6, 4]), g.tensor("conv", [1, 4, 4, 4]), g.tensor("sum", [1, 4, 4, 4]), g.tensor("prelu", [1, 4, 4, 4])
    av, r, y = g.tensor("avg", [1, 2, 2, 4]), g.tensor("flat", [1, 16]), g.tensor("output", [1, 16])
    g.op("PAD", [x, g.const("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], "<i4"))], [p])
    g.op("CONV_2D", [p, g.const("w", w(4, 3, 3, 4)), g.const("b", w(4))], [c1], conv_opts(VALID, 1))
    g.op("ADD", [x, c1], [s], (11, [(0, "b", 0)]))
    g.op("PRELU", [s, g.const("alpha", w(1, 1, 4))], [pr])
    g.op("AVERAGE_POOL_2D", [pr], [av], pool_opts(VALID, 2, 2))
    g.op("RESHAPE", [av, g.const("shape", np.array([1, 16], "<i4"))], [r], (17, [(0, "v", [1, 16])]))
    g.op("LOGISTIC", [r], [y])
    g.inputs, g.outputs = [x], [y]
    put(out, "residual.tflite", tflite(g))

    # DEPTH_TO_SPACE → RESIZE_BILINEAR → HARD_SWISH, RELU6 → CONCATENATION → MUL by a constant → SUB.
    g = Graph()
    x = g.tensor("input", [1, 3, 3, 8])
    d, rs, hs, r6 = g.tensor("d2s", [1, 6, 6, 2]), g.tensor("resize", [1, 4, 4, 2]), g.tensor("hswish", [1, 4, 4, 2]), g.tensor("relu6", [1, 4, 4, 2])
    cat, m, y = g.tensor("concat", [1, 4, 4, 4]), g.tensor("mul", [1, 4, 4, 4]), g.tensor("output", [1, 4, 4, 4])
    g.op("DEPTH_TO_SPACE", [x], [d], (94, [(0, "i", 2)]))
    g.op("RESIZE_BILINEAR", [d, g.const("size", np.array([4, 4], "<i4"))], [rs], (15, [(2, "B", False), (3, "B", True)]))
    g.op("HARD_SWISH", [rs], [hs])
    g.op("RELU6", [rs], [r6])
    g.op("CONCATENATION", [hs, r6], [cat], (10, [(0, "i", 3), (1, "b", 0)]))
    g.op("MUL", [cat, g.const("scale", w(4))], [m], (21, [(0, "b", 0)]))
    g.op("SUB", [m, cat], [y], (28, [(0, "b", 0)]))
    g.inputs, g.outputs = [x], [y]
    put(out, "misc.tflite", tflite(g))

    # fp16 weights behind DEQUANTIZE, folded at load; RELU after the conv is fused into it.
    g = Graph()
    x = g.tensor("input", [1, 4, 4, 2])
    w32, b32, c1, y = g.tensor("w32", [2, 1, 1, 2]), g.tensor("b32", [2]), g.tensor("conv", [1, 4, 4, 2]), g.tensor("output", [1, 4, 4, 2])
    g.op("DEQUANTIZE", [g.const("w16", w(2, 1, 1, 2).astype("<f2"))], [w32])
    g.op("DEQUANTIZE", [g.const("b16", w(2).astype("<f2"))], [b32])
    g.op("CONV_2D", [x, w32, b32], [c1], conv_opts(SAME, 1))
    g.op("RELU", [c1], [y])
    g.inputs, g.outputs = [x], [y]
    put(out, "fp16.tflite", tflite(g))

    # MediaPipe's Convolution2DTransposeBias (custom options: SAME = 1, strides 2×2).
    g = Graph()
    x = g.tensor("input", [1, 2, 2, 3])
    y = g.tensor("output", [1, 4, 4, 2])
    g.op("CUSTOM", [x, g.const("w", w(2, 2, 2, 3)), g.const("b", w(2))], [y],
         custom=("Convolution2DTransposeBias", struct.pack("<iii", 1, 2, 2)))
    g.inputs, g.outputs = [x], [y]
    put(out, "transpose.tflite", tflite(g))

    # Sparse conv weights (CSR over input channels, 6 of 12 stored) behind DENSIFY, folded at load.
    g = Graph()
    x = g.tensor("input", [1, 3, 3, 3])
    wd, y = g.tensor("w_dense", [4, 1, 1, 3]), g.tensor("output", [1, 3, 3, 4])
    ws = g.tensor("w_sparse", [4, 1, 1, 3], FLOAT32, w(6).tobytes(),
                  sparsity=([0, 1, 2, 3], [], [(0, 4, [], []), (0, 1, [], []), (0, 1, [], []),
                                               (1, 0, [0, 2, 3, 5, 6], [0, 2, 1, 0, 2, 1])]))
    g.op("DENSIFY", [ws], [wd])
    g.op("CONV_2D", [x, wd, g.const("b", w(4))], [y], conv_opts(SAME, 1))
    g.inputs, g.outputs = [x], [y]
    put(out, "sparse.tflite", tflite(g))


# --- dlib ---------------------------------------------------------------------------------------

def dlib_int(v):
    neg = 0x80 if v < 0 else 0
    m = abs(v)
    raw = m.to_bytes(max(1, (m.bit_length() + 7) // 8), "little")
    return bytes([neg | len(raw)]) + raw


def dlib_float(v):
    if v == 0:
        return dlib_int(0) + dlib_int(0)
    m, e = math.frexp(float(np.float32(v)))
    return dlib_int(int(m * (1 << 24))) + dlib_int(e - 24)


def dlib_string(s):
    return dlib_int(len(s)) + s.encode()


def dlib_tensor(values, shape):
    v = np.asarray(values, "<f4").reshape(-1)
    return dlib_int(2) + b"".join(dlib_int(d) for d in shape) + v.tobytes()


def dlib_alias(shape):
    return dlib_int(1) + b"".join(dlib_int(d) for d in shape)


def dlib_network():
    rng = np.random.default_rng(3)
    rand = lambda n: (rng.standard_normal(n) * 0.2).astype("<f4")
    empty = dlib_tensor([], [0, 0, 0, 0])
    trailer = b"000" + empty * 3

    def con(out_c, in_c, k, stride, pad):
        params = np.concatenate([rand(out_c * in_c * k * k), rand(out_c)])
        return (dlib_string("con_4") + dlib_tensor(params, [len(params), 1, 1, 1])
                + b"".join(dlib_int(v) for v in [out_c, k, k, stride, stride, pad, pad])
                + dlib_alias([out_c, in_c, k, k]) + dlib_alias([1, out_c, 1, 1]) + dlib_float(1) * 4)

    def affine(c):
        params = np.concatenate([1 + rand(c), rand(c)])
        return (dlib_string("affine_") + dlib_tensor(params, [1, 2 * c, 1, 1])
                + dlib_alias([1, c, 1, 1]) + dlib_alias([1, c, 1, 1]) + dlib_int(0))

    def pool(name, n, stride, pad):
        return dlib_string(name) + b"".join(dlib_int(v) for v in [n, n, stride, stride, pad, pad])

    def fc(outputs, inputs):
        params = rand(outputs * inputs)
        return (dlib_string("fc_2") + dlib_int(outputs) + dlib_int(inputs) + dlib_tensor(params, [inputs, outputs, 1, 1])
                + dlib_alias([inputs, outputs, 1, 1]) + dlib_alias([1, outputs, 1, 1]) + dlib_int(1) + dlib_float(1) * 4)

    tag = None
    # Forward order from the input: residual, then residual_down, then the pooled descriptor.
    layers = [con(4, 3, 3, 1, 1), affine(4), dlib_string("relu_"),
              tag, con(4, 4, 3, 1, 1), dlib_string("add_prev_"),
              tag, con(4, 4, 3, 2, 1), tag, tag, pool("avg_pool_2", 2, 2, 0), dlib_string("add_prev_"),
              dlib_string("relu_"), pool("max_pool_2", 3, 1, 1), pool("avg_pool_2", 0, 1, 0), fc(3, 4)]
    versions = [3] + [1 if layer is tag else 2 for layer in layers[1:]]
    out = dlib_int(1) + dlib_string("loss_metric_2") + dlib_float(0.04) + dlib_float(0.6)
    out += b"".join(dlib_int(v) for v in reversed(versions))
    out += dlib_string("input_rgb_image_sized") + dlib_float(122.782) + dlib_float(117.001) + dlib_float(104.298)
    out += dlib_int(8) + dlib_int(8)
    for v, layer in zip(versions, layers):
        if v == 1:
            continue
        out += layer + trailer
        if v == 3:
            out += dlib_int(1)
    return out


def dlib(out):
    put(out, "tiny-resnet.dat", dlib_network())


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(ROOT, "Fuzz/corpus")
    for name, make in [("image", images), ("safetensors", safetensors), ("torch", torch),
                       ("tflite", tflite_models), ("dlib", dlib)]:
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        make(d)
        files = sorted(os.listdir(d))
        total = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        print(f"fuzz-seeds: {name}: {len(files)} files, {total} bytes")


if __name__ == "__main__":
    main(sys.argv)
