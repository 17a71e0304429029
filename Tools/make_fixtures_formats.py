"""Writes the PyTorch-checkpoint fixtures for Tests/GuiseFormatsTests.

Run with the PyTorch venv `make bench` creates:  .venv/bin/python Tools/make_fixtures_formats.py

Each checkpoint NAME.pt (written by torch.save) comes with NAME.expected.safetensors (written with numpy
alone), holding the flat state dict Guise must read from it: same names, dtypes, shapes and bytes.
hostile_*.pt / hostile_*.pkl are pickles that would run a command if loaded with pickle/torch.load
(never load them); bad_*.pt are malformed checkpoints that must be refused with a clear error.
"""
import argparse, collections, io, json, os, pathlib, pickle, pickletools, struct, zipfile
import numpy as np
import torch

import fixture_io
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "GuiseFormatsTests", "Fixtures")

_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
       torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
       torch.bool: "BOOL"}


def raw_bytes(t):
    """A tensor's values, contiguous and little-endian, through numpy (bf16 via its 16-bit pattern)."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def save_expected(path, tensors):
    """The expected flat state dict, through Tools/fixture_io.py (bf16 as raw 16-bit patterns)."""
    fixture_io.save_raw(path, {n: (_DT[t.dtype], list(t.shape), raw_bytes(t)) for n, t in tensors.items()})


def write(name, obj, expected, legacy=False):
    path = os.path.join(OUT, name + ".pt")
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    save_expected(os.path.join(OUT, name + ".expected.safetensors"), expected)


class AttributeDict(dict):
    pass


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 2, bias=False))
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)  # not in state_dict

    def forward(self, x):
        return self.head(self.bn(self.conv(x))) * self.scale


def all_dtypes():
    g = torch.Generator().manual_seed(1)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
        "conv.bias": torch.randn(4, generator=g),
        "f64": torch.randn(2, 3, generator=g, dtype=torch.float64),
        "i64": torch.tensor([-(2 ** 40), 0, 7], dtype=torch.int64),
        "i32": torch.tensor([[-5, 1 << 30], [3, 4]], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "step": torch.tensor(7),  # a 0-d tensor
        "empty": torch.zeros(0, 5),
    }


def halves():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 7, generator=g)
    x[0, 0], x[0, 1] = 1e-7, 70000.0  # an f16 subnormal and an f16 overflow to inf
    return {"h": x.half(), "b": x.bfloat16(), "h_t": x.half().t(), "b_row": x.bfloat16()[2]}


def views():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 8, generator=g)
    return {
        "transposed": base.t(),               # strides (1, 8)
        "sliced": base[1:5, 2:7],             # offset 10, strides (8, 1)
        "stepped": base[::2, 1::3],           # strides (16, 3)
        "column": base[:, 3],                 # offset 3, stride 8
        "expanded": torch.arange(4.0).expand(3, 4),  # stride 0
        "permuted": torch.randn(2, 3, 4, generator=g).permute(2, 0, 1),
        "base": base,                         # shares its storage with the views above
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)

    d = all_dtypes()
    write("zip_dtypes", d, d)
    write("legacy_dtypes", d, d, legacy=True)
    py2_cuda_legacy(os.path.join(OUT, "legacy_dtypes.pt"), os.path.join(OUT, "legacy_py2_cuda.pt"))
    save_expected(os.path.join(OUT, "legacy_py2_cuda.expected.safetensors"), d)
    zip64(os.path.join(OUT, "zip_dtypes.pt"), os.path.join(OUT, "zip64_dtypes.pt"))
    save_expected(os.path.join(OUT, "zip64_dtypes.expected.safetensors"), d)
    h = halves()
    write("zip_half", h, h)
    write("legacy_half", h, h, legacy=True)
    v = views()
    write("zip_views", v, v)
    write("legacy_views", v, v, legacy=True)

    net = SmallNet().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    net.bn.num_batches_tracked.fill_(12)
    sd = net.state_dict()
    assert "scratch" not in sd

    # A training checkpoint: the model's state dict beside an optimiser state that also holds tensors.
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(1, 3, 3, 4)).sum().backward()
    opt.step()
    sd = net.state_dict()
    write("nested_model_state_dict", {"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": opt.state_dict(),
                                      "best": 0.25, "name": "small"}, sd)
    # A DataParallel-trained state dict: every key starts with "module.".
    dp_sd = nn.DataParallel(net).state_dict()
    assert all(k.startswith("module.") for k in dp_sd)
    write("state_dict_module_prefix", {"state_dict": dp_sd, "arch": "smallnet"}, sd)
    # A whole pickled module, as SimSwap/DiffFace's Arcface.tar holds it.
    write("pickled_module", {"model": nn.DataParallel(net)}, sd)
    write("pickled_module_legacy", {"model": nn.DataParallel(net)}, sd, legacy=True)
    # No well-known key and no top-level tensors: everything is exposed under dotted names.
    g = torch.Generator().manual_seed(4)
    a, b, c = torch.randn(3, generator=g), torch.randn(2, 2, generator=g), torch.randn(1, generator=g)
    write("dotted", {"enc": {"w": a, "deep": {"b": b}}, "list": [c, 5], "note": "x"},
          {"enc.w": a, "enc.deep.b": b, "list.0": c})

    # A module used twice and a tied weight: state_dict names each under every path.
    shared = nn.Linear(2, 2)
    twice = nn.ModuleDict({"a": shared, "b": shared, "c": nn.Linear(2, 2, bias=False)})
    twice.c.weight = shared.weight
    assert list(twice.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias", "c.weight"]
    write("pickled_shared_module", twice, twice.state_dict())

    # What training scripts leave beside the weights: numpy scalars and arrays, argparse args, paths,
    # a dict subclass (Lightning's AttributeDict), a defaultdict; pickle protocol 4.
    extras = {"state_dict": sd, "epoch": np.int64(5), "acc": np.float32(0.5), "arr": np.arange(3),
              "args": argparse.Namespace(lr=0.1, name="x"), "path": pathlib.PurePosixPath("/a/b"),
              "hyper_parameters": AttributeDict(lr=1), "callbacks": collections.defaultdict(list)}
    torch.save(extras, os.path.join(OUT, "zip_extras_p4.pt"), pickle_protocol=4)
    save_expected(os.path.join(OUT, "zip_extras_p4.expected.safetensors"), sd)

    write_hostile()
    write_bad()


def zip64(src, dst):
    """Rewrites a torch zip's central directory the way ZIP64 writers do for files over 4 GiB: every
    size and offset saturated to 0xFFFFFFFF in the classic fields, the real values in ZIP64 extra
    fields and the ZIP64 end record. Local headers and data are unchanged."""
    data = open(src, "rb").read()
    with zipfile.ZipFile(src) as z:
        infos = z.infolist()
    cd_start = struct.unpack("<I", data[-22 + 16:-22 + 20])[0]  # from the classic end record (no comment)
    assert data[cd_start:cd_start + 4] == b"PK\x01\x02"
    out = bytearray(data[:cd_start])
    cd = bytearray()
    for i in infos:
        name = i.filename.encode()
        extra = struct.pack("<HHQQQ", 1, 24, i.file_size, i.compress_size, i.header_offset)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, i.flag_bits, i.compress_type, 0, 0, i.CRC,
                          0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
    out += cd
    rec = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(infos), len(infos), len(cd), cd_start)
    out += struct.pack("<IIQI", 0x07064B50, 0, rec, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)
    # torch's own reader must accept it, with the same values.
    a, b = torch.load(dst), torch.load(src)
    assert all(torch.equal(a[k], b[k]) for k in b)


def py2_cuda_legacy(src, dst):
    """Rewrites a legacy checkpoint as Python 2 torch on a GPU wrote them: str keys as
    SHORT_BINSTRING, storages as torch.cuda.*Storage on 'cuda:0'. The storage bytes are unchanged."""
    data = open(src, "rb").read()
    f = io.BytesIO(data)
    out = b""
    for _ in range(5):  # magic, protocol, sys_info, the object, the storage keys
        ops = list(pickletools.genops(f))
        ends = [pos for _, _, pos in ops[1:]] + [f.tell()]
        for (op, arg, pos), end in zip(ops, ends):
            if op.name == "GLOBAL" and arg.startswith("torch ") and arg.endswith("Storage"):
                out += b"ctorch.cuda\n" + arg.split(" ")[1].encode() + b"\n"
            elif op.name == "BINUNICODE" and arg == "cpu":
                out += b"U\x06cuda:0"
            elif op.name == "BINUNICODE" and arg.isascii() and len(arg) < 256:
                out += b"U" + bytes([len(arg)]) + arg.encode()
            else:
                out += data[pos:end]
    with open(dst, "wb") as g:
        g.write(out + data[f.tell():])


class Pwn:
    """Unpickling this runs `touch /tmp/guise-pwned`, the side effect the tests look for."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


CMD = "touch /tmp/guise-pwned"


def write_hostile():
    import builtins, subprocess
    cases = {
        "os_system": Pwn(os.system, (CMD,)),
        "exec": Pwn(builtins.exec, ("import os; os.system('%s')" % CMD,)),
        "eval": Pwn(builtins.eval, ("__import__('os').system('%s')" % CMD,)),
        "popen": Pwn(subprocess.Popen, (CMD.split(),)),
    }
    for name, obj in cases.items():
        with open(os.path.join(OUT, "hostile_%s.pkl" % name), "wb") as f:
            # Protocol 2 renames modules Python-2 style (posix.system, __builtin__.exec); Popen keeps its name at 3.
            pickle.dump({"weight": obj}, f, protocol=3 if name == "popen" else 2)
    # Protocol 4 (STACK_GLOBAL, FRAME, MEMOIZE): exec.
    with open(os.path.join(OUT, "hostile_exec_p4.pkl"), "wb") as f:
        pickle.dump([cases["exec"]], f, protocol=4)
    # getattr(os, "system")("...") by hand: GLOBAL builtins.getattr, then REDUCE on its result.
    p = (b"\x80\x02cbuiltins\ngetattr\ncsubprocess\nos\n" b"X\x06\x00\x00\x00system\x86R"
         b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85R.")
    with open(os.path.join(OUT, "hostile_getattr.pkl"), "wb") as f:
        f.write(p)
    # Protocol 0 INST (calls the class/callable directly): posix.system.
    with open(os.path.join(OUT, "hostile_inst.pkl"), "wb") as f:
        f.write(b"(S'" + CMD.encode() + b"'\nios\nsystem\n.")
    # __builtin__.apply(os.system, (cmd,)), Python 2 style.
    p = (b"\x80\x02c__builtin__\napply\ncos\nsystem\nX" + struct.pack("<I", len(CMD)) + CMD.encode()
         + b"\x85\x86R.")
    with open(os.path.join(OUT, "hostile_apply.pkl"), "wb") as f:
        f.write(p)
    # torch._tensor._rebuild_from_type_v2 is allowed, but its first argument is called: os.system.
    # (func, type, args, state) as a 4-tuple: MARK func type args state TUPLE
    p = (b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(cos\nsystem\nctorch\nTensor\n"
         b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85}tR.")
    with open(os.path.join(OUT, "hostile_rebuild_from_type.pkl"), "wb") as f:
        f.write(p)
    # Inside real checkpoints: a torch zip whose data.pkl calls os.system, and a legacy file.
    torch.save({"w": torch.ones(2), "evil": cases["os_system"]}, os.path.join(OUT, "hostile_zip.pt"))
    torch.save({"w": torch.ones(2), "evil": cases["eval"]}, os.path.join(OUT, "hostile_legacy.pt"),
               _use_new_zipfile_serialization=False)
    # A pickled "module" whose state dict hides a call inside a nested dict.
    torch.save({"model": {"_modules": {}, "x": cases["exec"]}}, os.path.join(OUT, "hostile_nested.pt"))


def rezip(src, dst, edit):
    """Copies a torch zip, letting edit(name, bytes) replace an entry's bytes (stored, no compression)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def write_bad():
    src = os.path.join(OUT, "zip_dtypes.pt")

    def huge_size(name, data):
        if name.endswith("data.pkl"):
            # conv.bias: size (4,) -> (2**40,): more elements than the storage holds.
            i = data.index(b"K\x04\x85")
            return data[:i] + b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85" + data[i + 3:]
        return data
    rezip(src, os.path.join(OUT, "bad_huge_size.pt"), huge_size)

    def missing_storage(name, data):
        return data[:3] if name.endswith("data/1") else data
    rezip(src, os.path.join(OUT, "bad_short_storage.pt"), missing_storage)

    def overflow(name, data):
        if name.endswith("data.pkl"):
            # conv.bias: size (4,) -> (2**62, 2**62): the element count overflows.
            i = data.index(b"K\x04\x85")
            big = b"\x8a\x08" + struct.pack("<q", 1 << 62)
            j = data.index(b"K\x01\x85", i)  # its stride (1,) -> (1, 1)
            return data[:i] + big + big + b"\x86" + data[i + 3:j] + b"K\x01K\x01\x86" + data[j + 3:]
        return data
    rezip(src, os.path.join(OUT, "bad_overflow.pt"), overflow)

    # A compressed data.pkl: torch never writes one, and we refuse rather than guess.
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(os.path.join(OUT, "bad_deflated.pt"), "w") as zout:
        for info in zin.infolist():
            kind = zipfile.ZIP_DEFLATED if info.filename.endswith("data.pkl") else zipfile.ZIP_STORED
            zout.writestr(info.filename, zin.read(info.filename), compress_type=kind)


if __name__ == "__main__":
    main()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, os.path.normpath(OUT)))
