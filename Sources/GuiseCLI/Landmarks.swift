import ArgumentParser
import Foundation
import GuiseFace
import GuiseImage
import GuisePipelines
import GuiseVision

/// Face `index` of the photo, in the detector's order; no face (or too few) is an error.
func pickFace(_ picture: Image, path: String, index: Int, options: FaceOptions) throws -> Face {
    try FaceSelection.pick(try options.detect(in: picture), index: index, label: path)
}

func meshLandmarks(_ picture: Image, face: Face, analyzer: FaceAnalyzer? = nil) throws -> FaceLandmarks {
    try FaceSelection.landmarks(picture, face: face, analyzer: analyzer ?? FaceAnalyzer())
}

struct Landmarks: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Face mesh (468 points), irises, gaze, and the 5- and 68-point sets of one face.",
        discussion: """
        Gaze is where each iris centre sits in its eye: x along the corner-to-corner axis in eye \
        widths (positive towards the image's right), y across it in eye heights (positive down). \
        The 68 points approximate dlib's iBUG layout from the mesh.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Option(help: "Which face, counting from 0 in --order.")
    var face = 0

    @Flag(help: "Print a JSON report with every point.")
    var json = false

    @Option(name: .customLong("annotate"), help: "Also write a copy with the points drawn on it.")
    var annotatePath: String?

    @OptionGroup var faces: FaceOptions

    func validate() throws {
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
    }

    func run() throws {
        if let annotatePath { try OutputOptions.check(annotatePath, kind: .image, inputs: [image]) }
        let picture = try ImageIO.read(image)
        let found = try pickFace(picture, path: image, index: face, options: faces)
        let lm = try meshLandmarks(picture, face: found)
        let report = try LandmarksReport(image: image, face: face, detection: FaceReport(found), landmarks: lm)
        if let annotatePath { try ImageIO.write(annotated(picture, found, lm), to: annotatePath) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("face \(face): presence \(String(format: "%.3f", lm.presence)), \(lm.mesh.count) mesh points")
            print("irises: left (\(fmt(lm.leftEye.irisCentre.x)), \(fmt(lm.leftEye.irisCentre.y))) right (\(fmt(lm.rightEye.irisCentre.x)), \(fmt(lm.rightEye.irisCentre.y)))")
            print("gaze: x \(String(format: "%.3f", report.gaze.x)) y \(String(format: "%.3f", report.gaze.y))")
            for (name, p) in report.fivePoints.sorted(by: { $0.key < $1.key }) { print("  \(name) (\(fmt(p.x)), \(fmt(p.y)))") }
        }
    }

    /// Mesh in green, eye contours in yellow, irises in cyan, the 68 points in red, and a
    /// magenta stroke from each iris centre along the gaze (one eye width per unit).
    func annotated(_ picture: Image, _ found: Face, _ lm: FaceLandmarks) throws -> Image {
        var out = picture
        let r = max(1.0, found.box.width / 150)
        for p in lm.mesh { out.fillDisc(centre: p.xy, radius: r * 0.8, colour: (0, 1, 0)) }
        for p in lm.leftEye.contour + lm.rightEye.contour { out.fillDisc(centre: p.xy, radius: r * 0.6, colour: (1, 1, 0)) }
        for p in try lm.ibug68() { out.fillDisc(centre: p, radius: r * 1.2, colour: (1, 0, 0)) }
        for p in lm.leftEye.iris + lm.rightEye.iris { out.fillDisc(centre: p.xy, radius: r * 0.8, colour: (0, 1, 1)) }
        let gaze = try lm.gazePerEye()
        for (eye, g) in zip([lm.leftEye, lm.rightEye], gaze) {
            let c = eye.irisCentre
            let xs = eye.contour.map(\.x)
            let width = (xs.max() ?? c.x) - (xs.min() ?? c.x)
            for k in 0...20 {
                let t = Double(k) / 20 * width
                out.fillDisc(centre: Point(c.x + g.x * t * 2, c.y + g.y * t * 2), radius: r * 0.7, colour: (1, 0, 1))
            }
        }
        return out
    }
}

struct LandmarksReport: Encodable {
    var image: String
    var face: Int
    var detection: FaceReport
    var presence: Double
    var mesh: [Point3]
    var irisLeft: [Point3]
    var irisRight: [Point3]
    var eyeContourLeft: [Point3]
    var eyeContourRight: [Point3]
    /// The mean of both eyes' gaze features, then each eye's.
    var gaze: Point
    var gazeLeft: Point
    var gazeRight: Point
    var fivePoints: [String: Point]
    var points68: [Point]

    init(image: String, face: Int, detection: FaceReport, landmarks lm: FaceLandmarks) throws {
        self.image = image
        self.face = face
        self.detection = detection
        presence = lm.presence
        mesh = lm.mesh
        irisLeft = lm.leftEye.iris
        irisRight = lm.rightEye.iris
        eyeContourLeft = lm.leftEye.contour
        eyeContourRight = lm.rightEye.contour
        gaze = try lm.gaze()
        let each = try lm.gazePerEye()
        gazeLeft = each[0]
        gazeRight = each[1]
        fivePoints = try lm.fivePoints()
        points68 = try lm.ibug68()
    }
}
