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
            """)

    @Argument(help: "The checkpoint.")
    var file: String

    @Option(help: "A config JSON with guided-diffusion create_model argument names.")
    var config: String?

    @Option(help: "A safetensors file with the inputs.")
    var inputs: String

    @Option(help: "Where to write the outputs (safetensors).")
    var out: String

    @Option(name: .customLong("grad-wrt"), help: "Also write the gradient for this input (x, or a TFLite input name).")
    var gradWrt: String?

    @Option(name: .customLong("grad-seed"), help: "A safetensors file holding `seed`, shaped like the output.")
    var gradSeed: String?

    func validate() throws {
        if (gradWrt == nil) != (gradSeed == nil) {
            throw ValidationError("--grad-wrt and --grad-seed go together")
        }
        let embedded = file.hasSuffix(".tflite")
        if let gradWrt, gradWrt != "x", !embedded {
            throw ValidationError("--grad-wrt supports x for ADM and dlib models, not \(gradWrt)")
        }
        if config != nil && (embedded || file.hasSuffix(".dat")) {
            throw ValidationError("--config is for ADM checkpoints")
        }
    }

    func run() throws {
        if file.hasSuffix(".tflite") { return try runTFLite() }
        if file.hasSuffix(".dat") { return try runDlib() }
        let model = try DiffusionModel.loadADM(file, config: config, log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        let file = try SafeTensorsFile(path: inputs)
        func input(_ name: String) throws -> Tensor? {
            guard file[name] != nil else { return nil }
            return try file.tensor(name)
        }
        guard let x = try input("x"), let t = try input("t") else {
            throw FormatError("\(inputs): an ADM needs inputs x [N,C,H,W] and t [N]; found \(file.names.sorted().joined(separator: ", "))")
        }
        let y = try input("y"), id = try input("id")
        var outputs: [String: Tensor] = [:]
        if gradWrt != nil, let gradSeed {
            let seedFile = try SafeTensorsFile(path: gradSeed)
            guard seedFile["seed"] != nil else { throw FormatError("\(gradSeed): no tensor named seed") }
            let seed = try seedFile.tensor("seed")
            let (value, grad) = try vectorJacobianProduct(at: x, seed: seed) { xl -> Tensor in
                let o = try model(xl, timesteps: t, y: y, id: id)
                guard o.shape == seed.shape else { throw FormatError("seed has shape \(seed.shape), the output \(o.shape)") }
                return o
            }
            outputs["out"] = value
            outputs["grad_x"] = grad
        } else {
            outputs["out"] = try Autograd.noGrad { try model(x, timesteps: t, y: y, id: id) }
        }
        try SafeTensorsWriter.write(tensors: outputs, to: out)
    }
}
