import GuiseFormats
import GuiseImage
import GuiseVision
import GuiseNetworks
import GuiseTensor

/// BlazeFace on the tensor engine: letterbox, network, decoding and weighted NMS.
///
/// The short-range model (128²) is trained on faces filling much of the frame (selfies); the
/// full-range one (192²) on faces down to a few percent of it. `ranges` lists the models to try
/// in turn: the first that finds any face wins. The default, short-range then full-range, keeps
/// short-range's precision on portraits and still finds small faces in wider shots.
public final class BlazeFaceDetector: FaceDetector {
    public enum Range: String, CaseIterable, Sendable {
        case short = "short-range"
        case full = "full-range"

        public var fileName: String {
            switch self {
            case .short: return "face_detection_short_range.tflite"
            case .full: return "face_detection_full_range_sparse.tflite"
            }
        }

        public var model: BlazeFaceModel {
            switch self {
            case .short: return .shortRange
            case .full: return .fullRange
            }
        }
    }

    struct Stage {
        let range: Range
        let network: TFLiteNetwork
        let model: BlazeFaceModel
    }

    let stages: [Stage]

    /// `networks` pairs each range with its loaded `.tflite` file.
    public init(networks: [(Range, TFLiteNetwork)]) throws {
        guard !networks.isEmpty else { throw FaceError("BlazeFace needs at least one network") }
        stages = try networks.map { range, net in
            let n = range.model.inputSize
            guard net.inputShapes.count == 1, net.inputShapes[0] == [1, n, n, 3], net.outputShapes.count == 2 else {
                throw FaceError("\(net.path): not a BlazeFace \(range.rawValue) model (inputs \(net.inputShapes), outputs \(net.outputShapes))", category: .model)
            }
            return Stage(range: range, network: net, model: range.model)
        }
    }

    /// The networks for `ranges` from the model store (`ModelStore.locate()` when nil).
    public convenience init(ranges: [Range] = [.short, .full], store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(networks: ranges.map { ($0, try TFLiteNetwork(path: store.installedPath($0.fileName))) })
    }

    /// Whether every file `ranges` needs is installed.
    public static func isInstalled(ranges: [Range] = [.short, .full], store: ModelStore) -> Bool {
        ranges.allSatisfy { (try? store.installedPath($0.fileName)) != nil }
    }

    public func detect(_ image: Image) throws -> [Face] {
        for stage in stages {
            let faces = try detect(image, stage)
            if !faces.isEmpty { return faces }
        }
        return []
    }

    func detect(_ image: Image, _ stage: Stage) throws -> [Face] {
        let letterbox = Letterbox(imageWidth: image.width, imageHeight: image.height, size: stage.model.inputSize)
        let input = try letterbox.input(image)
        let outputs = try Autograd.noGrad { try stage.network([input]) }
        // Outputs are told apart by their last axis: 16 box/keypoint coordinates or 1 logit per anchor.
        guard let regressors = outputs.first(where: { $0.shape.last == 16 }),
              let scores = outputs.first(where: { $0.shape.last == 1 }) else {
            throw FaceError("\(stage.network.path): outputs \(outputs.map(\.shape)) are not BlazeFace's [1, N, 16] and [1, N, 1]", category: .model)
        }
        return try stage.model.faces(regressors: regressors.values, classificators: scores.values, letterbox: letterbox)
    }
}
