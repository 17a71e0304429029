import GuiseFormats

// safetensors: the strict header parse and the tiling of the data section, then every tensor
// widened to float32 (f16, bf16, f64 and integer conversions read exactly the bytes claimed).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let owner = InputOwner()
    expectResultOrOneLineError {
        let file = try SafeTensorsFile(bytes: input(data, size), path: "fuzz.safetensors", owner: owner)
        for name in file.names {
            let stored = file[name]!
            let t = stored.toTensor()
            precondition(t.shape == stored.shape && stored.bytes.count == stored.count * stored.dtype.byteSize)
        }
        return "\(file.names.count) tensors"
    }
    return 0
}
