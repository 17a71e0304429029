import ArgumentParser
import Foundation
import GuiseFace
import GuiseImage
import GuisePipelines
import GuiseVision

struct Align: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a face as an aligned square crop.",
        discussion: """
        --size 256 gives an FFHQ-style crop (face with hair and chin, for diffusion models); \
        --size 112 an ArcFace-style crop (tight, for identity networks). The face is aligned \
        from its keypoints (both eyes at least) when the detector finds them, else from its box. \
        --out takes .png, .jpg, .webp, .bmp or .tif.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @OptionGroup var output: OutputOptions

    @Option(help: "Crop size: 256 (FFHQ-style) or 112 (ArcFace-style).")
    var size = 256

    @Option(help: "Which face, counting from 0 in --order.")
    var face = 0

    @OptionGroup var faces: FaceOptions

    func validate() throws {
        guard FaceTemplate.forSize(size) != nil else { throw ValidationError("--size must be 256 or 112, not \(size)") }
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
    }

    struct Report: Encodable {
        var image: String
        var out: String
        var face: Int
        var faces: Int
        var detector: String
        var size: Int
        var box: Box
        var seconds: Double
    }

    func run() throws {
        try output.check(kind: .image, inputs: [image])
        let start = Date()
        let picture = try ImageIO.read(image)
        let (found, detector) = try faces.detectNamed(in: picture)
        let chosen = try FaceSelection.pick(found, index: face, label: image)
        let aligned = try FaceAligner.align(picture, face: chosen, template: FaceTemplate.forSize(size)!)
        try ImageIO.write(aligned.crop, to: output.out)
        try output.report(Report(image: image, out: output.out, face: face, faces: found.count, detector: detector,
                                 size: size, box: chosen.box, seconds: seconds(since: start)),
                          text: "\(output.out): face \(face) of \(found.count), \(size)x\(size)")
    }
}
