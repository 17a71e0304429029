import ArgumentParser
import GuiseFace
import GuiseImage

struct Align: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a face as an aligned square crop.",
        discussion: """
        --size 256 gives an FFHQ-style crop (face with hair and chin, for diffusion models); \
        --size 112 an ArcFace-style crop (tight, for identity networks). The face is aligned \
        from its keypoints (both eyes at least) when the detector finds them, else from its box.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Option(name: .shortAndLong, help: "Where to write the crop (.png, .jpg, .webp, .bmp, .tif).")
    var out: String

    @Option(help: "Crop size: 256 (FFHQ-style) or 112 (ArcFace-style).")
    var size = 256

    @Option(help: "Which face, counting from 0 in --order.")
    var face = 0

    @OptionGroup var faces: FaceOptions

    func validate() throws {
        guard FaceTemplate.forSize(size) != nil else { throw ValidationError("--size must be 256 or 112, not \(size)") }
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
    }

    func run() throws {
        try checkOutput(out)
        let picture = try ImageIO.read(image)
        let found = try faces.detect(in: picture)
        guard !found.isEmpty else { throw FaceError("no face found in \(image)") }
        guard face < found.count else {
            throw FaceError("face \(face) is out of range: \(image) has \(found.count) face\(found.count == 1 ? "" : "s") (0...\(found.count - 1))")
        }
        let aligned = try FaceAligner.align(picture, face: found[face], template: FaceTemplate.forSize(size)!)
        try ImageIO.write(aligned.crop, to: out)
        print("\(out): face \(face) of \(found.count), \(size)x\(size)")
    }
}
