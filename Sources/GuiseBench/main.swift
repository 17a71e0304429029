import COpenBLAS
import Foundation
import GuiseTensor

// Times Guise's hot ops with warm-up and the median of several runs.
// `GuiseBench [SUBSTRING]` prints a table; `GuiseBench --tsv [--only NAME]` prints
// `name<TAB>median ms<TAB>best ms<TAB>gflop` lines, and `--list` the row names. Tools/bench_torch.py runs each
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
func measure(_ body: () -> Void, budget: Double = 3, maxRuns: Int = 15) -> (median: Double, best: Double) {
    body(); body()
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

/// The sgemm peak the GFLOP/s column is measured against.
func sgemmRow(_ n: Int) -> Row {
    Row(name: "sgemm \(n)", flops: 2 * Double(n * n * n)) {
        let a = Tensor(shape: [n, n], repeating: 0.5), b = Tensor(shape: [n, n], repeating: 0.25)
        let c = Tensor(zeros: [n, n])
        return {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                        a.data, Int32(n), b.data, Int32(n), 0, c.data, Int32(n))
        }
    }
}

// Further rows (an ADM ResBlock, attention) are one `Row(...)` each here, and an entry of
// the same name in ROWS in Tools/bench_torch.py.
let rows: [Row] = [sgemmRow(2048)] + convRows(channels: 256, size: 64) + convRows(channels: 128, size: 128)

let threads = 2
openblas_set_num_threads(Int32(threads))
Parallel.threads = threads
let args = Array(CommandLine.arguments.dropFirst())
if args.contains("--list") { for row in rows { print(row.name) }; exit(0) }
let tsv = args.contains("--tsv")
let only = args.firstIndex(of: "--only").flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
let filter = args.first { !$0.hasPrefix("--") && $0 != only }
if !tsv { print(String(format: "%-30@ %10@ %10@ %10@", "op", "median ms", "best ms", "GFLOP/s")) }
for row in rows where (only.map { row.name == $0 } ?? true) && (filter.map { row.name.contains($0) } ?? true) {
    let t = measure(row.make())
    if tsv {
        print("\(row.name)\t\(t.median * 1e3)\t\(t.best * 1e3)\t\(row.flops / 1e9)")
    } else {
        print(String(format: "%-30@ %10.2f %10.2f %10.1f", row.name, t.median * 1e3, t.best * 1e3, row.flops / t.median / 1e9))
    }
    fflush(stdout)
}
