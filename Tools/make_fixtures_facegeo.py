"""dlib references for GuiseFace's face-chip geometry and the crops behind the network fixtures.

Run from the repository root with the LiteRT venv `make bench` creates (it holds dlib-bin and numpy):
    .venv-litert/bin/python Tools/make_fixtures_facegeo.py

Writes Tests/GuiseFaceTests/Fixtures/dlib_chips.safetensors:
  shape5        [5, 2]   dlib's 5-point shape of astronaut.png's face (HOG detector, shape_predictor_5)
  box           [4]      the HOG box (left, top, right, bottom)
  details       [K, 7]   get_face_chip_details(shape, size, padding) for K test shapes:
                         rect left, top, right, bottom, angle, size, padding
  shapes        [K, 5, 2] those shapes: astronaut's, then the same turned, scaled and moved
                         (the last so large that dlib extracts it from a pyramid level)
  chips_u8      [K, 150, 150, 3] dlib.extract_image_chip(astronaut, details) for each
  face_crop     [3]      x0, y0, side of the square crop Tools/make_fixtures_face.py
                         fed face_landmark.tflite, so its raw mesh maps to image pixels
  eye_crop      [3]      the same for iris_landmark.tflite
The tflite_*.safetensors beside it are copies of that script's LiteRT outputs.
"""
import math, os, sys

import dlib
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "GuiseFaceTests", "Fixtures")


def square_crop_origin(w, h, cx, cy, side):
    """The clamp-and-round rule of make_fixtures_face.py's square_crop."""
    side = int(round(min(side, h, w)))
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return x0, y0, side


def main():
    img = dlib.load_rgb_image(os.path.join(ROOT, "Samples", "astronaut.png"))
    h, w = img.shape[:2]
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(os.path.join(ROOT, "Models", "shape_predictor_5_face_landmarks.dat"))
    box = max(detector(img, 1), key=lambda r: r.width() * r.height())
    shape = predictor(img, box)
    pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)

    # Variants: the shape turned about its centroid, scaled and moved, so the chip has a real rotation.
    shapes = [pts]
    c = pts.mean(axis=0)
    # The last is 3.2x larger: dlib then samples a pyramid_down<2> level instead of the image.
    for angle, scale, shift in ((0.35, 1.0, (0, 0)), (-0.6, 1.4, (10, -20)), (0.1, 0.7, (-30, 40)), (0.2, 3.2, (0, 30))):
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        shapes.append((pts - c) @ rot.T * scale + c + np.array(shift))

    details, chips = [], []
    for s in shapes:
        det = dlib.full_object_detection(box, [dlib.point(int(round(x)), int(round(y))) for x, y in s])
        d = dlib.get_face_chip_details(det, 150, 0.25)
        r = d.rect
        details.append([r.left(), r.top(), r.right(), r.bottom(), d.angle, 150, 0.25])
        chips.append(np.asarray(dlib.extract_image_chip(img, d)))
        # Keep the integer points dlib actually used.
        s[:] = [[det.part(i).x, det.part(i).y] for i in range(5)]

    cx, cy = (box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2
    ex, ey = (shape.part(0).x + shape.part(1).x) / 2, (shape.part(0).y + shape.part(1).y) / 2
    ew = abs(shape.part(0).x - shape.part(1).x)
    face_crop = square_crop_origin(w, h, cx, cy, 1.6 * box.width())
    eye_crop = square_crop_origin(w, h, ex, ey, 2.3 * ew)

    fixture_io.save(os.path.join(OUT, "dlib_chips.safetensors"), {
        "shape5": pts, "box": np.array([box.left(), box.top(), box.right(), box.bottom()], dtype=np.float64),
        "details": np.array(details, dtype=np.float64), "shapes": np.stack(shapes),
        "chips_u8": np.stack(chips).astype(np.uint8),
        "face_crop": np.array(face_crop, dtype=np.float64), "eye_crop": np.array(eye_crop, dtype=np.float64),
    })
    print("shape5", pts.tolist(), "box", box, "face_crop", face_crop, "eye_crop", eye_crop)
    for d in details:
        print("details", d)


if __name__ == "__main__":
    main()
