import ArgumentParser
import GuisePipelines

/// `guise swap`'s options for DiffFace's own checkpoints: a folder laid out as DiffFace's
/// `checkpoints/`, and each file on its own (which overrides the folder's).
struct DiffFaceOptions: ParsableArguments {
    @Option(name: .customLong("diffface"), help: "A folder of DiffFace's checkpoints (Model.pt, Arcface.tar, FaceParser.pth, GazeEstimator.pt): with Model.pt, swap with DiffFace's method; without it, its experts guide the embedded swap.")
    var directory: String?

    @Option(name: .customLong("diffface-model"), help: "DiffFace's ID-conditioned UNet (Model.pt), alone or over the folder's.")
    var model: String?

    @Option(help: "ArcFace identity network (DiffFace's Arcface.tar, a state_dict or insightface's backbone.pth): the identity expert, with or without DiffFace's UNet.")
    var arcface: String?

    @Option(name: .customLong("face-parser"), help: "BiSeNet face parser (DiffFace's FaceParser.pth): the parsing expert (and DiffFace's mask with its UNet).")
    var parser: String?

    @Option(name: .customLong("gaze-estimator"), help: "EyeNet gaze network (DiffFace's GazeEstimator.pt): the gaze expert.")
    var gaze: String?

    var isEmpty: Bool { directory == nil && model == nil && arcface == nil && parser == nil && gaze == nil }

    /// The files given, nil when none are.
    func files() throws -> DiffFaceFiles? {
        if isEmpty { return nil }
        let given = DiffFaceFiles(model: model, arcface: arcface, parser: parser, gaze: gaze)
        guard let directory else { return given }
        return try DiffFaceFiles(directory: directory).overriding(with: given)
    }
}
