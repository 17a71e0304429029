/// A bounds-checked view of FlatBuffers bytes, enough for the TFLite schema.
///
/// FlatBuffers layout (little-endian): the buffer starts with a u32 offset to the root table.
/// A table starts with an i32 `soffset`; `table − soffset` is its vtable: u16 vtable size,
/// u16 table size, then one u16 per field (0 = absent, else the field's offset in the table).
/// Reference fields (tables, vectors, strings) hold a u32 offset relative to the field itself.
/// A vector is a u32 count followed by its elements; a string is a byte vector plus a NUL.
/// Every read here checks its range and throws a `FormatError` naming the offset, so a
/// truncated or corrupted file can never read outside the mapping.
struct FlatBuffer {
    let bytes: UnsafeRawBufferPointer
    let path: String

    func fail(_ what: String, _ offset: Int) -> FormatError {
        FormatError("\(path): malformed TFLite file: \(what) at offset \(offset)")
    }

    func check(_ offset: Int, _ size: Int, _ what: String) throws {
        guard offset >= 0, size >= 0, offset <= bytes.count - size else {
            throw fail("\(what) (\(size) bytes) lies outside the file (\(bytes.count) bytes)", offset)
        }
    }

    func load<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type, _ what: String) throws -> T {
        try check(offset, MemoryLayout<T>.size, what)
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Follows a u32 offset stored at `at`, relative to `at`.
    func follow(_ at: Int, _ what: String) throws -> Int {
        let rel = try load(at, UInt32.self, what)
        let target = at + Int(rel)
        try check(target, 4, what)
        return target
    }

    func root() throws -> FBTable {
        try table(at: try follow(0, "root table offset"), "root table")
    }

    func table(at pos: Int, _ what: String) throws -> FBTable {
        let soff = try load(pos, Int32.self, "\(what) vtable offset")
        let vt = pos - Int(soff)
        let vtSize = Int(try load(vt, UInt16.self, "\(what) vtable"))
        let objSize = Int(try load(vt + 2, UInt16.self, "\(what) vtable"))
        guard vtSize >= 4, vtSize % 2 == 0 else { throw fail("\(what) has a bad vtable size \(vtSize)", vt) }
        try check(vt, vtSize, "\(what) vtable")
        guard objSize >= 4 else { throw fail("\(what) has a bad table size \(objSize)", pos) }
        try check(pos, objSize, what)
        return FBTable(fb: self, pos: pos, vtable: vt, vtSize: vtSize, objSize: objSize, what: what)
    }
}

/// One table inside a `FlatBuffer`. Fields are addressed by their schema index.
struct FBTable {
    let fb: FlatBuffer
    let pos: Int
    let vtable: Int
    let vtSize: Int
    let objSize: Int
    let what: String

    /// Absolute offset of field `id`, or nil when the field is absent (then it takes its default).
    func field(_ id: Int, size: Int) throws -> Int? {
        let slot = 4 + 2 * id
        guard slot + 2 <= vtSize else { return nil }
        let rel = Int(try fb.load(vtable + slot, UInt16.self, "\(what) vtable"))
        guard rel != 0 else { return nil }
        guard rel + size <= objSize else { throw fb.fail("\(what) field \(id) lies outside its table", pos + rel) }
        return pos + rel
    }

    func scalar<T: FixedWidthInteger>(_ id: Int, _ type: T.Type, default d: T) throws -> T {
        guard let at = try field(id, size: MemoryLayout<T>.size) else { return d }
        return try fb.load(at, T.self, "\(what) field \(id)")
    }

    func float(_ id: Int, default d: Float) throws -> Float {
        guard let at = try field(id, size: 4) else { return d }
        return Float(bitPattern: try fb.load(at, UInt32.self, "\(what) field \(id)"))
    }

    func bool(_ id: Int) throws -> Bool { try scalar(id, UInt8.self, default: 0) != 0 }

    func table(_ id: Int, _ name: String) throws -> FBTable? {
        guard let at = try field(id, size: 4) else { return nil }
        return try fb.table(at: try fb.follow(at, "\(what).\(name)"), "\(what).\(name)")
    }

    /// A vector field: (offset of the first element, element count), with the elements range-checked.
    func vector(_ id: Int, elementSize: Int, _ name: String) throws -> (start: Int, count: Int)? {
        guard let at = try field(id, size: 4) else { return nil }
        let v = try fb.follow(at, "\(what).\(name)")
        let n = Int(try fb.load(v, UInt32.self, "\(what).\(name) length"))
        let (bytes, overflow) = n.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw fb.fail("\(what).\(name) has an impossible length \(n)", v) }
        try fb.check(v + 4, bytes, "\(what).\(name) (\(n) elements)")
        return (v + 4, n)
    }

    func ints<T: FixedWidthInteger>(_ id: Int, _ type: T.Type, _ name: String) throws -> [T]? {
        guard let (start, n) = try vector(id, elementSize: MemoryLayout<T>.size, name) else { return nil }
        return (0..<n).map { T(littleEndian: fb.bytes.loadUnaligned(fromByteOffset: start + $0 * MemoryLayout<T>.size, as: T.self)) }
    }

    func floats(_ id: Int, _ name: String) throws -> [Float]? {
        try ints(id, UInt32.self, name).map { $0.map(Float.init(bitPattern:)) }
    }

    func string(_ id: Int, _ name: String) throws -> String? {
        guard let (start, n) = try vector(id, elementSize: 1, name) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: fb.bytes[start..<(start + n)]), as: UTF8.self)
    }

    func tables(_ id: Int, _ name: String) throws -> [FBTable] {
        guard let (start, n) = try vector(id, elementSize: 4, name) else { return [] }
        return try (0..<n).map { i in
            let at = start + 4 * i
            return try fb.table(at: try fb.follow(at, "\(what).\(name)[\(i)]"), "\(name)[\(i)]")
        }
    }

    /// The bytes of a ubyte vector, as a slice of the mapping.
    func byteSlice(_ id: Int, _ name: String) throws -> UnsafeRawBufferPointer? {
        guard let (start, n) = try vector(id, elementSize: 1, name) else { return nil }
        return UnsafeRawBufferPointer(rebasing: fb.bytes[start..<(start + n)])
    }
}
