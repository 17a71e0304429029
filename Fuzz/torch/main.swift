@testable import GuiseFormats

// PyTorch checkpoints: the ZIP reader (end records, directory, local headers, ZIP64) and the
// allowlist unpickler with its budgets, or a legacy pickle stream; then every tensor widened.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let owner = InputOwner()
    expectResultOrOneLineError {
        let checkpoint = try TorchCheckpoint(path: "fuzz.pt", bytes: input(data, size), owner: owner)
        for name in checkpoint.names {
            let stored = checkpoint.tensors[name]!
            precondition(stored.toTensor().count == stored.count)
        }
        return "\(checkpoint.names.count) tensors"
    }
    return 0
}
