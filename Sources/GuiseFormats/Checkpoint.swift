import Foundation
import GuiseTensor
#if canImport(Glibc)
import Glibc
#endif

public enum CheckpointFormat: String, Sendable {
    case safetensors
    case torchZip = "pytorch-zip"
    case torchLegacy = "pytorch-legacy"
}

/// Any weight file Guise reads, as a flat state dict. The format is told by content, not by name:
/// a zip archive or a pickle is a PyTorch checkpoint, a length-prefixed JSON header is safetensors.
public struct Checkpoint {
    public let path: String
    public let format: CheckpointFormat
    /// Tensor names in file order.
    public let names: [String]
    public let tensors: [String: StoredTensor]

    /// `select` and `stripModulePrefix` apply to PyTorch checkpoints (see `TorchCheckpoint`).
    public init(path: String, select: String? = nil, stripModulePrefix: Bool = true) throws {
        self.path = path
        if try Self.isSafeTensors(path) {
            if let select { throw FormatError("\(path): a safetensors file is already flat; cannot select '\(select)'") }
            let st = try SafeTensorsFile(path: path)
            format = .safetensors
            names = st.names
            var t: [String: StoredTensor] = [:]
            for n in st.names { t[n] = st[n] }
            tensors = t
        } else {
            let pt = try TorchCheckpoint(path: path, select: select, stripModulePrefix: stripModulePrefix)
            format = pt.format
            names = pt.names
            tensors = pt.tensors
        }
    }

    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.count } }

    public subscript(name: String) -> StoredTensor? { tensors[name] }

    /// Widened to float32; throws naming the tensor when it is absent.
    public func tensor(_ name: String) throws -> Tensor {
        guard let s = tensors[name] else { throw FormatError("\(path): no tensor named '\(name)'") }
        return s.toTensor()
    }

    /// Whether the file is judged to be safetensors (else it goes to the PyTorch reader).
    public static func isSafeTensors(_ path: String) throws -> Bool {
        let m = try MappedFile(path: path)
        return withExtendedLifetime(m) { looksLikeSafeTensors(m.bytes) }
    }

    private static func looksLikeSafeTensors(_ b: UnsafeRawBufferPointer) -> Bool {
        guard b.count >= 9 else { return false }
        // Pickles open with PROTO (0x80), zip archives with "PK"; anything else whose header
        // text starts with "{" is judged as safetensors, so a bad header length is reported
        // by the safetensors reader rather than as "not a PyTorch checkpoint".
        if b[0] == 0x80 || (b[0] == UInt8(ascii: "P") && b[1] == UInt8(ascii: "K")) { return false }
        var i = 8
        while i < min(b.count, 4096), [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
        return i < b.count && b[i] == UInt8(ascii: "{")
    }
}

extension SafeTensorsWriter {
    /// Streams stored tensors, bytes unchanged, into a temporary file beside `path` and renames it
    /// into place at the end: a failure leaves neither a partial file nor a clobbered old one.
    /// Nothing is copied in memory, so multi-gigabyte checkpoints convert in constant memory.
    public static func write(stored: [String: StoredTensor], to path: String, metadata: [String: String] = [:]) throws {
        let names = stored.keys.sorted()
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
            parts.append("\"__metadata__\":" + String(decoding: m, as: UTF8.self))
        }
        var offset = 0
        for name in names {
            let t = stored[name]!
            let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [name]), as: UTF8.self).dropFirst().dropLast()
            parts.append("\(quoted):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        var header = "{" + parts.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }  // data starts 8-byte aligned

        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw FormatError("\(path): output folder \(dir) does not exist")
        }
        let tmp = dir + "/.\(url.lastPathComponent).partial-\(getpid())"
        guard let f = fopen(tmp, "wb") else {
            throw FormatError("\(path): cannot write (\(String(cString: strerror(errno))))")
        }
        var ok = true
        func put(_ p: UnsafeRawPointer?, _ n: Int) {
            guard ok, n > 0, let p else { return }
            ok = fwrite(p, 1, n, f) == n
        }
        var len = UInt64(header.utf8.count).littleEndian
        put(&len, 8)
        var h = Array(header.utf8)
        put(&h, h.count)
        for name in names { let b = stored[name]!.bytes; put(b.baseAddress, b.count) }
        ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0
        let err = errno
        ok = fclose(f) == 0 && ok
        guard ok else {
            unlink(tmp)
            throw FormatError("\(path): cannot write (\(String(cString: strerror(err))))")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw FormatError("\(path): cannot move the finished file into place")
        }
    }
}
