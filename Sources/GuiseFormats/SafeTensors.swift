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
    /// Keeps the bytes the tensors view alive (the file's mapping).
    private let owner: AnyObject

    /// Accepts exactly what the reference reader accepts (Hugging Face's safetensors), bar
    /// dtypes Guise cannot widen: a header that is one JSON object with no repeated key,
    /// integer shapes and offsets whose byte sizes agree under checked arithmetic, and
    /// tensors that tile the data section from its first byte to its last with no overlap.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(bytes: file.bytes, path: path, owner: file)
    }

    /// Parses `bytes`, which `owner` keeps alive as long as any tensor read from them.
    public init(bytes b: UnsafeRawBufferPointer, path: String, owner: AnyObject) throws {
        self.owner = owner
        self.path = path
        func bad(_ why: String) -> FormatError { FormatError("\(path): \(why)", category: .input) }
        guard b.count >= 8 else { throw bad("too short for a safetensors file (\(b.count) bytes)") }
        let headerLen = b.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard headerLen <= UInt64(b.count - 8) else {
            throw bad("safetensors header length \(headerLen) exceeds the file (\(b.count) bytes); truncated or not safetensors")
        }
        guard headerLen <= 100_000_000 else { throw bad("safetensors header length \(headerLen) is over the 100 MB limit") }
        let dataStart = 8 + Int(headerLen)
        let header = UnsafeRawBufferPointer(rebasing: b[8..<dataStart])
        let fields: [(String, StrictJSON)]
        do {
            guard case .object(let o) = try StrictJSON.parse(header) else { throw bad("safetensors header is not a JSON object") }
            fields = o
        } catch let e as StrictJSON.ParseError {
            throw bad("safetensors header is not valid JSON (\(e.message))")
        }
        let dataLen = b.count - dataStart
        var entries: [String: StoredTensor] = [:]
        var spans: [(name: String, begin: Int, end: Int)] = []
        var meta: [String: String] = [:]
        for (name, value) in fields {
            let tensor = "tensor \(StrictJSON.quote(name))"
            if name == "__metadata__" {
                switch value {
                case .null: break
                case .object(let pairs):
                    for (k, v) in pairs {
                        guard case .string(let text) = v else {
                            throw bad("safetensors __metadata__ value for \(StrictJSON.quote(k)) is not a string")
                        }
                        meta[k] = text
                    }
                default: throw bad("safetensors __metadata__ is not an object of strings")
                }
                continue
            }
            guard case .object(let info) = value else { throw bad("\(tensor) has a header entry that is not an object") }
            func field(_ key: String) throws -> StrictJSON {
                guard let v = info.first(where: { $0.0 == key })?.1 else { throw bad("\(tensor) has no \(key)") }
                return v
            }
            guard case .string(let dtypeName) = try field("dtype") else { throw bad("\(tensor) has a dtype that is not a string") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError("\(path): \(tensor) has dtype \(StrictJSON.quote(dtypeName)), which Guise does not read (it reads "
                    + DType.allCases.map(\.rawValue).joined(separator: ", ") + ")", category: .unsupported)
            }
            guard case .array(let dims) = try field("shape") else { throw bad("\(tensor) has a shape that is not a list") }
            let shape = try dims.map { d -> Int in
                guard let n = d.nonNegativeInt else { throw bad("\(tensor) has a shape entry that is not a non-negative integer") }
                return n
            }
            guard case .array(let offs) = try field("data_offsets"), offs.count == 2,
                  let lo = offs[0].nonNegativeInt, let hi = offs[1].nonNegativeInt else {
                throw bad("\(tensor) has data_offsets that are not two non-negative integers")
            }
            guard lo <= hi else { throw bad("\(tensor) has data_offsets [\(lo), \(hi)] that run backwards") }
            guard hi <= dataLen else {
                throw bad("\(tensor) lies outside the file (bytes \(lo)..<\(hi) of a \(dataLen)-byte data section); truncated?")
            }
            var size = dtype.byteSize, overflow = false
            for d in shape where !overflow { (size, overflow) = size.multipliedReportingOverflow(by: d) }
            guard !overflow else { throw bad("\(tensor) of shape \(shape) has a byte size that overflows") }
            guard size == hi - lo else {
                throw bad("\(tensor) needs \(shape) × \(dtype.byteSize) = \(size) bytes but data_offsets give \(hi - lo)")
            }
            let slice = UnsafeRawBufferPointer(rebasing: b[(dataStart + lo)..<(dataStart + hi)])
            entries[name] = StoredTensor(dtype: dtype, shape: shape, bytes: slice, owner: owner)
            spans.append((name, lo, hi))
        }
        // The reference sorts by (begin, end) and requires each tensor to start where the
        // previous one ended and the last to end with the file: no overlap, gap or tail.
        spans.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        for s in spans {
            guard s.begin == covered else {
                throw bad(s.begin < covered
                    ? "tensor \(StrictJSON.quote(s.name)) overlaps the tensor before it (bytes \(s.begin)..<\(s.end), previous ends at \(covered))"
                    : "the data section has unused bytes \(covered)..<\(s.begin) before tensor \(StrictJSON.quote(s.name))")
            }
            covered = s.end
        }
        guard covered == dataLen else { throw bad("the data section has \(dataLen - covered) unused bytes after the last tensor") }
        self.entries = entries
        self.names = spans.map(\.name)
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

/// A JSON value read strictly (RFC 8259): objects keep their key order and may not repeat a
/// key, which Foundation's reader would silently merge. Numbers keep their text so integers
/// are told apart from `2.0` or `1e3`, which the reference reader refuses as sizes.
public indirect enum StrictJSON: Equatable {
    case object([(String, StrictJSON)])
    case array([StrictJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    public struct ParseError: Error { public let message: String }

    public static func == (a: StrictJSON, b: StrictJSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)), let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// The value as an Int when it is written as a plain non-negative integer that fits.
    var nonNegativeInt: Int? {
        guard case .number(let text) = self, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// A file-derived string made safe for a one-line message: escaped and shortened.
    public static func quote(_ s: String) -> String {
        "\"" + printable(s, max: 80) + "\""
    }

    /// Deeper nesting than this is refused rather than recursed into.
    static let maxDepth = 128

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> StrictJSON {
        var p = Parser(b: bytes)
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("unexpected text after the top-level value") }
        return v
    }

    private struct Parser {
        let b: UnsafeRawBufferPointer
        var i = 0

        func fail(_ why: String) -> ParseError { ParseError(message: "\(why) at byte \(i)") }
        func peek() -> UInt8? { i < b.count ? b[i] : nil }

        mutating func skipSpace() {
            while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws {
            guard peek() == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            i += 1
        }

        mutating func value(depth: Int) throws -> StrictJSON {
            guard depth < StrictJSON.maxDepth else { throw fail("nested more than \(StrictJSON.maxDepth) deep") }
            skipSpace()
            guard let c = peek() else { throw fail("unexpected end") }
            switch c {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(String, StrictJSON)] = []
                var keys = Set<String>()
                skipSpace()
                if peek() == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                while true {
                    skipSpace()
                    let key = try string()
                    guard keys.insert(key).inserted else { throw fail("the key \(StrictJSON.quote(key)) appears twice") }
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    pairs.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    if peek() == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return .object(pairs)
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [StrictJSON] = []
                skipSpace()
                if peek() == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if peek() == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func word(_ w: String) throws {
            for c in w.utf8 { try expect(c) }
        }

        func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }

        mutating func number() throws -> String {
            let start = i
            if peek() == UInt8(ascii: "-") { i += 1 }
            guard isDigit(peek()) else { throw fail("expected a value") }
            if peek() == UInt8(ascii: "0") { i += 1 } else { while isDigit(peek()) { i += 1 } }
            if peek() == UInt8(ascii: ".") {
                i += 1
                guard isDigit(peek()) else { throw fail("expected a digit after '.'") }
                while isDigit(peek()) { i += 1 }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                i += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
                guard isDigit(peek()) else { throw fail("expected a digit in the exponent") }
                while isDigit(peek()) { i += 1 }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let c = peek() else { throw fail("unexpected end in a \\u escape") }
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while true {
                guard let c = peek() else { throw fail("unterminated string") }
                i += 1
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard let e = peek() else { throw fail("unterminated string") }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\") else { throw fail("lone surrogate in a \\u escape") }
                        i += 1
                        try expect(UInt8(ascii: "u"))
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("lone surrogate in a \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("bad escape in a string")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
            return s
        }
    }
}
