import XCTest
import GuiseTensor
import GuiseFormats

/// Fixtures written by Tools/reference_adm.py.
func fixture(_ name: String) throws -> SafeTensorsFile {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        throw FormatError("fixture \(name).safetensors missing; run Tools/reference_adm.py")
    }
    return try SafeTensorsFile(path: url.path)
}

extension SafeTensorsFile {
    func tensorOrFail(_ name: String) throws -> Tensor {
        guard self[name] != nil else { throw FormatError("fixture tensor \(name) missing") }
        return try tensor(name)
    }

    /// A float64 or int64 entry read without going through Float.
    func doubles(_ name: String) throws -> [Double] {
        guard let s = self[name] else { throw FormatError("fixture tensor \(name) missing") }
        return (0..<s.count).map { i in
            switch s.dtype {
            case .f64: return s.bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
            case .i64: return Double(s.bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            default: return Double(s.toTensor().values[i])
            }
        }
    }

    func ints(_ name: String) throws -> [Int] { try doubles(name).map { Int($0) } }
}

/// max |a − e| ≤ tol × max(1, max |e|).
func assertClose(_ actual: Tensor, _ expected: Tensor, tol: Float = 1e-4, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(what) shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    let a = actual.values, e = expected.values
    var scale: Float = 1, err: Float = 0
    for i in 0..<a.count {
        scale = max(scale, abs(e[i]))
        err = max(err, abs(a[i] - e[i]))
    }
    XCTAssertFalse(err.isNaN, "\(what): NaN", file: file, line: line)
    XCTAssertLessThanOrEqual(err / scale, tol, "\(what): max error \(err) at scale \(scale)", file: file, line: line)
}

/// Slice i of the outer dimension, as a dense tensor without it.
func slice(_ t: Tensor, _ i: Int) -> Tensor {
    t.narrow(i..<(i + 1)).reshaped(Array(t.shape.dropFirst())).contiguous()
}
