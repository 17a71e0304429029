import GuiseFormats
import GuiseImage
import GuiseNetworks
import GuiseTensor
import GuiseVision

/// MediaPipe's selfie segmentation (selfie_segmentation.tflite): a soft person mask for the
/// whole photo.
public final class PersonSegmenter {
    public static let file = "selfie_segmentation.tflite"

    let net: TFLiteNetwork
    let inputWidth: Int
    let inputHeight: Int

    public init(network: TFLiteNetwork) throws {
        guard network.inputShapes.count == 1, network.inputShapes[0].count == 4, network.inputShapes[0][3] == 3 else {
            throw BodyError("\(network.path): not an image segmentation model (inputs \(network.inputShapes))", category: .model)
        }
        net = network
        inputHeight = network.inputShapes[0][1]
        inputWidth = network.inputShapes[0][2]
    }

    public convenience init(store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(network: TFLiteNetwork(path: store.installedPath(Self.file)))
    }

    /// The person probability (0…1) at the photo's size. The network sees the whole photo
    /// stretched to its square input, as MediaPipe's selfie pipeline does (without keeping the
    /// aspect ratio), and its map is stretched back bilinearly.
    public func mask(_ image: Image) throws -> Mask {
        let (w, h) = (inputWidth, inputHeight)
        let x = NHWC.tensor(from: try image.resized(width: w, height: h, interpolation: .linear), range: 0...1)
        let y = try Autograd.noGrad { try net([x]) }[0]
        guard y.count == w * h else { throw BodyError("\(net.path): output \(y.shape) is not a \(w)x\(h) mask", category: .model) }
        return try Mask(width: w, height: h, values: y.values).resized(width: image.width, height: image.height)
    }
}
