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
/// compressed), so an entry's bytes are a slice of the mapping; deflated entries are listed but
/// their data is refused, and any other method refuses the archive. Sizes and offsets come from
/// the central directory (torch's local headers carry zeros and a data descriptor), ZIP64
/// included. Everything is checked when the archive is opened, before any entry is read: the
/// end records and the directory lie inside the file and before each other, every directory
/// entry and its extra fields lie inside the directory, saturated 32-bit fields have their
/// ZIP64 values, each local header agrees with its directory entry (name, method, and sizes
/// and CRC unless a data descriptor follows), every entry's data lies inside the file before
/// the directory, and no two entries overlap.
struct ZipArchive {
    struct Entry {
        let name: String
        let method: UInt16
        let crc32: UInt32
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
        /// Where the data starts: after the local header, its name and its extra field.
        let dataOffset: Int
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
        guard eocd + 22 + Int(f.u16(eocd + 20)) <= bytes.count else { throw bad("archive comment runs past the end of the file") }
        var count = Int(f.u16(eocd + 10))
        var dirSize = Int(f.u32(eocd + 12))
        var dirOffset = Int(f.u32(eocd + 16))
        // The directory must end before the record that locates it.
        var dirLimit = eocd
        if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the record points at the 64-bit record.
            let loc = eocd - 20
            guard f.has(loc, 20), f.u32(loc) == 0x0706_4b50 else { throw bad("ZIP64 locator missing") }
            guard f.u32(loc + 4) == 0, f.u32(loc + 16) <= 1 else { throw bad("multi-disk archives are not supported") }
            let rec64 = f.u64(loc + 8)
            guard rec64 < UInt64(bytes.count), f.has(Int(rec64), 56), f.u32(Int(rec64)) == 0x0606_4b50 else {
                throw bad("ZIP64 end record missing")
            }
            let r = Int(rec64)
            // The record's own size field counts the bytes after its first 12; it must end by the locator.
            guard r <= loc - 56, f.u64(r + 4) >= 44, f.u64(r + 4) <= UInt64(loc - r - 12) else {
                throw bad("ZIP64 end record overlaps its locator")
            }
            guard f.u32(r + 16) == 0, f.u32(r + 20) == 0, f.u64(r + 24) == f.u64(r + 32) else {
                throw bad("multi-disk archives are not supported")
            }
            guard f.u64(r + 32) < UInt64(Int.max), f.u64(r + 40) < UInt64(Int.max), f.u64(r + 48) < UInt64(Int.max) else {
                throw bad("ZIP64 sizes out of range")
            }
            count = Int(f.u64(r + 32)); dirSize = Int(f.u64(r + 40)); dirOffset = Int(f.u64(r + 48))
            dirLimit = r
        } else {
            guard f.u16(eocd + 4) == 0, f.u16(eocd + 6) == 0, f.u16(eocd + 8) == f.u16(eocd + 10) else {
                throw bad("multi-disk archives are not supported")
            }
        }
        guard f.has(dirOffset, dirSize), dirSize <= dirLimit - dirOffset else { throw bad("central directory lies outside the file") }
        // Each directory entry takes at least 46 bytes, which bounds the count before we reserve.
        guard count <= dirSize / 46 else { throw bad("central directory claims \(count) entries in \(dirSize) bytes") }

        var list: [Entry] = []
        list.reserveCapacity(count)
        var index: [String: Int] = [:]
        var q = dirOffset
        let dirEnd = dirOffset + dirSize
        for _ in 0..<count {
            guard dirEnd - q >= 46, f.u32(q) == 0x0201_4b50 else { throw bad("bad central directory entry at offset \(q)") }
            let flags = f.u16(q + 8)
            let method = f.u16(q + 10)
            let crc = f.u32(q + 16)
            var csize = UInt64(f.u32(q + 20))
            var usize = UInt64(f.u32(q + 24))
            let nameLen = Int(f.u16(q + 28)), extraLen = Int(f.u16(q + 30)), commentLen = Int(f.u16(q + 32))
            let diskStart = f.u16(q + 34)
            var local = UInt64(f.u32(q + 42))
            let nameAt = q + 46, extraAt = nameAt + nameLen
            guard nameLen + extraLen + commentLen <= dirEnd - nameAt else { throw bad("central directory entry overruns the directory") }
            guard nameLen > 0 else { throw bad("entry at offset \(q) has no name") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[nameAt..<extraAt]), as: UTF8.self) else {
                throw bad("entry name is not UTF-8")
            }
            let label = "entry '\(printable(name))'"
            guard flags & 0x41 == 0 else { throw bad("\(label) is encrypted") }
            guard method == 0 || method == 8 else { throw bad("\(label) uses compression method \(method); only stored and deflated entries exist in checkpoints") }
            // ZIP64 extra field (id 1): the 64-bit values, in order, for those saturated above.
            // Each saturated field must get its value: 0xFFFFFFFF is never a size or offset.
            var needs = [usize == 0xFFFF_FFFF, csize == 0xFFFF_FFFF, local == 0xFFFF_FFFF, diskStart == 0xFFFF]
            var seen64 = false
            var e = extraAt
            while extraAt + extraLen - e >= 4 {
                let id = f.u16(e), len = Int(f.u16(e + 2))
                guard len <= extraAt + extraLen - e - 4 else { throw bad("extra field overruns \(label)") }
                if id == 1 {
                    guard !seen64 else { throw bad("\(label) has two ZIP64 fields") }
                    seen64 = true
                    var v = e + 4
                    func next(_ width: Int) throws -> UInt64 {
                        guard width <= e + 4 + len - v else { throw bad("short ZIP64 field in \(label)") }
                        defer { v += width }
                        return width == 8 ? f.u64(v) : UInt64(f.u32(v))
                    }
                    if needs[0] { usize = try next(8); needs[0] = false }
                    if needs[1] { csize = try next(8); needs[1] = false }
                    if needs[2] { local = try next(8); needs[2] = false }
                    if needs[3] {
                        guard try next(4) == 0 else { throw bad("multi-disk archives are not supported") }
                        needs[3] = false
                    }
                }
                e += 4 + len
            }
            guard !needs.contains(true) else { throw bad("\(label) lacks the ZIP64 values its directory entry calls for") }
            guard diskStart == 0 || diskStart == 0xFFFF else { throw bad("multi-disk archives are not supported") }
            guard usize < UInt64(Int.max), csize < UInt64(Int.max), local < UInt64(Int.max) else {
                throw bad("\(label) has sizes out of range")
            }
            guard method != 0 || csize == usize else { throw bad("\(label) is stored but its sizes disagree (\(csize) and \(usize))") }
            // A repeated name would make the entry we read depend on the order: refuse it.
            guard index[name] == nil else { throw bad("\(label) appears twice") }

            // The local header must be this entry's: same name and method, and the same CRC and
            // sizes unless flag bit 3 says they follow the data (then they may be zero).
            let h = Int(local)
            guard f.has(h, 30), f.u32(h) == 0x0403_4b50 else { throw bad("\(label) has no local header at offset \(h)") }
            let localFlags = f.u16(h + 6)
            let localNameLen = Int(f.u16(h + 26)), localExtraLen = Int(f.u16(h + 28))
            guard f.has(h + 30, localNameLen + localExtraLen), localNameLen == nameLen,
                  UnsafeRawBufferPointer(rebasing: bytes[(h + 30)..<(h + 30 + nameLen)]).elementsEqual(
                      UnsafeRawBufferPointer(rebasing: bytes[nameAt..<extraAt])) else {
                throw bad("\(label): its local header names another entry")
            }
            guard f.u16(h + 8) == method, localFlags & 0x41 == 0 else { throw bad("\(label): local header disagrees on the method") }
            if localFlags & 0x08 == 0 {
                let lcsize = f.u32(h + 18), lusize = f.u32(h + 22)
                guard f.u32(h + 14) == crc,
                      lcsize == 0xFFFF_FFFF || UInt64(lcsize) == csize,
                      lusize == 0xFFFF_FFFF || UInt64(lusize) == usize else {
                    throw bad("\(label): local header disagrees on the CRC or sizes")
                }
            }
            let dataOffset = h + 30 + localNameLen + localExtraLen
            guard dataOffset <= dirOffset, Int(csize) <= dirOffset - dataOffset else {
                throw bad("\(label): data lies outside the file or runs into the directory; truncated?")
            }
            index[name] = list.count
            list.append(Entry(name: name, method: method, crc32: crc, compressedSize: Int(csize), size: Int(usize),
                              localHeaderOffset: h, dataOffset: dataOffset))
            q = extraAt + extraLen + commentLen
        }
        guard q == dirEnd else { throw bad("central directory has \(dirEnd - q) bytes beyond its \(count) entries") }
        // No two entries may share bytes: each local header starts at or after the end of the
        // data before it (a data descriptor may sit in between).
        let spans = list.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (a, b) in zip(spans, spans.dropFirst()) where b.localHeaderOffset < a.dataOffset + a.compressedSize {
            throw bad("entries '\(printable(a.name))' and '\(printable(b.name))' overlap")
        }
        entries = list
        self.index = index
    }

    func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The entry's bytes: a slice of the mapping (the bounds were checked when the archive opened).
    func data(_ e: Entry) throws -> UnsafeRawBufferPointer {
        guard e.method == 0 else {
            throw FormatError("\(path): zip entry '\(printable(e.name))' is compressed (method \(e.method)); only stored entries are supported, as torch.save writes them")
        }
        return UnsafeRawBufferPointer(rebasing: file.bytes[e.dataOffset..<(e.dataOffset + e.size)])
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
