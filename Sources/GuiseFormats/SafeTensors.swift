import Foundation
import GuiseTensor

/// The safetensors format: u64 little-endian header length, a JSON header mapping names to
/// {dtype, shape, data_offsets}, then raw little-endian data. Read through mmap.
public struct SafeTensorsFile {
    public let path: String
    /// Tensor names in file order (by data offset).
    public let names: [String]
    public let metadata: [String: String]
    private let entries: [String: StoredTensor]
    private let file: MappedFile

    public init(path: String) throws {
        file = try MappedFile(path: path)
        self.path = path
        let b = file.bytes
        guard b.count >= 8 else { throw FormatError("\(path): too short for a safetensors file (\(b.count) bytes)") }
        let headerLen = b.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard headerLen <= UInt64(b.count - 8), headerLen < 100_000_000 else {
            throw FormatError("\(path): safetensors header length \(headerLen) exceeds the file (\(b.count) bytes); truncated or not safetensors")
        }
        let headerBytes = Data(b[8..<(8 + Int(headerLen))])
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw FormatError("\(path): safetensors header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLen)
        let dataLen = b.count - dataStart
        var entries: [String: StoredTensor] = [:]
        var order: [(String, Int)] = []
        var meta: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                for (k, v) in value as? [String: Any] ?? [:] { meta[k] = "\(v)" }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offs = info["data_offsets"] as? [Any], offs.count == 2 else {
                throw FormatError("\(path): tensor '\(name)' has a malformed header entry")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError("\(path): tensor '\(name)' has unsupported dtype \(dtypeName)")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let n = (v as? NSNumber)?.intValue, n >= 0 else { throw FormatError("\(path): tensor '\(name)' has a bad shape") }
                return n
            }
            guard let lo = (offs[0] as? NSNumber)?.intValue, let hi = (offs[1] as? NSNumber)?.intValue,
                  lo >= 0, hi >= lo, hi <= dataLen else {
                throw FormatError("\(path): tensor '\(name)' lies outside the file; truncated?")
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
            }
            guard !overflow, elements * dtype.byteSize == hi - lo else {
                throw FormatError("\(path): tensor '\(name)' needs \(shape) × \(dtype.byteSize) bytes but has \(hi - lo)")
            }
            let slice = UnsafeRawBufferPointer(rebasing: b[(dataStart + lo)..<(dataStart + hi)])
            entries[name] = StoredTensor(dtype: dtype, shape: shape, bytes: slice, owner: file)
            order.append((name, lo))
        }
        self.entries = entries
        self.names = order.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }.map(\.0)
        self.metadata = meta
    }

    public subscript(name: String) -> StoredTensor? { entries[name] }

    /// Widened to float32; throws naming the tensor when it is absent.
    public func tensor(_ name: String) throws -> Tensor {
        guard let s = entries[name] else { throw FormatError("\(path): no tensor named '\(name)'") }
        return s.toTensor()
    }

    public func allTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, v) in entries { out[k] = v.toTensor() }
        return out
    }
}

/// Writes safetensors. Tensors go in sorted-name order, as the reference writer does.
public enum SafeTensorsWriter {
    public struct Entry {
        public let dtype: DType
        public let shape: [Int]
        public let bytes: Data
        public init(dtype: DType, shape: [Int], bytes: Data) { self.dtype = dtype; self.shape = shape; self.bytes = bytes }
        public init(_ t: Tensor) {
            let c = t.contiguous()
            self.init(dtype: .f32, shape: c.shape, bytes: Data(bytes: c.data, count: c.count * 4))
        }
        public init(_ s: StoredTensor) {
            self.init(dtype: s.dtype, shape: s.shape, bytes: Data(s.bytes))
        }
    }

    public static func encode(_ tensors: [String: Entry], metadata: [String: String] = [:]) throws -> Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
            parts.append("\"__metadata__\":" + String(decoding: m, as: UTF8.self))
        }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let e = tensors[name]!
            let n = try JSONSerialization.data(withJSONObject: [name], options: [])
            let quoted = String(decoding: n, as: UTF8.self).dropFirst().dropLast()
            parts.append("\(quoted):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        header += parts.joined(separator: ",") + "}"
        // Pad with spaces so data starts 8-byte aligned, as the reference writer does.
        while (header.utf8.count % 8) != 0 { header += " " }
        var out = Data()
        var len = UInt64(header.utf8.count).littleEndian
        out.append(Data(bytes: &len, count: 8))
        out.append(header.data(using: .utf8)!)
        for name in names { out.append(tensors[name]!.bytes) }
        return out
    }

    /// Writes atomically: a temporary file beside `path`, renamed when complete.
    public static func write(_ tensors: [String: Entry], to path: String, metadata: [String: String] = [:]) throws {
        let data = try encode(tensors, metadata: metadata)
        try AtomicFile.write(data, to: path)
    }

    public static func write(tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        try write(tensors.mapValues { Entry($0) }, to: path, metadata: metadata)
    }
}
