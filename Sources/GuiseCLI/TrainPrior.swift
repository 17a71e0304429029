import ArgumentParser
import Foundation
import GuiseTensor
import GuiseFormats
import GuisePrior

/// `guise train-prior`: trains Guise's own small ADM prior on a folder of photographs.
struct TrainPrior: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-prior",
        abstract: "Train the small ADM diffusion prior on a folder of photographs.",
        discussion: """
            ε-prediction with a cosine schedule (1000 steps); random crops at several scales (--multi-scale: \
            log-uniform from whole-photo to 1:1) with flips and quarter turns (mirror only for --upright kinds), \
            optional colour jitter, photos weighted by their manifest kind; half the timesteps from the σ 5–80 band on 8-bit-rounded noisy inputs; Adam with \
            warm-up and cosine decay; an EMA of the weights. A checkpoint (weights, EMA, Adam state, step, RNG \
            state) is written to --checkpoint every --checkpoint-every steps and at the end; --resume continues \
            one from its step. --out (.safetensors) receives the EMA weights as fp16.
            """)

    @Option(help: "Folder of training photos (.png/.jpg).")
    var data: String

    @OptionGroup var output: OutputOptions

    @Option(help: "Total optimisation steps.")
    var steps = 1000

    @Option(name: .customLong("stop-at"), help: "Stop after this step (checkpoint and export there) without shortening the learning-rate schedule of --steps; a later --resume continues it.")
    var stopAt: Int?

    @Option(help: "A checkpoint to continue from (its options are used; --steps may extend the run).")
    var resume: String?

    @Option(help: "Checkpoint path (default: OUT with .ckpt.safetensors).")
    var checkpoint: String?

    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints.")
    var checkpointEvery = 50

    @Option(help: "Random seed (initial weights, crops, noise).")
    var seed: UInt64 = 0

    @Option(help: "Model: small (the first prior), medium (wider, attention at the two lowest levels), tiny or tiny-attn (tests).")
    var config = "small"

    @Option(help: "Batch size.")
    var batch = 8

    @Option(help: "Crop size in pixels.")
    var crop = 64

    @Option(help: "Peak learning rate.")
    var lr = 4e-4

    @Option(help: "Warm-up steps.")
    var warmup = 50

    @Option(name: .customLong("ema-decay"), help: "EMA decay per step.")
    var emaDecay = 0.995

    @Flag(name: .customLong("multi-scale"), help: "Crops at log-uniform scales from the whole photo down to 1:1.")
    var multiScale = false

    @Option(help: "Colour jitter: largest relative change of brightness, contrast and saturation (e.g. 0.05).")
    var jitter = 0.0

    @Option(help: "Data manifest (JSON) whose per-file `kind` --kind-weights and --upright read; unlisted files are scene. On --resume it replaces the checkpoint's path.")
    var manifest: String?

    @Option(name: .customLong("kind-weights"), help: "Sampling weight per kind, e.g. face=4,person=2,scene=1 (unlisted kinds weigh 1).")
    var kindWeights: String?

    @Option(help: "Kinds that get only the left–right mirror, never vertical flips or quarter turns, e.g. face,person.")
    var upright: String?

    @Option(help: "Append step, loss, learning rate and elapsed seconds to this TSV.")
    var log: String?

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        guard batch > 0 && batch <= 256 else { throw ValidationError("--batch must be between 1 and 256") }
        if let stopAt { guard stopAt > 0 && stopAt <= steps else { throw ValidationError("--stop-at must be between 1 and --steps") } }
        guard checkpointEvery > 0 else { throw ValidationError("--checkpoint-every must be positive") }
        guard lr > 0, emaDecay > 0 && emaDecay < 1 else { throw ValidationError("--lr must be positive and --ema-decay in (0, 1)") }
        guard jitter >= 0 && jitter < 1 else { throw ValidationError("--jitter must be in [0, 1)") }
        if let kindWeights { _ = try PriorSampling.parseKindWeights(kindWeights) }
    }

    struct Report: Encodable {
        var out: String
        var checkpoint: String
        var config: String
        var parameters: Int
        var photos: Int
        var resumedAt: Int?
        var steps: Int
        var batch: Int
        var crop: Int
        /// The last step's loss; nil when this run took no step (a resume at its end).
        var finalLoss: Double?
        var seconds: Double
    }

    /// The checkpoint path: --checkpoint, else OUT with .ckpt.safetensors.
    var checkpointPath: String {
        checkpoint ?? ((output.out as NSString).deletingPathExtension + ".ckpt.safetensors")
    }

    func run() throws {
        // Every file this run writes is checked before the first step, not found unwritable at the end.
        try output.check(kind: .safetensors)
        let ckpt = checkpointPath
        try OutputOptions.check(ckpt, kind: .safetensors)
        if let log { try AtomicFile.checkWritable(log) }
        let start = Date()
        let trainer: PriorTrainer
        if let resume {
            trainer = try PriorTrainer.resume(from: resume, steps: steps)
            output.note("resumed \(resume) at step \(trainer.step) of \(trainer.options.steps)")
        } else {
            var o = PriorTrainingOptions()
            o.configName = config; o.steps = steps; o.batch = batch; o.crop = crop; o.lr = lr
            o.warmup = warmup; o.emaDecay = emaDecay; o.seed = seed
            o.multiScale = multiScale; o.jitter = jitter; o.manifest = manifest ?? ""
            o.kindWeights = PriorSampling.formatKindWeights(try PriorSampling.parseKindWeights(kindWeights ?? ""))
            o.uprightKinds = (upright ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.sorted().joined(separator: ",")
            trainer = try PriorTrainer(options: o)
        }
        let resumedAt = resume == nil ? nil : trainer.step
        let o = trainer.options
        let dataset = try trainer.dataset(directory: data, manifest: resume == nil ? nil : manifest)
        let params = trainer.parameters.reduce(0) { $0 + $1.count }
        let gflop = try PriorModel.forwardFLOPs(trainer.config, height: 256, width: 256) / 1e9
        output.note("prior \(o.configName): \(trainer.config)")
        output.note("  \(params) parameters, \(String(format: "%.1f", gflop)) GFLOP per 256² forward")
        output.note("data: \(dataset.names.count) photos (\(dataset.kindCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))), \(dataset.pixelCount / 1000) kpx over all scales; batch \(o.batch) of \(o.crop)²")
        output.note("sampling: \(o.multiScale ? "multi-scale crops" : "halving levels")\(o.jitter > 0 ? ", jitter \(o.jitter)" : "")\(o.kindWeights.isEmpty ? "" : ", kind weights \(o.kindWeights)")\(o.uprightKinds.isEmpty ? "" : ", upright \(o.uprightKinds)")")
        var logHandle: FileHandle?
        if let log {
            if !FileManager.default.fileExists(atPath: log) {
                guard FileManager.default.createFile(atPath: log, contents: Data("step\tloss\tlr\tseconds\n".utf8)) else {
                    throw FileError("cannot create \(log)")
                }
            }
            logHandle = FileHandle(forWritingAtPath: log)
            guard logHandle != nil else { throw FileError("cannot write \(log)") }
            logHandle!.seekToEndOfFile()
        }
        defer { try? logHandle?.close() }
        let end = min(stopAt ?? o.steps, o.steps)
        guard trainer.step <= end else {
            throw FormatError("the checkpoint is at step \(trainer.step), past --stop-at \(end)", category: .input)
        }
        let bar = output.progress(total: end - trainer.step, label: "training")
        var smooth: Double?
        while trainer.step < end {
            let lr = trainer.learningRate(at: trainer.step)
            let loss = try trainer.trainStep(dataset)
            smooth = smooth.map { 0.95 * $0 + 0.05 * Double(loss) } ?? Double(loss)
            logHandle?.write(Data(String(format: "%d\t%.6f\t%.6g\t%.1f\n", trainer.step, loss, lr, Date().timeIntervalSince(start)).utf8))
            bar.update(trainer.step - (end - bar.total), String(format: "step %d  loss %.4f (avg %.4f)", trainer.step, loss, smooth!))
            if trainer.step % checkpointEvery == 0 || trainer.step == end {
                try trainer.saveCheckpoint(to: ckpt)
            }
        }
        try trainer.exportEMA(to: output.out, extra: ["final_loss": "\(trainer.lastLoss)", "data": data])
        let report = Report(out: output.out, checkpoint: ckpt, config: o.configName, parameters: params,
                            photos: dataset.names.count, resumedAt: resumedAt, steps: o.steps, batch: o.batch, crop: o.crop,
                            finalLoss: trainer.lastLoss.isFinite ? Double(trainer.lastLoss) : nil, seconds: seconds(since: start))
        try output.report(report, text: "wrote \(output.out) (EMA weights, fp16) and checkpoint \(ckpt)")
    }
}
