import XCTest
import GuiseTensor
import GuiseTestSupport
@testable import GuiseFormats

final class SafeTensorsTests: XCTestCase {
    func testRoundTripKeepsValuesAndNames() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let path = dir + "/guise-st-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = Tensor(shape: [2, 3], values: [1, -2, 3.5, 0, 1e-20, -7])
        let b = Tensor(shape: [4], values: [9, 8, 7, 6])
        try SafeTensorsWriter.write(tensors: ["a.weight": a, "b": b], to: path, metadata: ["k": "v"])
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["a.weight", "b"])
        XCTAssertEqual(f.metadata["k"], "v")
        XCTAssertEqual(try f.tensor("a.weight").values, a.values)
        XCTAssertEqual(try f.tensor("a.weight").shape, [2, 3])
        XCTAssertEqual(try f.tensor("b").values, b.values)
    }

    func testTruncatedFileIsRejected() throws {
        let path = FileManager.default.temporaryDirectory.path + "/guise-st-trunc-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let full = try SafeTensorsWriter.encode(["x": .init(Tensor(shape: [64], repeating: 1))])
        try full.prefix(full.count - 10).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) { e in
            XCTAssertTrue("\(e)".contains("outside the file"), "\(e)")
        }
    }

    /// A file of an 8-byte little-endian header length, the header text, then `dataBytes` bytes.
    func writeFile(header: String, dataBytes: Int = 0, claimedLength: UInt64? = nil) throws -> String {
        let path = temporaryPath("hostile.safetensors")
        let h = Array(header.utf8)
        var out = Data()
        withUnsafeBytes(of: (claimedLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: (0..<dataBytes).map { UInt8(truncatingIfNeeded: $0) })
        try out.write(to: URL(fileURLWithPath: path))
        return path
    }

    func f32(_ shape: String, _ offsets: String) -> String { #"{"dtype":"F32","shape":\#(shape),"data_offsets":\#(offsets)}"# }

    /// Each header here is one the reference reader (safetensors 0.8) refuses, except the
    /// repeated metadata key, which it merges silently and which we refuse with the others.
    func testHeadersTheReferenceRefusesGiveOneLineErrors() throws {
        let cases: [(String, String, Int, String)] = [
            ("list", "[1,2]", 0, "not a JSON object"),
            ("unclosed", #"{"a":"#, 0, "not valid JSON"),
            ("trailing text", "{} x", 0, "not valid JSON"),
            ("repeated name", #"{"a":\#(f32("[1]", "[0,4]")),"a":\#(f32("[1]", "[4,8]"))}"#, 8, "appears twice"),
            ("repeated field", #"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4, "appears twice"),
            ("repeated metadata key", #"{"__metadata__":{"k":"v","k":"w"}}"#, 0, "appears twice"),
            ("unknown dtype", #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, 4, "does not read"),
            ("dtype not a string", #"{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#, 4, "dtype that is not a string"),
            ("no dtype", #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, 4, "has no dtype"),
            ("entry not an object", #"{"a":[1]}"#, 0, "not an object"),
            ("float dimension", #"{"a":\#(f32("[1.0]", "[0,4]"))}"#, 4, "not a non-negative integer"),
            ("exponent dimension", #"{"a":\#(f32("[1e0]", "[0,4]"))}"#, 4, "not a non-negative integer"),
            ("negative dimension", #"{"a":\#(f32("[-1]", "[0,4]"))}"#, 4, "not a non-negative integer"),
            ("string dimension", #"{"a":\#(f32(#"["1"]"#, "[0,4]"))}"#, 4, "not a non-negative integer"),
            ("dimension past Int64", #"{"a":\#(f32("[9223372036854775808]", "[0,0]"))}"#, 0, "not a non-negative integer"),
            ("2^62 floats", #"{"a":\#(f32("[4611686018427387904]", "[0,0]"))}"#, 0, "overflows"),
            ("2^64 bytes", #"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, 0, "overflows"),
            ("size mismatch", #"{"a":\#(f32("[2]", "[0,4]"))}"#, 4, "needs [2] × 4 = 8 bytes but data_offsets give 4"),
            ("one offset", #"{"a":\#(f32("[1]", "[0]"))}"#, 4, "not two non-negative integers"),
            ("three offsets", #"{"a":\#(f32("[1]", "[0,4,4]"))}"#, 4, "not two non-negative integers"),
            ("float offset", #"{"a":\#(f32("[1]", "[0.0,4]"))}"#, 4, "not two non-negative integers"),
            ("backwards offsets", #"{"a":\#(f32("[0]", "[4,0]"))}"#, 4, "run backwards"),
            ("offsets past the data", #"{"a":\#(f32("[2]", "[0,8]"))}"#, 4, "outside the file"),
            ("overlap", #"{"a":\#(f32("[2]", "[0,8]")),"b":\#(f32("[2]", "[4,12]"))}"#, 12, "overlaps"),
            ("hole", #"{"a":\#(f32("[1]", "[0,4]")),"b":\#(f32("[1]", "[8,12]"))}"#, 12, "unused bytes 4..<8"),
            ("tail", #"{"a":\#(f32("[1]", "[0,4]"))}"#, 8, "4 unused bytes after"),
            ("data but no tensors", "{}", 4, "4 unused bytes after"),
            ("metadata list", #"{"__metadata__":[1]}"#, 0, "not an object of strings"),
            ("metadata number value", #"{"__metadata__":{"k":1}}"#, 0, "is not a string"),
            ("metadata string", #"{"__metadata__":"x"}"#, 0, "not an object of strings"),
            ("lone surrogate", #"{"\ud800":\#(f32("[1]", "[0,4]"))}"#, 4, "surrogate"),
            ("control character", "{\"a\u{1B}\":\(f32("[1]", "[0,4]"))}", 4, "control character"),
            ("deep nesting", #"{"__metadata__":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}", 0, "nested"),
        ]
        for (label, header, dataBytes, expected) in cases {
            let path = try writeFile(header: header, dataBytes: dataBytes)
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try SafeTensorsFile(path: path), label) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(expected), "\(label): \(text)")
                XCTAssertFalse(text.contains("\n") || text.contains("\u{1B}"), "\(label): \(text)")
                XCTAssertTrue(text.hasPrefix(path + ": "), "\(label): \(text)")
                XCTAssertEqual((e as? FormatError)?.category, label == "unknown dtype" ? .unsupported : .input, label)
            }
        }
    }

    func testHeaderLengthsBeyondTheFileAreRefused() throws {
        for claimed: UInt64 in [10_000, UInt64.max, 1 << 63] {
            let path = try writeFile(header: "{}", claimedLength: claimed)
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try SafeTensorsFile(path: path)) { e in
                XCTAssertTrue("\(e)".contains("header length \(claimed) exceeds the file"), "\(e)")
            }
            // The checkpoint sniffer hands it to the safetensors reader, which names the problem.
            XCTAssertThrowsError(try Checkpoint(path: path)) { e in
                XCTAssertTrue("\(e)".contains("header length \(claimed) exceeds the file"), "\(e)")
            }
        }
    }

    /// Headers the reference accepts still load: empty tensors, metadata (or a null one),
    /// padding, escaped names, leading space and fields it does not know.
    func testValidHeadersStillLoad() throws {
        let cases: [(String, Int, [String], [String: String])] = [
            ("{}", 0, [], [:]),
            (" {}", 0, [], [:]),
            (#"{"e":\#(f32("[0]", "[0,0]")),"z":\#(f32("[2,0]", "[0,0]")),"a":\#(f32("[2]", "[0,8]"))}"#, 8, ["e", "z", "a"], [:]),
            (#"{"__metadata__":{"format":"pt","k":"v"},"a":\#(f32("[1]", "[0,4]"))}"#, 4, ["a"], ["format": "pt", "k": "v"]),
            (#"{"__metadata__":null,"a":\#(f32("[1]", "[0,4]"))}"#, 4, ["a"], [:]),
            (#"{"a":\#(f32("[1]", "[0,4]"))}    "#, 4, ["a"], [:]),
            (#"{"a\u00e9\"\ud83d\ude00\/":\#(f32("[1]", "[0,4]"))}"#, 4, ["aé\"😀/"], [:]),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":[{}]}}"#, 4, ["a"], [:]),
            (#"{"b":\#(f32("[1]", "[4,8]")),"a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}}"#, 8, ["a", "b"], [:]),
        ]
        for (header, dataBytes, names, metadata) in cases {
            let path = try writeFile(header: header, dataBytes: dataBytes)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let f = try SafeTensorsFile(path: path)
            XCTAssertEqual(try Checkpoint(path: path).format, .safetensors, header)
            XCTAssertEqual(f.names, names, header)
            XCTAssertEqual(f.metadata, metadata, header)
            for name in names { XCTAssertNotNil(f[name], header) }
        }
        let path = try writeFile(header: #"{"e":\#(f32("[3,0]", "[0,0]")),"a":\#(f32("[1]", "[0,4]"))}"#, dataBytes: 4)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(try f.tensor("e").shape, [3, 0])
        XCTAssertEqual(try f.tensor("e").count, 0)
        // Bytes 00 01 02 03 read as a little-endian float.
        XCTAssertEqual(try f.tensor("a").values, [Float(bitPattern: 0x0302_0100)])
    }

    func testHalfWidening() {
        XCTAssertEqual(HalfFloat.f16ToF32(0x3C00), 1)
        XCTAssertEqual(HalfFloat.f16ToF32(0xC000), -2)
        XCTAssertEqual(HalfFloat.f16ToF32(0x0001), Float(bitPattern: 0x3380_0000))
        XCTAssertEqual(HalfFloat.f16ToF32(0x7C00), .infinity)
        XCTAssertEqual(HalfFloat.bf16ToF32(0x3F80), 1)
        for v: Float in [0.1, -3.25, 65504, 6e-8] {
            XCTAssertEqual(HalfFloat.f16ToF32(HalfFloat.f32ToF16(v)), Float(Float16(v)))
        }
    }
}
