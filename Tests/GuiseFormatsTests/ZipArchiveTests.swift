import Foundation
import XCTest
@testable import GuiseFormats

/// The ZIP reader's checks, each on a small archive built here with one thing wrong: every
/// offset, count and size is checked against the file and against the other records before
/// any entry is read, and each refusal is one line naming the problem.
final class ZipArchiveTests: XCTestCase {
    struct Member {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
        var flags: UInt16 = 0
    }

    /// A stored archive as torch.save lays it out (local header, name, data; then the directory
    /// and the end record), with hooks to damage the local headers, the directory entries and
    /// the end record before the offsets are filled in.
    static func archive(_ members: [Member], local: (Int, inout [UInt8]) -> Void = { _, _ in },
                        central: (Int, inout [UInt8]) -> Void = { _, _ in },
                        end: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var out: [UInt8] = [], dir: [UInt8] = []
        for (i, m) in members.enumerated() {
            let crc = m.data.withUnsafeBytes { CRC32.of($0) }
            let offset = UInt32(out.count)
            var h = u32(0x0403_4b50) + u16(20) + u16(m.flags) + u16(m.method) + u32(0) + u32(crc)
            h += u32(UInt32(m.data.count)) + u32(UInt32(m.data.count)) + u16(UInt16(m.name.utf8.count)) + u16(0)
            h += Array(m.name.utf8)
            local(i, &h)
            out += h + m.data
            var c = u32(0x0201_4b50) + u16(20) + u16(20) + u16(m.flags) + u16(m.method) + u32(0) + u32(crc)
            c += u32(UInt32(m.data.count)) + u32(UInt32(m.data.count)) + u16(UInt16(m.name.utf8.count))
            c += u16(0) + u16(0) + u16(0) + u16(0) + u32(0) + u32(offset) + Array(m.name.utf8)
            central(i, &c)
            dir += c
        }
        var e = u32(0x0605_4b50) + u16(0) + u16(0) + u16(UInt16(members.count)) + u16(UInt16(members.count))
        e += u32(UInt32(dir.count)) + u32(UInt32(out.count)) + u16(0)
        end(&e)
        return out + dir + e
    }

    static let pair = [Member(name: "a/data.pkl", data: Array("first entry".utf8)), Member(name: "a/data/0", data: [1, 2, 3, 4, 5, 6, 7, 8])]

    func open(_ bytes: [UInt8]) throws -> [String: [UInt8]] {
        try bytes.withUnsafeBytes { raw in
            let zip = try ZipArchive(path: "t.zip", bytes: raw)
            var out: [String: [UInt8]] = [:]
            for e in zip.entries { out[e.name] = Array(try zip.data(e)) }
            return out
        }
    }

    func assertRefused(_ bytes: [UInt8], _ mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try open(bytes), file: file, line: line) { e in
            let m = (e as? FormatError)?.message ?? "\(e)"
            XCTAssertTrue(m.contains(mentions) && m.hasPrefix("t.zip: damaged zip archive") && !m.contains("\n"), m, file: file, line: line)
        }
    }

    func testWellFormedArchiveReads() throws {
        let entries = try open(Self.archive(Self.pair))
        XCTAssertEqual(entries["a/data.pkl"], Array("first entry".utf8))
        XCTAssertEqual(entries["a/data/0"], [1, 2, 3, 4, 5, 6, 7, 8])
        // With data descriptors (flag bit 3) the local sizes and CRC may be zero, as torch writes them.
        let described = Self.archive(Self.pair.map { var m = $0; m.flags = 8; return m }, local: { _, h in
            for k in 14..<26 { h[k] = 0 }
        })
        XCTAssertEqual(try open(described)["a/data/0"], [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// A second local header hidden inside the first entry's data, with the directory pointing
    /// at both: each name matches its header, but the two entries share bytes.
    func testOverlappingEntriesAreRefused() {
        let inner = Self.archive([Self.pair[1]])
        let innerHeader = Array(inner[0..<(30 + 8 + 8)])
        var outer = Self.pair[0]
        outer.data = innerHeader
        let bytes = Self.archive([outer, Self.pair[1]], central: { i, c in
            guard i == 1 else { return }
            // Point the second entry at the copy inside the first entry's data.
            let at = UInt32(30 + outer.name.utf8.count)
            for k in 0..<4 { c[42 + k] = UInt8(truncatingIfNeeded: at >> (8 * UInt32(k))) }
        })
        assertRefused(bytes, "overlap")
    }

    func testLocalHeaderMustAgreeWithTheDirectory() {
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[8] = 8 } }), "disagrees on the method")
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[18] ^= 1 } }), "disagrees on the CRC or sizes")
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[14] ^= 1 } }), "disagrees on the CRC or sizes")
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[30] = UInt8(ascii: "b") } }), "names another entry")
        // A local name length that runs past the end of the file.
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[26] = 0xFF; h[27] = 0xFF } }), "names another entry")
    }

    func testSizesAndMethodsAreChecked() {
        // Stored with sizes that disagree; a compressed size that runs into the directory.
        assertRefused(Self.archive(Self.pair, central: { i, c in if i == 0 { c[20] ^= 1 } }), "sizes disagree")
        assertRefused(Self.archive(Self.pair, local: { i, h in if i == 1 { h[18] = 0x40; h[22] = 0x40 } },
                                   central: { i, c in if i == 1 { c[20] = 0x40; c[24] = 0x40 } }), "runs into the directory")
        // Methods other than stored and deflate; encryption.
        assertRefused(Self.archive(Self.pair.map { var m = $0; m.method = 12; return m }), "compression method 12")
        assertRefused(Self.archive(Self.pair.map { var m = $0; m.flags = 1; return m }), "encrypted")
        // A saturated 32-bit size with no ZIP64 field to give its value.
        assertRefused(Self.archive(Self.pair, central: { i, c in if i == 1 { for k in 20..<28 { c[k] = 0xFF } } }),
                      "lacks the ZIP64 values")
    }

    func testDirectoryAndEndRecordAreChecked() {
        // The end record counts one entry fewer than the directory holds.
        assertRefused(Self.archive(Self.pair, end: { e in e[8] = 1; e[10] = 1 }), "beyond its 1 entries")
        // A name of zero bytes.
        assertRefused(Self.archive([Member(name: "", data: [1])]), "has no name")
        // Multi-disk archives.
        assertRefused(Self.archive(Self.pair, end: { e in e[4] = 1 }), "multi-disk")
        assertRefused(Self.archive(Self.pair, end: { e in e[8] = 1 }), "multi-disk")
        // A comment longer than what follows the record.
        assertRefused(Self.archive(Self.pair, end: { e in e[20] = 5 }), "comment")
        // A directory that starts inside the end record.
        assertRefused(Self.archive(Self.pair, end: { e in e[16] = 0xF0 }), "central directory lies outside the file")
    }

    /// The archive with its end record saturated and a ZIP64 end record and locator before it.
    static func zip64(recordSize: UInt64 = 44, entries: UInt64 = 2) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var z = archive(pair, end: { e in for k in 8..<20 { e[k] = 0xFF } })
        let eocd = z.count - 22
        let dirOffset = (0..<eocd).first { z[$0..<($0 + 4)].elementsEqual([0x50, 0x4B, 0x01, 0x02]) }!
        var record = u32(0x0606_4b50) + u64(recordSize) + [45, 0, 45, 0] + u32(0) + u32(0) + u64(entries) + u64(entries)
        record += u64(UInt64(eocd - dirOffset)) + u64(UInt64(dirOffset))
        let locator = u32(0x0706_4b50) + u32(0) + u64(UInt64(eocd)) + u32(1)
        z.insert(contentsOf: record + locator, at: eocd)
        return z
    }

    func testZip64EndRecordIsChecked() throws {
        XCTAssertEqual(try open(Self.zip64())["a/data/0"], [1, 2, 3, 4, 5, 6, 7, 8])
        assertRefused(Self.zip64(recordSize: 200), "overlaps its locator")
        assertRefused(Self.zip64(recordSize: 10), "overlaps its locator")
        assertRefused(Self.zip64(entries: 1), "beyond its 1 entries")
        assertRefused(Self.zip64(entries: 3), "claims 3 entries")
    }

    /// The committed checkpoints, torch's layout with data descriptors and ZIP64 included, still read.
    func testTorchArchivesStillRead() throws {
        for name in ["zip_dtypes", "zip64_dtypes", "zip_views", "pickled_module"] {
            let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/\(name).pt").path
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertGreaterThan(try open(bytes).count, 3, name)
        }
    }
}
