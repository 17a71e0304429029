import ArgumentParser
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks
import GuisePipelines

/// `guise model run`: one network evaluation on tensors from a safetensors file, optionally with a
/// vector–Jacobian product, so any network can be checked against a reference outside Swift.
struct ModelRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a network on tensors from a safetensors file.",
        discussion: """
            ADM checkpoints (guided-diffusion / DiffFace / RePaint state_dicts, .safetensors or .pt): the \
            inputs are x [N,C,H,W], t [N] (the timesteps the network receives), optional y [N] (class \
            labels) and optional id [N,id_dim] (DiffFace identity); the output is `out`. Without --config \
            the architecture is inferred from the weights, and what could not be inferred is printed. \
            With --grad-wrt x, also writes grad_x = d sum(out * seed)/dx for the tensor `seed` in --grad-seed.
            TFLite models (.tflite): inputs and outputs are named by the model's tensor names, NHWC as \
            stored (`guise model info` lists them); --grad-wrt takes an input name and writes grad_NAME; \
            the seed file holds one tensor per output to seed, named after it (`seed` stands for the \
            first output), and the gradient is of the sum over the seeded outputs.
            dlib networks (.dat, the face recognition ResNet): input x [N,3,150,150] of 0-255 RGB, \
            output out [N,128]; --grad-wrt x as for the ADM.
            DiffFace's face parser (BiSeNet state_dict, FaceParser.pth): x [N,3,H,W] (512×512 in DiffFace), \
            out [N,19,H,W], the main head's logits. DiffFace's gaze network (EyeNet, GazeEstimator.pt): \
            x [N,96,160] grey, out [N,2] (pitch, yaw); --batch-statistics runs its batch norms on the \
            batch's own statistics, as DiffFace does. --grad-wrt x as for the ADM.
            ArcFace networks (DiffFace's Arcface.tar with its pickled IR-SE model, or an IR-SE or \
            insightface iresnet state dict): input x [N,3,112,112] normalised as the network expects, \
            output out [N,512], the embedding before L2 normalisation; --grad-wrt x as for the ADM. \
            --out is a .safetensors file.
            """)

    @Argument(help: "The checkpoint.")
    var file: String

    @Option(help: "A config JSON with guided-diffusion create_model argument names.")
    var config: String?

    @Option(help: "A safetensors file with the inputs.")
    var inputs: String

    @OptionGroup var output: OutputOptions

    @Option(name: .customLong("grad-wrt"), help: "Also write the gradient for this input (x, or a TFLite input name).")
    var gradWrt: String?

    @Option(name: .customLong("grad-seed"), help: "A safetensors file holding `seed`, shaped like the output.")
    var gradSeed: String?

    @Flag(name: .customLong("batch-statistics"), help: "EyeNet: batch norms use each batch's own statistics (the module in training mode).")
    var batchStatistics = false

    func validate() throws {
        if (gradWrt == nil) != (gradSeed == nil) {
            throw ValidationError("--grad-wrt and --grad-seed go together")
        }
        let embedded = file.hasSuffix(".tflite")
        if let gradWrt, gradWrt != "x", !embedded {
            throw ValidationError("--grad-wrt supports x for checkpoints, dlib and ArcFace models, not \(gradWrt)")
        }
        if config != nil && (embedded || file.hasSuffix(".dat")) {
            throw ValidationError("--config is for ADM checkpoints")
        }
        if batchStatistics && (embedded || file.hasSuffix(".dat")) {
            throw ValidationError("--batch-statistics is for EyeNet checkpoints")
        }
    }

    var out: String { output.out }

    struct Report: Encodable {
        struct Written: Encodable {
            var name: String
            var shape: [Int]
        }
        var model: String
        var kind: String
        var inputs: String
        var out: String
        var tensors: [Written]
        var gradientOf: String?
        var seconds: Double
    }

    func run() throws {
        try output.check(kind: .safetensors, inputs: [file, config, inputs, gradSeed])
        let start = Date()
        let kind: String, outputs: [String: Tensor]
        if file.hasSuffix(".tflite") {
            (kind, outputs) = ("tflite", try runTFLite())
        } else if file.hasSuffix(".dat") {
            (kind, outputs) = ("dlib", try runDlib())
        } else if RecognisedNetwork.isArcFace(file) {
            (kind, outputs) = ("arcface", try runArcFace())
        } else if let expert = try runFaceExpert() {
            (kind, outputs) = expert
        } else {
            (kind, outputs) = ("adm", try runADM())
        }
        try SafeTensorsWriter.write(tensors: outputs, to: out)
        let written = outputs.keys.sorted().map { Report.Written(name: $0, shape: outputs[$0]!.shape) }
        let report = Report(model: file, kind: kind, inputs: inputs, out: out, tensors: written, gradientOf: gradWrt,
                            seconds: seconds(since: start))
        try output.report(report, text: "wrote \(out): " + written.map { "\($0.name) \($0.shape)" }.joined(separator: ", "))
    }

    /// A safetensors file the user gave (--inputs, --grad-seed): failing to read it is an input error.
    func readInput(_ path: String) throws -> SafeTensorsFile {
        do {
            return try SafeTensorsFile(path: path)
        } catch let e as FormatError {
            throw FormatError(e.message, category: .input)
        }
    }

    func runADM() throws -> [String: Tensor] {
        let model = try DiffusionModel.loadADM(file, config: config, log: output.note)
        let file = try readInput(inputs)
        func input(_ name: String) throws -> Tensor? {
            guard file[name] != nil else { return nil }
            return try file.tensor(name)
        }
        guard let x = try input("x"), let t = try input("t") else {
            throw FormatError("\(inputs): an ADM needs inputs x [N,C,H,W] and t [N]; found \(file.names.sorted().joined(separator: ", "))",
                              category: .input)
        }
        let y = try input("y"), id = try input("id")
        var outputs: [String: Tensor] = [:]
        if gradWrt != nil, let gradSeed {
            let seedFile = try readInput(gradSeed)
            guard seedFile["seed"] != nil else { throw FormatError("\(gradSeed): no tensor named seed", category: .input) }
            let seed = try seedFile.tensor("seed")
            let (value, grad) = try vectorJacobianProduct(at: x, seed: seed) { xl -> Tensor in
                let o = try model(xl, timesteps: t, y: y, id: id)
                guard o.shape == seed.shape else { throw FormatError("seed has shape \(seed.shape), the output \(o.shape)", category: .input) }
                return o
            }
            outputs["out"] = value
            outputs["grad_x"] = grad
        } else {
            outputs["out"] = try Autograd.noGrad { try model(x, timesteps: t, y: y, id: id) }
        }
        return outputs
    }
}
