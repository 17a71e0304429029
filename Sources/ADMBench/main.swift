import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks

// One timed ADM evaluation for Tools/bench_adm.py, which runs the same in PyTorch:
//   ADMBench --weights W.safetensors --config C.json --inputs I.safetensors --mode fwd|fwdbwd [--checkpoint] --out O.safetensors
// Prints one JSON line: load and run seconds, and the process's peak resident set (load included).

func arg(_ name: String) -> String? {
    let a = CommandLine.arguments
    guard let i = a.firstIndex(of: "--\(name)"), i + 1 < a.count else { return nil }
    return a[i + 1]
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
}

// As the command line runs (see `Allocator`).
Allocator.keepFreedMemory()
do {
    guard let weights = arg("weights"), let config = arg("config"), let inputs = arg("inputs"),
          let mode = arg("mode"), mode == "fwd" || mode == "fwdbwd" else {
        FileHandle.standardError.write(Data("usage: ADMBench --weights W --config C --inputs I --mode fwd|fwdbwd [--out O]\n".utf8))
        exit(2)
    }
    let t0 = now()
    let model = try ADMUNet(path: weights, config: try ADMConfig.load(path: config))
    model.checkpointing = CommandLine.arguments.contains("--checkpoint")
    let loadSeconds = now() - t0
    let io = try SafeTensorsFile(path: inputs)
    let x = try io.tensor("x"), t = try io.tensor("t")
    let id = io["id"] != nil ? try io.tensor("id") : nil
    var outputs: [String: Tensor] = [:]
    let t1 = now()
    if mode == "fwd" {
        outputs["out"] = try Autograd.noGrad { try model(x, timesteps: t, id: id) }
    } else {
        let (out, grad) = try vectorJacobianProduct(at: x, seed: try io.tensor("seed")) { try model($0, timesteps: t, id: id) }
        outputs["out"] = out
        outputs["grad_x"] = grad
    }
    let runSeconds = now() - t1
    if let out = arg("out") { try SafeTensorsWriter.write(tensors: outputs, to: out) }
    print(#"{"mode": "\#(mode)", "load_seconds": \#(loadSeconds), "seconds": \#(runSeconds), "peak_rss_mb": \#(peakRSSMegabytes()), "parameters": \#(model.parameterCount)}"#)
} catch {
    FileHandle.standardError.write(Data("ADMBench: \(error)\n".utf8))
    exit(1)
}
