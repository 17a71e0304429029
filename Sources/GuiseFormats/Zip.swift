/// Little-endian reads at absolute offsets, each checked against the buffer first.
struct ByteView {
    let bytes: UnsafeRawBufferPointer

    func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    /// Callers check `has(offset, 2)` first.
    func u16(_ offset: Int) -> UInt16 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian }
    func u32(_ offset: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian }
    func u64(_ offset: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian }
}

/// The entries of a ZIP archive inside a mapped file. PyTorch writes every entry stored (not
/// compressed), so an entry's bytes are a slice of the mapping; compressed entries are refused.
/// Sizes and offsets come from the central directory (torch's local headers carry zeros and a
/// data descriptor), ZIP64 included; every one is checked against the file before use.
struct ZipArchive {
    struct Entry {
        let name: String
        let method: UInt16
        let crc32: UInt32
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
    }

    let path: String
    let file: ByteView
    let entries: [Entry]
    private let index: [String: Int]

    static func looksLikeZip(_ b: UnsafeRawBufferPointer) -> Bool {
        b.count >= 4 && ByteView(bytes: b).u32(0) == 0x0403_4b50
    }

    init(path: String, bytes: UnsafeRawBufferPointer) throws {
        self.path = path
        let f = ByteView(bytes: bytes)
        file = f
        func bad(_ why: String) -> FormatError { FormatError("\(path): damaged zip archive (\(why))") }

        // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB, at the end.
        var eocd = -1
        var p = bytes.count - 22
        while p >= 0 && p >= bytes.count - 22 - 0xFFFF {
            if f.u32(p) == 0x0605_4b50 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record; truncated?") }
        var count = Int(f.u16(eocd + 10))
        var dirSize = Int(f.u32(eocd + 12))
        var dirOffset = Int(f.u32(eocd + 16))
        if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the record points at the 64-bit record.
            let loc = eocd - 20
            guard f.has(loc, 20), f.u32(loc) == 0x0706_4b50 else { throw bad("ZIP64 locator missing") }
            let rec64 = f.u64(loc + 8)
            guard rec64 < UInt64(bytes.count), f.has(Int(rec64), 56), f.u32(Int(rec64)) == 0x0606_4b50 else {
                throw bad("ZIP64 end record missing")
            }
            let r = Int(rec64)
            guard f.u64(r + 32) < UInt64(Int.max), f.u64(r + 40) < UInt64(Int.max), f.u64(r + 48) < UInt64(Int.max) else {
                throw bad("ZIP64 sizes out of range")
            }
            count = Int(f.u64(r + 32)); dirSize = Int(f.u64(r + 40)); dirOffset = Int(f.u64(r + 48))
        }
        guard f.has(dirOffset, dirSize) else { throw bad("central directory lies outside the file") }
        // Each directory entry takes at least 46 bytes, which bounds the count before we reserve.
        guard count <= dirSize / 46 else { throw bad("central directory claims \(count) entries in \(dirSize) bytes") }

        var list: [Entry] = []
        list.reserveCapacity(count)
        var index: [String: Int] = [:]
        var q = dirOffset
        let dirEnd = dirOffset + dirSize
        for _ in 0..<count {
            guard q + 46 <= dirEnd, f.u32(q) == 0x0201_4b50 else { throw bad("bad central directory entry at offset \(q)") }
            let method = f.u16(q + 10)
            let crc = f.u32(q + 16)
            var csize = UInt64(f.u32(q + 20))
            var usize = UInt64(f.u32(q + 24))
            let nameLen = Int(f.u16(q + 28)), extraLen = Int(f.u16(q + 30)), commentLen = Int(f.u16(q + 32))
            var local = UInt64(f.u32(q + 42))
            let nameAt = q + 46, extraAt = nameAt + nameLen
            guard extraAt + extraLen + commentLen <= dirEnd else { throw bad("central directory entry overruns the directory") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[nameAt..<extraAt]), as: UTF8.self) else {
                throw bad("entry name is not UTF-8")
            }
            // ZIP64 extra field (id 1): the 64-bit values, in order, for those saturated above.
            var e = extraAt
            while e + 4 <= extraAt + extraLen {
                let id = f.u16(e), len = Int(f.u16(e + 2))
                guard e + 4 + len <= extraAt + extraLen else { throw bad("extra field overruns entry '\(printable(name))'") }
                if id == 1 {
                    var v = e + 4
                    func next() throws -> UInt64 {
                        guard v + 8 <= e + 4 + len else { throw bad("short ZIP64 field in entry '\(printable(name))'") }
                        defer { v += 8 }
                        return f.u64(v)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + len
            }
            guard usize < UInt64(Int.max), csize < UInt64(Int.max), local < UInt64(Int.max) else {
                throw bad("entry '\(printable(name))' has sizes out of range")
            }
            // A repeated name would make the entry we read depend on the order: refuse it.
            guard index[name] == nil else { throw bad("entry '\(printable(name))' appears twice") }
            index[name] = list.count
            list.append(Entry(name: name, method: method, crc32: crc, compressedSize: Int(csize), size: Int(usize),
                              localHeaderOffset: Int(local)))
            q = extraAt + extraLen + commentLen
        }
        entries = list
        self.index = index
    }

    func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The entry's bytes: a slice of the mapping, after checking the local header and the bounds.
    func data(_ e: Entry) throws -> UnsafeRawBufferPointer {
        func bad(_ why: String) -> FormatError { FormatError("\(path): damaged zip entry '\(printable(e.name))' (\(why))") }
        guard e.method == 0 else {
            throw FormatError("\(path): zip entry '\(printable(e.name))' is compressed (method \(e.method)); only stored entries are supported, as torch.save writes them")
        }
        guard e.compressedSize == e.size else { throw bad("stored sizes disagree") }
        let h = e.localHeaderOffset
        guard file.has(h, 30), file.u32(h) == 0x0403_4b50 else { throw bad("no local header at offset \(h)") }
        let nameLen = Int(file.u16(h + 26))
        // The local header repeats the name: a directory entry pointing at another entry's data fails here.
        guard file.has(h + 30, nameLen),
              UnsafeRawBufferPointer(rebasing: file.bytes[(h + 30)..<(h + 30 + nameLen)]).elementsEqual(e.name.utf8) else {
            throw bad("local header names another entry")
        }
        let start = h + 30 + nameLen + Int(file.u16(h + 28))
        guard file.has(start, e.size) else { throw bad("data lies outside the file; truncated?") }
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + e.size)])
    }
}

/// CRC-32 (IEEE), to check the small pickle entries.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func of(_ b: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in b { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
