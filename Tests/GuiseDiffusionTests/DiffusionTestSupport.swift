import XCTest
import GuiseTensor
import GuiseFormats
import GuiseTestSupport

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

/// Slice i of the outer dimension, as a dense tensor without it.
func slice(_ t: Tensor, _ i: Int) -> Tensor {
    t.narrow(i..<(i + 1)).reshaped(Array(t.shape.dropFirst())).contiguous()
}
