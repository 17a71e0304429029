import Foundation
import XCTest
@testable import GuiseFormats
import GuiseNetworks
import GuiseTensor
import GuiseTestSupport

/// Every input the fuzzers found a crash with (Tests/Fixtures/fuzz, named after the harness and
/// the fault), replayed through the harness's own path: read, load, and run when small. Each
/// must now give a result or a one-line error, and the error it gives is pinned here.
final class FuzzRegressionTests: XCTestCase {
    /// File → a part of the error it must give ("" for a file that must load and run).
    static let expected: [String: String] = [
        // A layer name holding control characters (a CR) was printed raw, splitting the message.
        "dlib-control-character-in-layer-name.dat": #"unsupported dlib input layer 'input_rgb_im\u{1}\u{1}\u{1}\u{d}loss_'"#,
        // The same in a TFLite custom operator's name (tensor names went through the same fix).
        "tflite-control-character-in-custom-op-name.tflite": #"unsupported TFLite op Convolution\#u{FFFD}\u{d}TransposeBias (operator #0"#,
        // A 3×3 conv dilated by 65536×252 with SAME padding on a 6×6 input: the shapes agree, but
        // the padded copy the kernel builds held 765 MB.
        "tflite-dilation-far-past-the-input.tflite": "window 3 (dilation 252) spans 505 pixels, far past the input",
        // Made by hand from the same fault: a transposed conv whose declared output is so small
        // that the padding cropped off it is 65537 pixels (stride 65536), far past its kernel.
        "tflite-transpose-padding-past-the-kernel.tflite": "does not follow from input [1, 2, 2, 3] and kernel [2, 2, 2, 3]",
        // A RESHAPE of a stored (fp16) tensor: the graph check counted constants as available,
        // but the step reads its input from the activations, so the run indexed past them.
        "tflite-reshape-of-a-constant.tflite": "operator #0 RESHAPE: input tensor #5 'w16' [2, 1, 1, 2] is a constant",
        // A CONV_2D whose bias is [1, 1, C]: the graph check allows leading 1s, the executor
        // passed the shape on, and the conv's precondition (bias [C]) stopped the process. It
        // must load and run.
        "tflite-conv-bias-with-leading-ones.tflite": "",
    ]

    /// What the harness does with one input; returns the error message, or "" when it ran.
    static func replay(_ name: String, _ bytes: [UInt8]) throws -> String {
        final class Owner {}
        do {
            try bytes.withUnsafeBytes { raw in
                switch URL(fileURLWithPath: name).pathExtension {
                case "dat":
                    let encoder = try DlibFaceEncoder(network: try DlibNetwork(bytes: raw, path: "fuzz.dat"), path: "fuzz.dat")
                    guard encoder.chipSize <= 32, encoder.largestActivation <= 1 << 16 else { return }
                    _ = try Autograd.noGrad { try encoder(Tensor(shape: [1, 3, encoder.chipSize, encoder.chipSize], repeating: 100)) }
                case "tflite":
                    let model = try TFLiteModel(bytes: raw, path: "fuzz.tflite")
                    let net = try TFLiteNetwork(model: model)
                    var elements = 0
                    for t in model.mainGraph.tensors { elements += TFLiteModel.elementCount(t.shape) ?? 1 << 40 }
                    guard elements <= 1 << 18 else { return }
                    _ = try Autograd.noGrad { try net(net.inputShapes.map { Tensor(shape: $0, repeating: 0.5) }) }
                case "pt", "pkl":
                    let c = try TorchCheckpoint(path: "fuzz.pt", bytes: raw, owner: Owner())
                    for n in c.names { _ = c.tensors[n]!.toTensor() }
                case "safetensors":
                    let f = try SafeTensorsFile(bytes: raw, path: "fuzz.safetensors", owner: Owner())
                    for n in f.names { _ = f[n]!.toTensor() }
                default:
                    XCTFail("\(name): no harness for this kind of file")
                }
            }
            return ""
        } catch let e as GuiseError {
            return e.message
        }
    }

    func testCrashInputsNowGiveOneLineErrors() throws {
        let dir = fixtureDirectory + "/fuzz"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix("image-") }.sorted()
        XCTAssertEqual(Set(files), Set(Self.expected.keys), "every crash input has its expected outcome, and every outcome its file")
        for name in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            let message = try Self.replay(name, bytes)
            let want = try XCTUnwrap(Self.expected[name], name)
            if want.isEmpty {
                XCTAssertEqual(message, "", name)
            } else {
                XCTAssertTrue(message.contains(want), "\(name): \(message)")
                XCTAssertFalse(message.contains("\n") || message.contains("\r"), "\(name): \(message)")
            }
        }
    }
}
