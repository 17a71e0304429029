import GuiseFormats
import GuiseNetworks
import GuiseTensor

// TFLite: the FlatBuffer reader, the whole-graph check, constant folding and fusion as the
// executor builds its steps, and, when the graph is small, one forward pass: whatever loads
// must run, since the kernels trust the shapes the check let through.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFLite(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Parallel.threads = 1
    expectResultOrOneLineError {
        let model = try TFLiteModel(bytes: input(data, size), path: "fuzz.tflite")
        let net = try TFLiteNetwork(model: model)
        // Small graphs only: the run must fit the time and memory budget of one input.
        var elements = 0
        for t in model.mainGraph.tensors {
            elements += TFLiteModel.elementCount(t.shape) ?? 1 << 40
            if elements > 1 << 18 { return "loaded, too large to run" }
        }
        let inputs = net.inputShapes.map { Tensor(shape: $0, repeating: 0.5) }
        let outputs = try Autograd.noGrad { try net(inputs) }
        return "ran: \(outputs.map(\.shape))"
    }
    return 0
}
