import Foundation
import GuiseFormats
import GuiseNetworks
import GuiseTensor

// Times Guise's hot ops with warm-up and the median of several runs.
// `GuiseBench [SUBSTRING]` prints a table; `GuiseBench --tsv [--only NAME]` prints
// `name<TAB>median ms<TAB>best ms<TAB>gflop` lines, `--list` the row names, `--gemm` which sgemm runs. Tools/bench_torch.py runs each
// row here and then in PyTorch back to back, so load from other processes hits both alike.
// A row is a name, its FLOP count and a closure that builds inputs and returns the timed body;
// Tools/bench_torch.py must have a row of the same name.

struct Row {
    let name: String
    let flops: Double
    let make: () -> () -> Void
}

/// Median and best wall time in seconds of `body`, after warm-up, with runs capped at about
/// `budget` seconds. On a machine others are loading, the best run is the steadier figure.
/// Median and best wall time after warm-up calls (two at least, and `warmup` seconds: a
/// millisecond network's first runs in a fresh process are slow while clocks, caches and the
/// thread pool settle); at least five runs, until `budget` seconds or `maxRuns`.
/// Tools/bench_timing.py measures the references the same way.
func measure(_ body: () -> Void, budget: Double = 3, maxRuns: Int = 15, warmup: Double = 0.3) -> (median: Double, best: Double) {
    let warmStart = DispatchTime.now().uptimeNanoseconds
    body(); body()
    while Double(DispatchTime.now().uptimeNanoseconds - warmStart) / 1e9 < warmup { body() }
    var times: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < maxRuns {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        let t1 = DispatchTime.now().uptimeNanoseconds
        times.append(Double(t1 - t0) / 1e9)
        if times.count >= 5 && Double(t1 - start) / 1e9 > budget { break }
    }
    times.sort()
    return (times[times.count / 2], times[0])
}

func convFlops(n: Int, cin: Int, cout: Int, k: Int, hw: Int) -> Double {
    2 * Double(n * cin * cout * k * k * hw * hw)
}

/// conv2d 3×3, padding 1: forward alone, or forward and backward w.r.t. input, weight and bias.
func convRows(channels c: Int, size s: Int) -> [Row] {
    let f = convFlops(n: 1, cin: c, cout: c, k: 3, hw: s)
    let label = "conv3x3 \(c)->\(c) @\(s)"
    return [
        Row(name: "\(label) fwd", flops: f) {
            let x = Tensor(shape: [1, c, s, s], repeating: 0.5), w = Tensor(shape: [c, c, 3, 3], repeating: 0.01)
            let b = Tensor(shape: [c], repeating: 0.1)
            return { _ = NN.conv2d(x, weight: w, bias: b, padding: 1) }
        },
        Row(name: "\(label) fwd+bwd", flops: 3 * f) {
            let x = Tensor(shape: [1, c, s, s], repeating: 0.5), w = Tensor(shape: [c, c, 3, 3], repeating: 0.01)
            let b = Tensor(shape: [c], repeating: 0.1), gy = Tensor(shape: [1, c, s, s], repeating: 1)
            for t in [x, w, b] { t.requiresGrad = true }
            return {
                let y = NN.conv2d(x, weight: w, bias: b, padding: 1)
                y.backward(seed: gy)
                for t in [x, w, b] { t.grad = nil }
            }
        },
    ]
}

/// The sgemm peak the GFLOP/s column is measured against: the engine's product, OpenBLAS
/// blocks on the engine's pool.
func sgemmRow(_ n: Int) -> Row {
    Row(name: "sgemm \(n)", flops: 2 * Double(n * n * n)) {
        let a = Tensor(shape: [n, n], repeating: 0.5), b = Tensor(shape: [n, n], repeating: 0.25)
        return { _ = a.matmul(b) }
    }
}

/// Deterministic, non-constant values, so norms see real variance.
func filled(_ shape: [Int], scale: Float = 1) -> Tensor {
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, values: (0..<n).map { scale * sin(Float($0) * 0.7311 + 0.3) })
}

/// Times `forward` alone, and forward plus backward w.r.t. the input and every parameter.
func forwardRows(_ label: String, flops: Double, input: [Int], params: [[Int]],
                 _ forward: @escaping (Tensor, [Tensor]) -> Tensor) -> [Row] {
    [
        Row(name: "\(label) fwd", flops: flops) {
            let x = filled(input), ps = params.map { filled($0, scale: 0.05) }
            return { _ = forward(x, ps) }
        },
        Row(name: "\(label) fwd+bwd", flops: 3 * flops) {
            let x = filled(input), ps = params.map { filled($0, scale: 0.05) }
            for t in [x] + ps { t.requiresGrad = true }
            let gy = filled(input)
            return {
                forward(x, ps).backward(seed: gy)
                for t in [x] + ps { t.grad = nil }
            }
        },
    ]
}

/// guided-diffusion's ResBlock with use_scale_shift_norm: GroupNorm32, SiLU, conv3×3, then
/// GroupNorm · (1 + scale) + shift from the time embedding, SiLU, conv3×3, plus the skip.
func resBlockRows(channels c: Int, size s: Int, embedding e: Int) -> [Row] {
    forwardRows("resblock \(c) @\(s)", flops: 2 * convFlops(n: 1, cin: c, cout: c, k: 3, hw: s),
                input: [1, c, s, s],
                params: [[c], [c], [c, c, 3, 3], [c], [1, e], [2 * c, e], [2 * c], [c], [c], [c, c, 3, 3], [c]]) { x, p in
        var h = NN.groupNorm(x, groups: 32, weight: p[0], bias: p[1]).silu()
        h = NN.conv2d(h, weight: p[2], bias: p[3], padding: 1)
        let ss = NN.linear(p[4].silu(), weight: p[5], bias: p[6]).chunk(2, dim: 1)
        let scale = ss[0].reshaped(1, c, 1, 1), shift = ss[1].reshaped(1, c, 1, 1)
        h = (NN.groupNorm(h, groups: 32, weight: p[7], bias: p[8]) * (scale + 1) + shift).silu()
        return x + NN.conv2d(h, weight: p[9], bias: p[10], padding: 1)
    }
}

/// guided-diffusion's AttentionBlock (new QKV order): GroupNorm32, 1×1 conv to q,k,v,
/// attention over heads of 64 channels, 1×1 projection, plus the skip.
func attentionRows(channels c: Int, size s: Int, headChannels d: Int) -> [Row] {
    let t = s * s, heads = c / d
    let flops = 2 * Double(t * c * 3 * c) + 2 * Double(t * c * c) + 4 * Double(t * t * c)
    return forwardRows("attention \(c) @\(s)", flops: flops, input: [1, c, s, s],
                       params: [[c], [c], [3 * c, c, 1, 1], [3 * c], [c, c, 1, 1], [c]]) { x, p in
        let h = NN.groupNorm(x, groups: 32, weight: p[0], bias: p[1])
        let qkv = NN.conv2d(h, weight: p[2], bias: p[3]).reshaped(3 * heads, d, t)
        // Outer-dim slices are views, used as [1, heads, t, d]: no copies before the GEMMs.
        let parts = (0..<3).map { qkv.narrow($0 * heads..<($0 + 1) * heads).reshaped(1, heads, d, t).transposedLastTwo }
        let a = NN.scaledDotProductAttention(parts[0], parts[1], parts[2])  // [1, heads, t, d]
        let merged = a.transposedLastTwo.reshaped(1, c, s, s)
        return x + NN.conv2d(merged, weight: p[4], bias: p[5])
    }
}

/// The embedded networks, inference only (no tape), on a deterministic input of the model's
/// shape; Tools/bench_litert.py times the same files in LiteRT (and dlib) side by side
/// (and skips a row whose model file is missing under Models/).
let tfliteModels = ["face_detection_short_range", "face_detection_full_range_sparse", "face_landmark", "iris_landmark",
                    "selfie_segmentation", "pose_detection", "pose_landmark_full"]

func networkRows() -> [Row] {
    let tflite = tfliteModels.map { name in
        Row(name: "tflite \(name)", flops: 0) {
            guard let net = try? TFLiteNetwork(path: "Models/\(name).tflite") else { return {} }
            let xs = net.inputShapes.map { filled($0, scale: 0.9) }
            return { Autograd.noGrad { _ = try! net(xs) } }
        }
    }
    let dlib = Row(name: "dlib resnet", flops: 0) {
        guard let net = try? DlibFaceEncoder(path: "Models/dlib_face_recognition_resnet_model_v1.dat") else { return {} }
        let x = (filled([1, 3, net.chipSize, net.chipSize], scale: 100) + 128)
        return { Autograd.noGrad { _ = try! net(x) } }
    }
    return tflite + [dlib]
}

/// SimSwap/DiffFace's ArcFace IR-SE50 at 112², batch 1 and batch 8: forward, and forward plus
/// backward to the input (what one identity-guidance view costs, and what DiffFace's eight do).
/// He-scaled pseudo-random weights and identity batch norms keep activations O(1);
/// Tools/bench_torch.py builds the same network.
func arcFaceRows() -> [Row] {
    var weights: [String: Tensor] = [:], flops = 0.0
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func random(_ shape: [Int], scale: Float) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale * 1.7
        })
    }
    func conv(_ p: String, _ o: Int, _ i: Int, _ k: Int, side: Int) {
        weights[p + ".weight"] = random([o, i, k, k], scale: (2 / Float(i * k * k)).squareRoot())
        flops += 2 * Double(o * i * k * k * side * side)
    }
    func norm(_ p: String, _ c: Int) {
        weights[p + ".weight"] = Tensor(shape: [c], repeating: 1)
        weights[p + ".running_var"] = Tensor(shape: [c], repeating: 1)
        for n in ["bias", "running_mean"] { weights[p + "." + n] = Tensor(zeros: [c]) }
    }
    func linear(_ p: String, _ o: Int, _ i: Int) {
        weights[p + ".weight"] = random([o, i], scale: (1 / Float(i)).squareRoot())
        weights[p + ".bias"] = Tensor(zeros: [o])
        flops += 2 * Double(o * i)
    }
    conv("conv1", 64, 3, 3, side: 110)
    norm("bn1", 64)
    weights["prelu.weight"] = Tensor(shape: [1], repeating: 0.25)
    var channels = 64, side = 55
    for (stage, (blocks, width)) in zip([3, 4, 14, 3], [64, 128, 256, 512]).enumerated() {
        for b in 0..<blocks {
            let p = "layer\(stage + 1).\(b)", stride = stage > 0 && b == 0 ? 2 : 1
            norm(p + ".bn0", channels)
            conv(p + ".conv1", channels, channels, 3, side: side)
            norm(p + ".bn1", channels)
            weights[p + ".prelu.weight"] = Tensor(shape: [1], repeating: 0.25)
            let out = stride == 1 ? side : (side + 1) / 2
            conv(p + ".conv2", width, channels, 3, side: out)
            norm(p + ".bn2", width)
            linear(p + ".se.fc.0", width / 16, width)
            weights[p + ".se.fc.1.weight"] = Tensor(shape: [1], repeating: 0.25)
            linear(p + ".se.fc.2", width, width / 16)
            if b == 0 && (stride != 1 || channels != width) {
                conv(p + ".downsample.0", width, channels, 1, side: out)
                norm(p + ".downsample.1", width)
            }
            channels = width
            side = out
        }
    }
    norm("bn2", 512)
    linear("fc", 512, 512 * 7 * 7)
    norm("bn3", 512)
    let net = try! ArcFaceNetwork(path: "IR-SE50", weights: weights, modules: nil, pickledClass: nil)
    return [1, 8].flatMap { batch -> [Row] in
        let x = filled([batch, 3, 112, 112], scale: 2), name = "arcface ir-se50" + (batch == 1 ? "" : " x\(batch)")
        let f = flops * Double(batch)
        return [
            Row(name: name + " fwd", flops: f) { { Autograd.noGrad { _ = try! net(x) } } },
            Row(name: name + " fwd+bwd x", flops: 2 * f) {
                let seed = filled([batch, 512])
                return { _ = try! vectorJacobianProduct(at: x, seed: seed) { try net($0) } }
            },
        ]
    }
}

// A new row is one entry here and one of the same name in ROWS in Tools/bench_torch.py.
let rows: [Row] = [sgemmRow(2048)] + convRows(channels: 256, size: 64) + convRows(channels: 128, size: 128)
    + resBlockRows(channels: 256, size: 64, embedding: 1024) + attentionRows(channels: 512, size: 32, headChannels: 64)
    + networkRows() + arcFaceRows()

let threads = Int(ProcessInfo.processInfo.environment["GUISE_BENCH_THREADS"] ?? "") ?? 2
Parallel.threads = threads  // every GEMM's threads too
Allocator.keepFreedMemory()  // as the command line runs
let args = Array(CommandLine.arguments.dropFirst())
if args.contains("--list") { for row in rows { print(row.name) }; exit(0) }
if args.contains("--gemm") { print("sgemm: " + GemmKernel.summary); exit(0) }
if let k = args.firstIndex(of: "--profile"), k + 1 < args.count {
    // `--profile MODEL`: where a network's time goes, per op type and the slowest steps.
    let net = try! TFLiteNetwork(path: "Models/\(args[k + 1]).tflite")
    let xs = net.inputShapes.map { filled($0, scale: 0.9) }
    for _ in 0..<3 { _ = try! net(xs) }
    net.startProfiling()
    let runs = Int(ProcessInfo.processInfo.environment["GUISE_PROFILE_RUNS"] ?? "") ?? 20
    for _ in 0..<runs { _ = try! net(xs) }
    let steps = net.profile!
    let total = steps.reduce(0) { $0 + $1.seconds } / Double(runs) * 1e3
    print(String(format: "%@: %.3f ms per run in ops", args[k + 1], total))
    var byOp: [String: (Int, Double)] = [:]
    for s in steps { byOp[s.op, default: (0, 0)].0 += 1; byOp[s.op, default: (0, 0)].1 += s.seconds / Double(runs) * 1e3 }
    for (op, v) in byOp.sorted(by: { $0.value.1 > $1.value.1 }) {
        print(String(format: "  %-28@ %4d steps %8.3f ms %5.1f%%", op, v.0, v.1, 100 * v.1 / total))
    }
    print("slowest steps:")
    for s in steps.sorted(by: { $0.seconds > $1.seconds }).prefix(Int(ProcessInfo.processInfo.environment["GUISE_PROFILE_STEPS"] ?? "") ?? 25) {
        print(String(format: "  %8.3f ms  %-20@ %@", s.seconds / Double(runs) * 1e3, s.op, s.detail))
    }
    exit(0)
}
if args.contains("--load") {
    // `--load`: reading each embedded model file (parse, weights widened to float32, the TFLite
    // graph check and step building) and hashing it, best of several runs: what a command pays
    // per model before any inference, and what bounds checks in the readers cost.
    let dir = "Models/"
    var loads: [(String, String, () throws -> Void)] = tfliteModels.map { name in
        (name + ".tflite", "TFLiteNetwork", { _ = try TFLiteNetwork(path: dir + name + ".tflite") })
    }
    loads.append(("dlib_face_recognition_resnet_model_v1.dat", "DlibFaceEncoder",
                  { _ = try DlibFaceEncoder(path: dir + "dlib_face_recognition_resnet_model_v1.dat") }))
    loads.append(("prior/guise-prior.safetensors", "SafeTensorsFile + f32",
                  { _ = try SafeTensorsFile(path: dir + "prior/guise-prior.safetensors").allTensors() }))
    func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
    print(pad("file", 42) + pad("reader", 22) + "       MB   load ms  sha256 ms")
    for (file, reader, load) in loads {
        guard FileManager.default.fileExists(atPath: dir + file) else { print("\(file): missing (make models)"); continue }
        let bytes = try! MappedFile(path: dir + file)
        let l = measure({ try! load() }, budget: 2, maxRuns: 10, warmup: 0.1)
        let h = measure({ _ = SHA256.hex(bytes.bytes) }, budget: 2, maxRuns: 10, warmup: 0.1)
        withExtendedLifetime(bytes) {
            print(pad(file, 42) + pad(reader, 22) + String(format: "%9.2f %9.2f %10.2f", Double(bytes.count) / 1e6, l.best * 1e3, h.best * 1e3))
        }
    }
    exit(0)
}
if let k = args.firstIndex(of: "--pw"), k + 3 < args.count {
    // `--pw C O SIDE`: the 1×1 conv kernel alone on warm data (its throughput without the
    // cache misses a network adds), e.g. `GUISE_BENCH_THREADS=1 GuiseBench --pw 64 64 32`.
    let c = Int(args[k + 1])!, o = Int(args[k + 2])!, side = Int(args[k + 3])!
    let x = filled([1, c, side, side], scale: 0.5), w = filled([o, c, 1, 1], scale: 0.1), b = filled([o], scale: 0.1)
    let t = measure({ Autograd.noGrad { _ = NN.conv2d(x, weight: w, bias: b) } }, maxRuns: 200)
    let fma = Double(c * o * side * side)
    print(String(format: "1x1 %d->%d @%d: %.4f ms  %.1f GFMA/s", c, o, side, t.median * 1e3, fma / t.median / 1e9))
    exit(0)
}
let tsv = args.contains("--tsv")
let only = args.firstIndex(of: "--only").flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
let filter = args.first { !$0.hasPrefix("--") && $0 != only }
if !tsv { print(String(format: "%-30@ %10@ %10@ %10@", "op", "median ms", "best ms", "GFLOP/s")) }
for row in rows where (only.map { row.name == $0 } ?? true) && (filter.map { row.name.contains($0) } ?? true) {
    // Network rows take milliseconds: as many runs as the LiteRT side gets (bench_litert.py).
    let t = measure(row.make(), maxRuns: row.name.hasPrefix("tflite ") || row.name == "dlib resnet" ? 30 : 15)
    if tsv {
        print("\(row.name)\t\(t.median * 1e3)\t\(t.best * 1e3)\t\(row.flops / 1e9)")
    } else {
        print(String(format: "%-30@ %10.2f %10.2f %10.1f", row.name, t.median * 1e3, t.best * 1e3, row.flops / t.median / 1e9))
    }
    fflush(stdout)
}
