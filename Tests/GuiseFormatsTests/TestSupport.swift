import XCTest
import GuiseFormats

/// The path of a fixture written by Tools/make_fixtures_formats.py.
func fixturePath(_ file: String) throws -> String {
    guard let url = Bundle.module.url(forResource: file, withExtension: nil, subdirectory: "Fixtures") else {
        throw FormatError("fixture \(file) missing; run Tools/make_fixtures_formats.py")
    }
    return url.path
}

/// Fixtures written by the Tools/make_fixtures_*.py scripts.
func fixture(_ name: String) throws -> SafeTensorsFile {
    try SafeTensorsFile(path: try fixturePath(name + ".safetensors"))
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.path + "/guise-\(UUID().uuidString)-\(name)"
}

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
