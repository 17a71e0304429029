"""Reference results of MediaPipe's pose pipeline, for Guise's pose tests.

Run from the repository root with the LiteRT venv `make bench` creates, plus mediapipe 0.10.21
(its legacy solution API, which still ships the .tflite files; wheels for Python 3.9-3.12):
    .venv-litert/bin/pip install 'mediapipe==0.10.21'
    .venv-litert/bin/python Tools/make_fixtures_pose.py

Writes Tests/GuiseFaceTests/Fixtures/pose_reference.safetensors with two kinds of reference:

  mp/<photo>/...   MediaPipe itself: mp.solutions.pose's graph (pose_landmark_cpu, static image
                   mode, model_complexity 1 = pose_landmark_full, segmentation on, min detection
                   and tracking confidence 0.5), with the detection and its ROI read from the
                   graph's extra outputs. Pixels of the photo throughout:
      detection    [13]  score, face box (xmin, ymin, width, height), 4 keypoints (x, y)
      roi          [5]   centre x, centre y, width, height, rotation (radians)
      landmarks    [33, 4]  x, y, z (z scaled like x), visibility
      mask4        [H/4, W/4]  the person mask, every 4th pixel of every 4th row

  np/<photo>/...   this script's own numpy decoding of LiteRT's raw outputs, written from the
                   MediaPipe graph configs (pose_detection_cpu, pose_detection_to_roi,
                   tensors_to_pose_landmarks_and_segmentation, the inverse projection), for
                   the 6 auxiliary points and the presence score that the solution API drops:
      detection, roi as above; landmarks [39, 5] x, y, z, visibility, presence; flag [1]

  raw/astronaut/... LiteRT's raw outputs on astronaut.png, so the decoders can be tested alone:
      det_boxes [2254, 12], det_scores [2254], lm [195], flag [1], heatmap [64, 64, 39] (float16),
      segmentation [256, 256] (float16); np/astronaut/mask4 is decoded from these very values.
"""
import math, os, sys

import cv2
import mediapipe as mp
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mediapipe.python.solution_base import SolutionBase

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "Models")
SAMPLES = os.path.join(ROOT, "Samples")
OUT = os.path.join(ROOT, "Tests", "GuiseFaceTests", "Fixtures", "pose_reference.safetensors")
PHOTOS = {"astronaut": "astronaut.png", "messi5": "messi5.jpg"}


def load_rgb(name):
    bgr = cv2.imread(os.path.join(SAMPLES, name), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read Samples/{name}; run `make samples`")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sigmoid(x):
    # Beyond ±80 the result is 0 or 1 in float64 anyway; the clip only silences exp's overflow.
    return 1 / (1 + np.exp(-np.clip(np.asarray(x, np.float64), -80, 80)))


# ---- MediaPipe itself --------------------------------------------------------------------

def mediapipe_reference(img):
    graph = SolutionBase(
        binary_graph_path="mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb",
        side_inputs={"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": True,
                     "smooth_segmentation": False, "use_prev_landmarks": False},
        calculator_params={
            "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
            "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold": 0.5},
        outputs=["pose_landmarks", "pose_detection", "pose_rect_from_detection", "segmentation_mask"])
    r = graph.process({"image": img})
    graph.close()
    h, w = img.shape[:2]
    loc = r.pose_detection.location_data
    bb = loc.relative_bounding_box
    det = [r.pose_detection.score[0], bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h]
    for k in loc.relative_keypoints:
        det += [k.x * w, k.y * h]
    rr = r.pose_rect_from_detection
    roi = [rr.x_center * w, rr.y_center * h, rr.width * w, rr.height * h, rr.rotation]
    lms = [[l.x * w, l.y * h, l.z * w, l.visibility] for l in r.pose_landmarks.landmark]
    return {"detection": np.array(det), "roi": np.array(roi), "landmarks": np.array(lms),
            "mask4": np.asarray(r.segmentation_mask, np.float32)[::4, ::4]}


# ---- numpy, from the graph configs --------------------------------------------------------

def ssd_anchors(size, strides, min_scale, max_scale):
    """SsdAnchorsCalculator with aspect_ratios [1], interpolated_scale_aspect_ratio 1,
    fixed_anchor_size: per layer one anchor plus one interpolated; layers of equal stride share
    a feature map. Only the centres matter (fixed size 1)."""
    n = len(strides)
    scale = lambda i: min_scale + (max_scale - min_scale) * i / (n - 1)
    anchors, layer = [], 0
    while layer < n:
        count, last = 0, layer
        while last < n and strides[last] == strides[layer]:
            count += 2  # aspect ratio 1.0, then the interpolated scale
            last += 1
        cells = math.ceil(size / strides[layer])
        for y in range(cells):
            for x in range(cells):
                anchors += [((x + 0.5) / cells, (y + 0.5) / cells)] * count
        layer = last
    return np.array(anchors)


def letterbox(img, size):
    """ImageToTensorCalculator, keep_aspect_ratio, BORDER_ZERO: the image centred in a square of
    its long side, warped as its OpenCV converter does (the 8-bit image through
    warpPerspective from the padded rectangle's corners to the tensor's, then scaled to
    [-1, 1]); returns the tensor and the padding [left, top, right, bottom], normalised."""
    h, w = img.shape[:2]
    side = max(w, h)
    pad_x, pad_y = (side - w) / 2, (side - h) / 2
    src = np.float32([[-pad_x, h + pad_y], [-pad_x, -pad_y], [w + pad_x, -pad_y], [w + pad_x, h + pad_y]])
    dst = np.float32([[0, size], [0, 0], [size, 0], [size, size]])
    m = cv2.getPerspectiveTransform(src, dst)
    u8 = cv2.warpPerspective(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return u8.astype(np.float32) * np.float32(2 / 255) - 1, np.array([pad_x, pad_y, pad_x, pad_y]) / side


def weighted_nms(dets, threshold):
    """NonMaxSuppressionCalculator, WEIGHTED, IoU: rows are score, xmin, ymin, w, h, keypoints."""
    def iou(a, b):
        iw = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        ih = min(a[2] + a[4], b[2] + b[4]) - max(a[2], b[2])
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / (a[3] * a[4] + b[3] * b[4] - inter)
    left = sorted(dets, key=lambda d: -d[0])
    out = []
    while left:
        top = left[0]
        near = [d for d in left if iou(d, top) > threshold]
        left = [d for d in left if iou(d, top) <= threshold]
        wts = np.array([d[0] for d in near])
        arr = np.array(near)
        corners = np.stack([arr[:, 1], arr[:, 2], arr[:, 1] + arr[:, 3], arr[:, 2] + arr[:, 4]], 1)
        c = (corners * wts[:, None]).sum(0) / wts.sum()
        kps = (arr[:, 5:] * wts[:, None]).sum(0) / wts.sum()
        out.append(np.concatenate([[top[0], c[0], c[1], c[2] - c[0], c[3] - c[1]], kps]))
    return out


def detect(img, interp):
    h, w = img.shape[:2]
    x, pad = letterbox(img, 224)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x[None].astype(np.float32))
    interp.invoke()
    outs = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    boxes = outs["Identity"][0].astype(np.float64)
    logits = outs["Identity_1"][0, :, 0]
    anchors = ssd_anchors(224, [8, 16, 32, 32, 32], 0.1484375, 0.75)
    scores = sigmoid(np.clip(logits, -100, 100))
    dets = []
    for i in np.nonzero(scores >= 0.5)[0]:
        r = boxes[i] / 224  # reverse_output_order: x, y, w, h, then keypoint x, y pairs
        ax, ay = anchors[i]
        cx, cy, bw, bh = r[0] + ax, r[1] + ay, r[2], r[3]
        kps = (r[4:].reshape(4, 2) + [ax, ay]).ravel()
        dets.append(np.concatenate([[scores[i], cx - bw / 2, cy - bh / 2, bw, bh], kps]))
    if not dets:
        return None, boxes, logits
    best = weighted_nms(dets, 0.3)[0]
    # DetectionLetterboxRemovalCalculator, then pixels.
    l, t, r_, b = pad
    sx, sy = 1 - l - r_, 1 - t - b
    px = lambda v: (v - l) / sx * w
    py = lambda v: (v - t) / sy * h
    det = [best[0], px(best[1]), py(best[2]), best[3] / sx * w, best[4] / sy * h]
    for k in range(4):
        det += [px(best[5 + 2 * k]), py(best[6 + 2 * k])]
    return np.array(det), boxes, logits


def roi_from_detection(det):
    """AlignmentPointsRectsCalculator (keypoint 0 centre, keypoint 1 scale and rotation, target
    90 degrees), then RectTransformationCalculator (scale 1.25, square_long), in pixels."""
    x0, y0, x1, y1 = det[5], det[6], det[7], det[8]
    side = 2 * math.hypot(x1 - x0, y1 - y0) * 1.25
    rot = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rot = rot - 2 * math.pi * math.floor((rot + math.pi) / (2 * math.pi))
    return np.array([x0, y0, side, side, rot])


def crop_matrix(roi, size):
    """The perspective map from the rotated rectangle's corners to the tensor's outer corners,
    as ImageToTensorCalculator's OpenCV converter builds it."""
    cx, cy, w, h, rot = roi
    c, s = math.cos(rot), math.sin(rot)
    corners = []
    for u, v in [(-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5), (0.5, 0.5)]:  # bottom-left, top-left, top-right, bottom-right
        corners.append([cx + c * u * w - s * v * h, cy + s * u * w + c * v * h])
    dst = [[0, size], [0, 0], [size, 0], [size, size]]
    return cv2.getPerspectiveTransform(np.float32(corners), np.float32(dst))


def landmarks(img, roi, interp):
    h, w = img.shape[:2]
    m = crop_matrix(roi, 256)
    u8 = cv2.warpPerspective(img, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x = u8.astype(np.float32) / np.float32(255)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x[None].astype(np.float32))
    interp.invoke()
    outs = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    raw = {"lm": outs["Identity"][0], "flag": outs["Identity_1"][0],
           "segmentation": outs["Identity_2"][0, :, :, 0].astype(np.float16),
           "heatmap": outs["Identity_3"][0].astype(np.float16)}
    return raw, m


def decode_landmarks(raw, roi, w, h):
    """TensorsToLandmarks (39 points, 256-px tensor, sigmoid visibility and presence),
    RefineLandmarksFromHeatmap (min confidence 0.5), projection onto the ROI.

    The graph text sets kernel_size 7, but mediapipe 0.10.21 refines with a 9x9 window (the
    option's default): 9 reproduces its landmarks to 0.03 px on both photos, 7 misses weakly
    located points (elbows, hips, feet) by up to 4.4 px."""
    lm = raw["lm"].reshape(39, 5).astype(np.float32)
    nx, ny, nz = lm[:, 0] / np.float32(256), lm[:, 1] / np.float32(256), lm[:, 2] / np.float32(256)
    vis, pres = sigmoid(lm[:, 3]), sigmoid(lm[:, 4])
    hm = sigmoid(raw["heatmap"].astype(np.float32))
    for i in range(39):
        col, row = int(nx[i] * np.float32(64)), int(ny[i] * np.float32(64))  # C++ truncation
        if not (0 <= col < 64 and 0 <= row < 64):
            continue
        r0, r1, c0, c1 = max(0, row - 4), min(64, row + 5), max(0, col - 4), min(64, col + 5)
        patch = hm[r0:r1, c0:c1, i]
        if patch.max() >= 0.5 and patch.sum() > 0:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            nx[i] = (cols * patch).sum() / 64 / patch.sum()
            ny[i] = (rows * patch).sum() / 64 / patch.sum()
    cx, cy, rw, rh, rot = roi
    # LandmarkProjectionCalculator in normalised image coordinates, then pixels.
    u, v = nx.astype(np.float64) - 0.5, ny.astype(np.float64) - 0.5
    X = (math.cos(rot) * u - math.sin(rot) * v) * (rw / w) + cx / w
    Y = (math.sin(rot) * u + math.cos(rot) * v) * (rh / h) + cy / h
    return np.stack([X * w, Y * h, nz * (rw / w) * w, vis, pres], 1)


def decode_mask(seg, m, w, h):
    """Sigmoid, then the crop's matrix inverted back onto the photo (WarpAffine, BORDER_ZERO)."""
    prob = sigmoid(seg.astype(np.float32)).astype(np.float32)
    return cv2.warpAffine(prob, m[:2], (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def main():
    det_net = Interpreter(model_path=os.path.join(MODELS, "pose_detection.tflite"), num_threads=2)
    lm_net = Interpreter(model_path=os.path.join(MODELS, "pose_landmark_full.tflite"), num_threads=2)
    det_net.allocate_tensors()
    lm_net.allocate_tensors()
    tensors = {}
    for key, name in PHOTOS.items():
        img = load_rgb(name)
        h, w = img.shape[:2]
        ref = mediapipe_reference(img)
        for k, v in ref.items():
            tensors[f"mp/{key}/{k}"] = np.asarray(v, np.float32)
        det, boxes, logits = detect(img, det_net)
        roi = roi_from_detection(det)
        raw, m = landmarks(img, roi, lm_net)
        lms = decode_landmarks(raw, roi, w, h)
        tensors[f"np/{key}/detection"] = det.astype(np.float32)
        tensors[f"np/{key}/roi"] = roi.astype(np.float32)
        tensors[f"np/{key}/landmarks"] = lms.astype(np.float32)
        tensors[f"np/{key}/flag"] = np.asarray(raw["flag"], np.float32)
        tensors[f"np/{key}/mask4"] = decode_mask(raw["segmentation"], m, w, h)[::4, ::4]
        if key == "astronaut":
            tensors["raw/astronaut/det_boxes"] = boxes.astype(np.float32)
            tensors["raw/astronaut/det_scores"] = logits.astype(np.float32)
            for k in ("lm", "flag", "heatmap", "segmentation"):
                tensors[f"raw/astronaut/{k}"] = raw[k]
        d_lm = np.hypot(*(lms[:33, :2] - ref["landmarks"][:, :2]).T)
        d_mask = np.abs(tensors[f"np/{key}/mask4"] - ref["mask4"])
        print(f"{key} {w}x{h}: score {det[0]:.4f} (MediaPipe {ref['detection'][0]:.4f}), "
              f"ROI {np.round(roi, 2).tolist()} (MediaPipe {np.round(ref['roi'], 2).tolist()}), "
              f"pose flag {float(raw['flag'][0]):.4f}; numpy vs MediaPipe landmarks: max {d_lm.max():.2f} px, "
              f"mean {d_lm.mean():.2f} px; mask max diff {d_mask.max():.3f}, mean {d_mask.mean():.4f}")
    fixture_io.save(OUT, tensors, {"mediapipe": mp.__version__})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
