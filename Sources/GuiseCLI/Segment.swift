import ArgumentParser
import Foundation
import GuiseBody
import GuiseFace
import GuiseFormats
import GuiseImage
import GuiseNetworks
import GuiseTensor

enum SegmentTarget: String, ExpressibleByArgument, CaseIterable {
    case person, face, skin, eyes, brows, nose, lips, mouth
}

struct Segment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a mask: the person (selfie segmentation) or a face region from the face mesh.",
        discussion: """
        person: MediaPipe's selfie segmentation on the whole photo, a soft 0-1 mask. The face \
        regions are polygons of the face mesh at the photo's resolution, hard-edged unless --soft. \
        --out takes any image type; a greyscale .png keeps the mask exactly.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Option(help: "What to mask: \(SegmentTarget.allCases.map(\.rawValue).joined(separator: ", ")).")
    var what: SegmentTarget

    @OptionGroup var output: OutputOptions

    @Flag(help: "Feather face-region edges (a blur of about 2% of the face's width).")
    var soft = false

    @Option(help: "Which face, counting from 0 in --order.")
    var face = 0

    @OptionGroup var faces: FaceOptions

    func validate() throws {
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
    }

    struct Report: Encodable {
        var image: String
        var out: String
        var what: String
        var face: Int?
        var width: Int
        var height: Int
        /// The mean of the mask, 0–1.
        var covered: Double
        var seconds: Double
    }

    func run() throws {
        try output.check(kind: .image, inputs: [image])
        let start = Date()
        let picture = try ImageIO.read(image)
        let mask: Mask
        if what == .person {
            mask = try PersonSegmenter().mask(picture)
        } else {
            let found = try pickFace(picture, path: image, index: face, options: faces)
            let lm = try meshLandmarks(picture, face: found)
            let feather = soft ? max(1.5, found.box.width * 0.02) : 0
            mask = try FaceMasks.mask(FaceRegion(rawValue: what.rawValue)!, mesh: lm.mesh,
                                      width: picture.width, height: picture.height, feather: feather)
        }
        let grey = mask.values.map { min(max($0, 0), 1) }
        try ImageIO.write(Image(grey: grey, width: mask.width, height: mask.height), to: output.out)
        let covered = Double(grey.reduce(0, +)) / Double(grey.count)
        try output.report(Report(image: image, out: output.out, what: what.rawValue, face: what == .person ? nil : face,
                                 width: mask.width, height: mask.height, covered: covered, seconds: seconds(since: start)),
                          text: "\(output.out): \(what.rawValue) mask \(mask.width)x\(mask.height), \(String(format: "%.1f", covered * 100))% covered")
    }
}
