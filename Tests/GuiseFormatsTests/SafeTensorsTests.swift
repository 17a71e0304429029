import XCTest
import GuiseTensor
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
