import ArgumentParser
import Foundation
import GuiseFace
import GuiseFormats
import GuiseImage
import GuisePipelines
import GuiseVision

/// Commands that detect in several photos say once that BlazeFace fell back to Haar.
private var haarFallbackNoted = false

extension DetectorChoice: ExpressibleByArgument {}
extension FaceOrder: ExpressibleByArgument {}

/// Options shared by the commands that find faces.
struct FaceOptions: ParsableArguments {
    @Option(help: """
        Face detector: BlazeFace (short-range, then full-range if it finds nothing), BlazeFace \
        full-range only, or OpenCV's Haar cascades (frontalface_default or alt2). \
        BlazeFace falls back to Haar when its model files are not installed.
        """)
    var detector: DetectorChoice = .blazeface

    @Option(help: "Face order: largest box first, highest score first, or left to right.")
    var order: FaceOrder = .largest

    func detect(in image: Image) throws -> [Face] {
        try detectNamed(in: image).faces
    }

    /// The faces and the name of the detector that actually ran.
    func detectNamed(in image: Image) throws -> (faces: [Face], detector: String) {
        let (d, name) = try detector.make(note: { message in
            guard !haarFallbackNoted else { return }
            haarFallbackNoted = true
            FileHandle.standardError.write(Data("guise: note: \(message)\n".utf8))
        })
        return (try d.detect(image, order: order), name)
    }
}

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find faces: boxes, scores and keypoints.",
        discussion: "Prints one line per face, or a JSON report with --json. Finding no face is not an error."
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Flag(help: "Print a JSON report.")
    var json = false

    @Option(name: .customLong("annotate"), help: "Also write a copy with the faces drawn on it.")
    var annotatePath: String?

    @OptionGroup var faces: FaceOptions

    func run() throws {
        if let annotatePath { try OutputOptions.check(annotatePath, kind: .image, inputs: [image]) }
        let picture = try ImageIO.read(image)
        let (found, used) = try faces.detectNamed(in: picture)
        if let annotatePath { try ImageIO.write(annotated(picture, found), to: annotatePath) }
        if json {
            let report = DetectReport(image: image, width: picture.width, height: picture.height,
                                      detector: used, order: faces.order.rawValue,
                                      faces: found.map(FaceReport.init))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            if found.isEmpty { print("no faces found in \(image)") }
            for (i, f) in found.enumerated() {
                let b = f.box
                let points = f.keypoints.sorted { $0.key < $1.key }.map { " \($0.key) (\(fmt($0.value.x)), \(fmt($0.value.y)))" }
                print("face \(i): x \(fmt(b.x)) y \(fmt(b.y)) width \(fmt(b.width)) height \(fmt(b.height)) score \(fmt(f.score))" + points.joined())
            }
        }
    }

    /// Boxes in green (face 0 thicker), keypoints in red.
    func annotated(_ picture: Image, _ found: [Face]) -> Image {
        var out = picture
        let thickness = max(2, min(picture.width, picture.height) / 200)
        for (i, f) in found.enumerated() {
            out.strokeRectangle(x: Int(f.box.x.rounded()), y: Int(f.box.y.rounded()),
                                width: Int(f.box.width.rounded()), height: Int(f.box.height.rounded()),
                                colour: (0, 1, 0), thickness: i == 0 ? 2 * thickness : thickness)
            for p in f.keypoints.values { out.fillDisc(centre: p, radius: Double(thickness) * 1.5, colour: (1, 0, 0)) }
        }
        return out
    }
}

func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

struct DetectReport: Encodable {
    var image: String
    var width: Int
    var height: Int
    var detector: String
    var order: String
    var faces: [FaceReport]
}

struct FaceReport: Encodable {
    var box: Box
    var score: Double
    var keypoints: [String: Point]

    init(_ face: Face) {
        box = face.box
        score = face.score
        keypoints = face.keypoints
    }
}
