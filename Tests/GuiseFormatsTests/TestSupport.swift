import XCTest
import GuiseFormats

/// Same names, dtypes, shapes and bytes.
func assertSameTensors(_ names: [String], _ tensors: [String: StoredTensor], _ expected: SafeTensorsFile, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Set(names), Set(expected.names), "\(what): names", file: file, line: line)
    for n in expected.names {
        guard let a = tensors[n], let e = expected[n] else { continue }
        XCTAssertEqual(a.dtype, e.dtype, "\(what): \(n) dtype", file: file, line: line)
        XCTAssertEqual(a.shape, e.shape, "\(what): \(n) shape", file: file, line: line)
        XCTAssertEqual(Array(a.bytes), Array(e.bytes), "\(what): \(n) bytes", file: file, line: line)
    }
}
