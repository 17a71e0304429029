import ArgumentParser
import Foundation
import GuiseFace
import GuiseImage

struct Identity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the faces in two photos with dlib's face recognition network.",
        discussion: """
        Face 0 of each photo (largest first) is cut as dlib's 150x150 chip from 5 points of its \
        face mesh and encoded as a 128-d descriptor. A distance below 0.6 means the same person.
        """
    )

    @Argument(help: "The first photo.")
    var a: String

    @Argument(help: "The second photo.")
    var b: String

    @Flag(help: "Print a JSON report.")
    var json = false

    @OptionGroup var faces: FaceOptions

    struct Report: Encodable {
        var a: String
        var b: String
        var distance: Double
        var threshold: Double
        var samePerson: Bool
    }

    func run() throws {
        let identity = try FaceIdentity(), analyzer = try FaceAnalyzer()
        func describe(_ path: String) throws -> [Float] {
            let picture = try ImageIO.read(path)
            let lm = try meshLandmarks(picture, face: try pickFace(picture, path: path, index: 0, options: faces), analyzer: analyzer)
            return try identity.descriptor(picture, dlib5: lm.dlib5())
        }
        let d = FaceIdentity.distance(try describe(a), try describe(b))
        let same = d < FaceIdentity.samePersonThreshold
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let report = Report(a: a, b: b, distance: d, threshold: FaceIdentity.samePersonThreshold, samePerson: same)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("distance \(String(format: "%.4f", d)): \(same ? "same person" : "different people") (threshold \(FaceIdentity.samePersonThreshold))")
        }
    }
}
