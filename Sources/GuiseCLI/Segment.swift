import ArgumentParser
import Foundation
import GuiseFace
import GuiseFiles
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
        regions are polygons of the face mesh at the photo's resolution, hard-edged unless --soft.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Option(help: "What to mask: \(SegmentTarget.allCases.map(\.rawValue).joined(separator: ", ")).")
    var what: SegmentTarget

    @Option(name: .shortAndLong, help: "Where to write the mask (greyscale .png recommended).")
    var out: String

    @Flag(help: "Feather face-region edges (a blur of about 2% of the face's width).")
    var soft = false

    @Option(help: "Which face, counting from 0 in --order.")
    var face = 0

    @OptionGroup var faces: FaceOptions

    func validate() throws {
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
    }

    func run() throws {
        try checkOutput(out)
        let picture = try ImageIO.read(image)
        let mask: Mask
        if what == .person {
            mask = try personMask(picture)
        } else {
            let found = try pickFace(picture, path: image, index: face, options: faces)
            let lm = try meshLandmarks(picture, face: found)
            let feather = soft ? max(1.5, found.box.width * 0.02) : 0
            mask = try FaceMasks.mask(FaceRegion(rawValue: what.rawValue)!, mesh: lm.mesh,
                                      width: picture.width, height: picture.height, feather: feather)
        }
        let grey = mask.values.map { min(max($0, 0), 1) }
        try ImageIO.write(Image(grey: grey, width: mask.width, height: mask.height), to: out)
        let covered = grey.reduce(0, +) / Float(grey.count)
        print("\(out): \(what.rawValue) mask \(mask.width)x\(mask.height), \(String(format: "%.1f", covered * 100))% covered")
    }

    /// selfie_segmentation.tflite sees the whole photo stretched to its square input (as
    /// MediaPipe's selfie pipeline, without keeping the aspect ratio), values 0…1; its
    /// probability map is stretched back.
    func personMask(_ picture: Image) throws -> Mask {
        let net = try TFLiteNetwork(path: ModelStore.locate().installedPath("selfie_segmentation.tflite"))
        guard net.inputShapes.count == 1, net.inputShapes[0].count == 4, net.inputShapes[0][3] == 3 else {
            throw FaceError("\(net.path): not an image segmentation model (inputs \(net.inputShapes))")
        }
        let h = net.inputShapes[0][1], w = net.inputShapes[0][2]
        let x = NHWC.tensor(from: try picture.resized(width: w, height: h, interpolation: .linear), range: 0...1)
        let y = try Autograd.noGrad { try net([x]) }[0]
        guard y.count == w * h else { throw FaceError("\(net.path): output \(y.shape) is not a \(w)x\(h) mask") }
        return try Mask(width: w, height: h, values: y.values).resized(width: picture.width, height: picture.height)
    }
}
