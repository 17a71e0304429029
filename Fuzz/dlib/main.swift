import GuiseFormats
import GuiseNetworks
import GuiseTensor

// dlib networks: the serialisation reader, the face encoder's checks of how its layers fit
// together, and, when the network is small, one forward pass: whatever loads must run.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDlib(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Parallel.threads = 1
    expectResultOrOneLineError {
        let net = try DlibNetwork(bytes: input(data, size), path: "fuzz.dat")
        let encoder = try DlibFaceEncoder(network: net, path: "fuzz.dat")
        // Small chips only: the run must fit the time and memory budget of one input.
        guard encoder.chipSize <= 32, encoder.largestActivation <= 1 << 16 else { return "loaded, too large to run" }
        let chip = Tensor(shape: [1, 3, encoder.chipSize, encoder.chipSize], repeating: 100)
        let y = try Autograd.noGrad { try encoder(chip) }
        return "ran: \(y.shape)"
    }
    return 0
}
