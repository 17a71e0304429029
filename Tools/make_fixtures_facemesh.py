"""Reference results of MediaPipe's face detection, face mesh and iris pipelines, for Guise's
end-to-end face tests (Tests/GuiseFaceTests/FaceMeshPipelineTests.swift).

Run from the repository root with the venv Tools/make_fixtures_pose.py uses (the LiteRT venv
`make bench` creates, plus mediapipe 0.10.21 for its legacy solution API):
    .venv-litert/bin/python Tools/make_fixtures_facemesh.py

Writes Tests/GuiseFaceTests/Fixtures/facemesh_reference.safetensors. Pixels of the photo
throughout; z is scaled like x.

  mp/<photo>/detections  [N, 17]  mp.solutions.face_detection (model_selection 0, short range,
                                  min confidence 0.5): score, box xmin ymin width height, six
                                  keypoints x y (eyes, nose tip, mouth, ear tragions)
  mp/<photo>/detections_full_range [N, 17]  for photos where the short-range detector finds no
                                  face (messi5), the full-range one (its graph's threshold 0.6),
                                  and roi, mesh, mesh_refined below come from the face mesh graph
                                  rebuilt with it (see `full_range`)
  mp/<photo>/roi         [5]      the face mesh graph's crop from its first detection
                                  (face_rects_from_detections): centre x, y, width, height, rotation
  mp/<photo>/mesh        [468, 3] mp.solutions.face_mesh, static images, one face,
                                  refine_landmarks False: face_landmark.tflite, Guise's model
  mp/<photo>/mesh_refined [478, 3] the same with refine_landmarks True. That runs another model,
                                  face_landmark_with_attention.tflite, whose last 10 points are
                                  the irises (468-472 the person's right = the image's left eye,
                                  473-477 the other); Guise does not embed it, so its points are
                                  only a loose cross-check of Guise's iris centres.
  np/<photo>/iris_roi    [2, 5]   the iris crops from mp/<photo>/mesh (image-left eye, image-right)
  np/<photo>/eye_contour [2, 71, 3], np/<photo>/iris [2, 5, 3]

The np/ iris entries are this script's reproduction of MediaPipe's IrisLandmarkLeftAndRightCpu
graph, because mediapipe's Python package does not ship the iris graph (nor the
ImageCroppingCalculator it needs). They follow iris_landmark_landmarks_to_roi.pbtxt and
iris_landmark_cpu.pbtxt with LiteRT running iris_landmark.tflite:
  ROI: the bounding box of eye corners 33/133 (362/263 for the other eye), turned so the
       corner-to-corner vector is level, square on the long side, 2.3x.
  ImageCroppingCalculator (CPU, BORDER_REPLICATE): centre and size rounded to whole pixels,
       cv::boxPoints of that cv::RotatedRect mapped to the corner *pixel centres* (0 and
       size - 1) of a size x size crop, cv::warpPerspective with flags 0 (nearest neighbour).
  ImageTransformationCalculator (64 x 64, FIT): cv::resize, INTER_AREA when shrinking, else
       INTER_LINEAR; then cv::flip for the right eye.
  TfLiteConverterCalculator: value / 255. TfLiteTensorsToLandmarksCalculator: x -> 64 - x for
       the flipped eye, / 64; LandmarkProjectionCalculator with the unrounded ROI.
The same decoding applied to the mesh model on ImageToTensorCalculator's 8-bit crop reproduces
mp/<photo>/mesh, which the script checks and prints.
"""
import math, os, sys

import cv2
import mediapipe as mp
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.python.solution_base import SolutionBase

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "Models")
SAMPLES = os.path.join(ROOT, "Samples")
OUT = os.path.join(ROOT, "Tests", "GuiseFaceTests", "Fixtures", "facemesh_reference.safetensors")
PHOTOS = {"astronaut": "astronaut.png", "messi5": "messi5.jpg"}
EYES = [((33, 133), False), ((362, 263), True)]  # (corners, is the network's mirrored "right eye")


def load_rgb(name):
    bgr = cv2.imread(os.path.join(SAMPLES, name), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read Samples/{name}; run `make samples`")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detections(img):
    h, w = img.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as fd:
        r = fd.process(img)
    return detection_rows(r.detections, w, h)


FULL_RANGE_GRAPH = """
input_stream: "image"
output_stream: "detections"
output_stream: "face_rect_from_detection"
output_stream: "face_landmarks"
node { calculator: "FaceDetectionFullRangeCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
node { calculator: "SplitDetectionVectorCalculator" input_stream: "detections" output_stream: "first"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges: { begin: 0 end: 1 } element_only: true } } }
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:size" }
node { calculator: "FaceDetectionFrontDetectionToRoi" input_stream: "DETECTION:first" input_stream: "IMAGE_SIZE:size"
  output_stream: "ROI:face_rect_from_detection" }
node { calculator: "FaceLandmarkCpu" input_stream: "IMAGE:image" input_stream: "ROI:face_rect_from_detection"
  output_stream: "LANDMARKS:face_landmarks" input_side_packet: "WITH_ATTENTION:with_attention" }
"""


def detection_rows(dets, w, h):
    out = []
    for d in dets or []:
        bb = d.location_data.relative_bounding_box
        row = [d.score[0], bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h]
        for k in d.location_data.relative_keypoints:
            row += [k.x * w, k.y * h]
        out.append(row)
    return np.array(out, np.float64).reshape(-1, 17)


def full_range(img, refine):
    """The face mesh graph with the full-range detector in place of the short-range one, built
    from the subgraphs mediapipe registers (FaceDetectionFullRangeCpu at its own score
    threshold 0.6, FaceDetectionFrontDetectionToRoi, FaceLandmarkCpu): detections, ROI, mesh."""
    h, w = img.shape[:2]
    cfg = text_format.Parse(FULL_RANGE_GRAPH, calculator_pb2.CalculatorGraphConfig())
    graph = SolutionBase(graph_config=cfg, side_inputs={"with_attention": refine},
                         outputs=["detections", "face_rect_from_detection", "face_landmarks"])
    r = graph.process({"image": img})
    graph.close()
    rr = r.face_rect_from_detection
    roi = np.array([rr.x_center * w, rr.y_center * h, rr.width * w, rr.height * h, rr.rotation])
    pts = np.array([[p.x * w, p.y * h, p.z * w] for p in r.face_landmarks.landmark])
    return detection_rows(r.detections, w, h), roi, pts


def mesh(img, refine):
    h, w = img.shape[:2]
    graph = SolutionBase(
        binary_graph_path="mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb",
        side_inputs={"num_faces": 1, "with_attention": refine, "use_prev_landmarks": False},
        calculator_params={
            "facedetectionshortrangecpu__facedetectionshortrange__facedetection__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
            "facelandmarkcpu__ThresholdingCalculator.threshold": 0.5},
        outputs=["multi_face_landmarks", "face_rects_from_detections"])
    r = graph.process({"image": img})
    graph.close()
    if not r.multi_face_landmarks:
        return None, None
    rr = r.face_rects_from_detections[0]
    roi = np.array([rr.x_center * w, rr.y_center * h, rr.width * w, rr.height * h, rr.rotation])
    pts = np.array([[p.x * w, p.y * h, p.z * w] for p in r.multi_face_landmarks[0].landmark])
    return roi, pts


def normalize_radians(a):
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def project(raw, roi, size, flip=False):
    """TensorsToLandmarks (x flipped as 64 - x when asked) and LandmarkProjection, in pixels."""
    raw = raw.reshape(-1, 3).astype(np.float32)
    x = raw[:, 0]
    if flip:
        x = np.float32(size) - x
    u, v, z = x / np.float32(size) - 0.5, raw[:, 1] / np.float32(size) - 0.5, raw[:, 2] / np.float32(size)
    cx, cy, rw, rh, rot = roi
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + (c * u - s * v) * rw, cy + (s * u + c * v) * rh, z * rw], 1)


def mesh_from_roi(img, roi, net):
    """FaceLandmarkCpu: ImageToTensorCalculator's 8-bit warp of the ROI (BORDER_REPLICATE)."""
    cx, cy, rw, rh, rot = roi
    c, s = math.cos(rot), math.sin(rot)
    src = [[cx + c * u * rw - s * v * rh, cy + s * u * rw + c * v * rh]
           for u, v in [(-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5), (0.5, 0.5)]]
    m = cv2.getPerspectiveTransform(np.float32(src), np.float32([[0, 192], [0, 0], [192, 0], [192, 192]]))
    u8 = cv2.warpPerspective(img, m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    outs = run(net, u8.astype(np.float32) / np.float32(255))
    return project(next(o for o in outs if o.size == 1404), roi, 192)


def run(net, x):
    net.set_tensor(net.get_input_details()[0]["index"], x[None].astype(np.float32))
    net.invoke()
    return [net.get_tensor(d["index"]) for d in net.get_output_details()]


def iris_roi(a, b):
    """IrisLandmarkLandmarksToRoi in pixels: corner box, level, square_long, 2.3x."""
    x0, x1, y0, y1 = min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1])
    rot = normalize_radians(-math.atan2(-(b[1] - a[1]), b[0] - a[0]))
    side = max(x1 - x0, y1 - y0) * 2.3
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, side, side, rot])


def eye_crop(img, roi, flip):
    """ImageCroppingCalculator then ImageTransformationCalculator, as the module docstring says."""
    cx, cy, rw, rh, rot = roi
    h, w = img.shape[:2]
    # The calculator gets the ROI as float32 fractions of the image size and rounds it back to
    # pixels with std::round (halves away from zero, unlike Python's round).
    def to_pixels(v, size):
        p = float(np.float32(np.float32(v / size) * np.float32(size)))
        return int(math.copysign(math.floor(abs(p) + 0.5), p))
    ccx, ccy, cw, ch = to_pixels(cx, w), to_pixels(cy, h), to_pixels(rw, w), to_pixels(rh, h)
    angle = float(np.float32(float(np.float32(rot) * np.float32(180)) / math.pi))  # rotation * 180.f / M_PI
    box = cv2.boxPoints(((float(ccx), float(ccy)), (float(cw), float(ch)), angle))
    dst = np.float32([[0, ch - 1], [0, 0], [cw - 1, 0], [cw - 1, ch - 1]])
    m = cv2.getPerspectiveTransform(np.float32(box), dst)
    crop = cv2.warpPerspective(img, m, (cw, ch), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    scale = min(64 / cw, 64 / ch)
    tw, th = round(cw * scale), round(ch * scale)
    assert (tw, th) == (64, 64), "square ROIs need no letterbox"
    out = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if flip:
        out = cv2.flip(out, 1)
    return out.astype(np.float32) / np.float32(255)


def main():
    mesh_net = Interpreter(model_path=os.path.join(MODELS, "face_landmark.tflite"), num_threads=2)
    iris_net = Interpreter(model_path=os.path.join(MODELS, "iris_landmark.tflite"), num_threads=2)
    mesh_net.allocate_tensors()
    iris_net.allocate_tensors()
    tensors = {}
    for key, name in PHOTOS.items():
        img = load_rgb(name)
        h, w = img.shape[:2]
        dets = detections(img)
        print(f"{key} {w}x{h}: {len(dets)} face(s) found by the short-range detector")
        if len(dets):
            tensors[f"mp/{key}/detections"] = dets.astype(np.float32)
            roi, pts = mesh(img, refine=False)
            roi_r, pts_r = mesh(img, refine=True)
        else:
            dets, roi, pts = full_range(img, refine=False)
            _, roi_r, pts_r = full_range(img, refine=True)
            print(f"  {len(dets)} face(s) found by the full-range detector")
            tensors[f"mp/{key}/detections_full_range"] = dets.astype(np.float32)
        assert np.allclose(roi, roi_r), "both mesh runs crop the same detection"
        tensors[f"mp/{key}/roi"] = roi.astype(np.float32)
        tensors[f"mp/{key}/mesh"] = pts.astype(np.float32)
        tensors[f"mp/{key}/mesh_refined"] = pts_r.astype(np.float32)

        ours = mesh_from_roi(img, roi, mesh_net)
        d = np.hypot(*(ours[:, :2] - pts[:, :2]).T)
        print(f"  ROI {np.round(roi, 3).tolist()}; numpy mesh vs MediaPipe: max {d.max():.4f} px, mean {d.mean():.4f} px")

        rois, contours, irises = [], [], []
        for (a, b), flip in EYES:
            r = iris_roi(pts[a, :2], pts[b, :2])
            outs = run(iris_net, eye_crop(img, r, flip))
            contours.append(project(next(o for o in outs if o.size == 213), r, 64, flip))
            irises.append(project(next(o for o in outs if o.size == 15), r, 64, flip))
            rois.append(r)
        tensors[f"np/{key}/iris_roi"] = np.array(rois, np.float32)
        tensors[f"np/{key}/eye_contour"] = np.array(contours, np.float32)
        tensors[f"np/{key}/iris"] = np.array(irises, np.float32)
        att = [pts_r[468, :2], pts_r[473, :2]]
        for i, side in enumerate(["image-left", "image-right"]):
            print(f"  {side} iris centre {np.round(irises[i][0, :2], 2).tolist()}, "
                  f"attention model's {np.round(att[i], 2).tolist()}")
    fixture_io.save(OUT, tensors, {"mediapipe": mp.__version__})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
