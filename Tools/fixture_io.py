"""Writes and reads safetensors with numpy alone, for the fixture scripts in Tools/.

Fixtures are small files committed in Tests/Fixtures (FIXTURES), one copy each, written only
by the Tools/make_fixtures_*.py and Tools/reference_adm.py scripts (`make fixtures` reruns them
all); tests find them through Tests/GuiseTestSupport and read them with
GuiseFormats.SafeTensorsFile, so CI never needs torch.
"""
import json, os, struct
import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Fixtures")

_DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
       np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
       np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}
_NP = {v: k for k, v in _DT.items()}


def save(path, tensors, metadata=None):
    """tensors: name -> numpy array (or anything np.asarray takes). Sorted names, 8-byte aligned."""
    entries = {}
    for name, v in tensors.items():
        a = np.ascontiguousarray(np.asarray(v))
        if a.dtype not in _DT:
            a = a.astype(np.float32)
        entries[name] = (_DT[a.dtype], list(a.shape), a.astype(a.dtype.newbyteorder("<")).tobytes())
    save_raw(path, entries, metadata)


def save_raw(path, entries, metadata=None):
    """entries: name -> (safetensors dtype name, shape, little-endian bytes), for dtypes numpy
    lacks (BF16). Sorted names, header padded so the data starts 8-byte aligned."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(entries):
        dtype, shape, b = entries[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=_NP[info["dtype"]]).reshape(info["shape"])
    return out
