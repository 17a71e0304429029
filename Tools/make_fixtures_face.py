"""Reference outputs of the embedded face networks, for Guise's parity tests.

Run from the repository root with the LiteRT venv `make bench` creates (ai-edge-litert, dlib-bin,
numpy), plus opencv-python-headless:
    .venv-litert/bin/pip install opencv-python-headless
    .venv-litert/bin/python Tools/make_fixtures_face.py

Writes, under Tests/GuiseNetworksTests/Fixtures/ (tflite_densify and tflite_reference.json go to
Tests/GuiseFormatsTests/Fixtures/, beside the reader tests that use them):
  tflite_<model>.safetensors  input image (uint8 NHWC) and every output tensor, by the model's
                              output tensor names. The float input is  u8 * (1/255)  for models
                              that take [0, 1] and  u8 / 127.5 - 1  for those that take [-1, 1]
                              (metadata "range"); both are computed in float32 exactly as
                              `input_from_u8` does, so Swift can rebuild them bit for bit.
                              Outputs over 200 kB as float32 are stored as float16.
  tflite_densify.safetensors  for every DENSIFY op of the two sparse models: the dense weights
                              checked against an independent numpy densification, summarised as
                              (sum, sum |x|, sum x * ((i mod 97) + 1)) in float64, plus whole
                              tensors for the first few.
  tflite_reference.json       per model: LiteRT's op list (name, inputs, outputs), tensors
                              (name, shape, dtype), inputs, outputs, the input range, and
                              LiteRT's latency on 2 threads (median and minimum of 50 runs, ms;
                              dlib's of 20), for speed comparisons on the same machine.
  dlib_descriptors.safetensors  150x150 uint8 RGB face chips (dlib.get_face_chip, padding 0.25,
                              from the HOG detector and the 5-point predictor) and dlib's
                              128-d descriptors of them.

Input ranges follow MediaPipe's graphs (ImageToTensorCalculator output_tensor_float_range):
BlazeFace short/full range and the pose detector take [-1, 1]; face mesh, iris, selfie
segmentation and pose landmarks take [0, 1].
"""
import json, os, statistics, sys, time

import cv2
import dlib
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "Models")
SAMPLES = os.path.join(ROOT, "Samples")
OUT = os.path.join(ROOT, "Tests", "GuiseNetworksTests", "Fixtures")
# Reader-level references (op lists, densified weights) belong to the format tests.
OUT_FORMATS = os.path.join(ROOT, "Tests", "GuiseFormatsTests", "Fixtures")

# model -> input range ("-1..1" or "0..1") and which crop of astronaut.png it sees.
TFLITE = {
    "face_detection_short_range": ("-1..1", "whole"),
    "face_detection_full_range_sparse": ("-1..1", "whole"),
    "face_landmark": ("0..1", "face"),
    "iris_landmark": ("0..1", "eye"),
    "selfie_segmentation": ("0..1", "whole"),
    "pose_detection": ("-1..1", "whole"),
    "pose_landmark_full": ("0..1", "whole"),
}


def load_rgb(name):
    bgr = cv2.imread(os.path.join(SAMPLES, name), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read Samples/{name}; run `make samples`")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def input_from_u8(u8, rng):
    x = u8.astype(np.float32)
    if rng == "0..1":
        return x * np.float32(1 / 255)
    return x / np.float32(127.5) - np.float32(1)


def square_crop(img, cx, cy, side, size):
    """A side x side square centred at (cx, cy), clamped to the image, resized to size."""
    h, w = img.shape[:2]
    side = int(round(min(side, h, w)))
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def face_geometry(img, detector, predictor):
    """HOG detector box and 5-point shape of the largest face."""
    dets = detector(img, 1)
    if not dets:
        return None, None
    box = max(dets, key=lambda r: r.width() * r.height())
    return box, predictor(img, box)


def crops(img, box, shape):
    cx, cy = (box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2
    # Points 0/1 are the corners of the image-left eye in dlib's 5-point model.
    ex = (shape.part(0).x + shape.part(1).x) / 2
    ey = (shape.part(0).y + shape.part(1).y) / 2
    ew = abs(shape.part(0).x - shape.part(1).x)
    return {"face": (cx, cy, 1.6 * box.width()), "eye": (ex, ey, 2.3 * ew)}


def run_tflite(name, rng, crop, img, regions, report):
    path = os.path.join(MODELS, name + ".tflite")
    it = Interpreter(model_path=path, num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    _, h, w, _ = inp["shape"]
    if crop == "whole":
        u8 = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    else:
        cx, cy, side = regions[crop]
        u8 = square_crop(img, cx, cy, side, w)
    x = input_from_u8(u8, rng)[None]
    it.set_tensor(inp["index"], x)
    it.invoke()
    tensors = {"input_u8": u8[None]}
    outputs = {}
    for d in it.get_output_details():
        y = it.get_tensor(d["index"]).astype(np.float32)
        if y.nbytes > 200_000:
            y = y.astype(np.float16)
        tensors["out/" + d["name"]] = y
        outputs[d["name"]] = {"shape": [int(s) for s in d["shape"]], "max_abs": float(np.abs(y).max())}
    fixture_io.save(os.path.join(OUT, f"tflite_{name}.safetensors"), tensors,
                    {"range": rng, "input": inp["name"]})

    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1000)

    details = Interpreter(model_path=path)
    ops = details._get_ops_details()
    report[name] = {
        "input": inp["name"], "input_shape": [int(s) for s in inp["shape"]], "range": rng, "crop": crop,
        "outputs": outputs,
        "ops": [{"name": o["op_name"], "inputs": [int(i) for i in o["inputs"]],
                 "outputs": [int(i) for i in o["outputs"]]} for o in ops],
        "tensors": [{"index": int(t["index"]), "name": t["name"], "shape": [int(s) for s in t["shape"]],
                     "dtype": np.dtype(t["dtype"]).name} for t in details.get_tensor_details()],
        "litert_latency_ms_2_threads": statistics.median(times),
        "litert_latency_ms_2_threads_min": min(times),
    }
    print(f"{name}: {len(ops)} ops, outputs {list(outputs)}, LiteRT median {statistics.median(times):.2f} ms, min {min(times):.2f} ms")


def densify_numpy(values, shape, sp):
    """Independent densification: walk the levels of the traversal order (no blocks needed here)."""
    order, meta = list(sp["traversal_order"]), sp["dim_metadata"]
    assert not len(sp.get("block_map", [])), "block-sparse tensors are not expected in these models"
    dense = np.zeros(shape, dtype=np.float64)
    idx = [0] * len(shape)

    def visit(level, parent):
        if level == len(order):
            dense[tuple(idx)] = values[parent]
            return
        d, m = order[level], meta[level]
        if m["format"] == 0:
            for i in range(m["dense_size"]):
                idx[d] = i
                visit(level + 1, parent * m["dense_size"] + i)
        else:
            seg, ind = m["array_segments"], m["array_indices"]
            for j in range(seg[parent], seg[parent + 1]):
                idx[d] = int(ind[j])
                visit(level + 1, j)

    visit(0, 0)
    return dense


def densify_fixture(tensors):
    for name in ("face_detection_full_range_sparse", "pose_detection"):
        # XNNPACK would swallow the DENSIFY outputs; the builtin kernels keep them readable.
        it = Interpreter(model_path=os.path.join(MODELS, name + ".tflite"), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
        it.invoke()
        info = {t["index"]: t for t in it.get_tensor_details()}
        stats = []
        for k, op in enumerate(o for o in it._get_ops_details() if o["op_name"] == "DENSIFY"):
            src, dst = int(op["inputs"][0]), int(op["outputs"][0])
            litert = it.get_tensor(dst).astype(np.float64)
            ours = densify_numpy(it.get_tensor(src).astype(np.float64), litert.shape, info[src]["sparsity_parameters"])
            assert np.array_equal(litert, ours), f"{name}: numpy densification of tensor {src} disagrees with LiteRT"
            flat = litert.ravel()
            weights = (np.arange(flat.size) % 97 + 1).astype(np.float64)
            stats.append([src, dst, flat.sum(), np.abs(flat).sum(), (flat * weights).sum()])
            if k < 3:
                tensors[f"{name}/dense/{src}"] = litert.astype(np.float32)
        tensors[f"{name}/stats"] = np.array(stats, dtype=np.float64)
        print(f"{name}: {len(stats)} DENSIFY outputs match the numpy densification")


def dlib_fixture(detector, predictor):
    rec = dlib.face_recognition_model_v1(os.path.join(MODELS, "dlib_face_recognition_resnet_model_v1.dat"))
    chips, descs, names = [], [], []
    astronaut = load_rgb("astronaut.png")
    for label, img in (("astronaut", astronaut), ("astronaut_mirror", np.ascontiguousarray(astronaut[:, ::-1])),
                       ("messi5", load_rgb("messi5.jpg"))):
        box, shape = face_geometry(img, detector, predictor)
        if box is None:
            print(f"dlib: no face in {label}, skipped")
            continue
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        chips.append(chip)
        descs.append(np.array(rec.compute_face_descriptor(chip), dtype=np.float32))
        names.append(label)
    d = np.stack(descs)
    fixture_io.save(os.path.join(OUT, "dlib_descriptors.safetensors"),
                    {"chips_u8": np.stack(chips), "descriptors": d}, {"names": ",".join(names)})
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            print(f"dlib distance {names[i]} - {names[j]}: {np.linalg.norm(d[i] - d[j]):.4f}")
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        rec.compute_face_descriptor(chips[0])
        t.append((time.perf_counter() - t0) * 1000)
    print(f"dlib: median {statistics.median(t):.2f} ms, min {min(t):.2f} ms")
    return {"names": names, "dlib_latency_ms": statistics.median(t), "dlib_latency_ms_min": min(t)}


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(OUT_FORMATS, exist_ok=True)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(os.path.join(MODELS, "shape_predictor_5_face_landmarks.dat"))
    img = load_rgb("astronaut.png")
    box, shape = face_geometry(img, detector, predictor)
    if box is None:
        sys.exit("no face found in astronaut.png")
    regions = crops(img, box, shape)
    report = {}
    for name, (rng, crop) in TFLITE.items():
        run_tflite(name, rng, crop, img, regions, report)
    dense = {}
    densify_fixture(dense)
    fixture_io.save(os.path.join(OUT_FORMATS, "tflite_densify.safetensors"), dense)
    report["dlib"] = dlib_fixture(detector, predictor)
    with open(os.path.join(OUT_FORMATS, "tflite_reference.json"), "w") as f:
        json.dump(report, f, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d in (OUT, OUT_FORMATS) for f in os.listdir(d))
    print(f"fixtures: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
