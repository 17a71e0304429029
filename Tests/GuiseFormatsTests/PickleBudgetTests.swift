import XCTest
@testable import GuiseFormats
import GuiseTestSupport

/// Hostile pickles written byte by byte: each must be refused within a second, with one line
/// that names the problem and prints no raw control bytes.
final class PickleBudgetTests: XCTestCase {
    private func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// BINUNICODE of `s`.
    private func str(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        let n = UInt32(u.count)
        return [0x58, UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)] + u
    }

    /// torch._utils._rebuild_tensor_v2 of a one-element float storage '0', left on the stack.
    private var tensor: [UInt8] {
        var p = ascii("ctorch._utils\n_rebuild_tensor_v2\n") + [0x28]                // callable, MARK
        p += [0x28] + str("storage") + ascii("ctorch\nFloatStorage\n") + str("0") + str("cpu") + [0x4B, 1, 0x74, 0x51]
        p += [0x4B, 0, 0x4B, 1, 0x85, 0x4B, 1, 0x85, 0x89]                             // offset, (1,), (1,), False
        p += ascii("ccollections\nOrderedDict\n") + [0x29, 0x52]                      // OrderedDict()
        return p + [0x74, 0x52]                                                       // TUPLE, REDUCE
    }

    /// A legacy checkpoint around `main`; with `storage`, the file holds storage '0' as these
    /// float32 values, else it holds no storages.
    private func legacy(_ main: [UInt8], storage: [Float]? = nil) throws -> [UInt8] {
        let legacy = try MappedFile(path: try fixturePath("legacy_half.pt"))
        var pos = 0
        for _ in 0..<3 {  // magic, protocol version, sys_info, reused as they are
            let u = Unpickler(path: "x", data: legacy.bytes, at: pos)
            _ = try u.load()
            pos = u.pos
        }
        guard let storage else { return [UInt8](legacy.bytes[0..<pos]) + main + [0x80, 0x02, 0x5D, 0x2E] }
        var tail: [UInt8] = [0x80, 0x02, 0x5D] + str("0") + [0x61, 0x2E]             // ['0']
        tail += withUnsafeBytes(of: UInt64(storage.count).littleEndian) { Array($0) }
        tail += storage.withUnsafeBytes { Array($0) }
        return [UInt8](legacy.bytes[0..<pos]) + main + tail
    }

    /// A list web: level 0 is [t, t], level k is [level k-1, level k-1], so `levels` levels name
    /// the one tensor 2^levels times in a few bytes each; optionally inside `nesting` dicts
    /// {'model': {'model': ...}} that make the reader look for tensors at every level.
    private func web(levels: Int, nesting: Int) -> [UInt8] {
        var p: [UInt8] = [0x80, 0x02]
        for _ in 0..<nesting { p += [0x7D] + str("model") }                           // {'model': ... (open)
        p += tensor + [0x71, 0, 0x30]                                                 // BINPUT 0, POP
        for k in 0..<levels {
            p += [0x5D, 0x28, 0x68, UInt8(k), 0x68, UInt8(k), 0x65, 0x71, UInt8(k + 1), 0x30]  // [m[k], m[k]]
        }
        p += [0x68, UInt8(levels)]                                                    // the last level
        p += [UInt8](repeating: 0x73, count: nesting) + [0x2E]                        // SETITEM each, STOP
        return p
    }

    private func refusal(_ bytes: [UInt8], name: String = "hostile.pt", file: StaticString = #filePath,
                         line: UInt = #line) throws -> String {
        let out = temporaryPath(name)
        defer { unlink(out) }
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        // What bounds the work is the budget the message names, not a clock: wall time
        // depends on the machine, so it is not asserted here.
        var message = ""
        XCTAssertThrowsError(try Checkpoint(path: out), file: file, line: line) { message = "\($0)" }
        XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
        XCTAssertFalse(message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, message, file: file, line: line)
        XCTAssertTrue(message.hasPrefix(out + ": "), message, file: file, line: line)
        return message
    }

    func testSharedListWebUnderNestedDictsIsRefusedQuickly() throws {
        let b = try legacy(web(levels: 19, nesting: 150))
        XCTAssertLessThan(b.count, 4000)
        let m = try refusal(b)
        XCTAssertTrue(m.contains("names its tensors more than 16388 times"), m)
        // The file is at fault, not an installation: the CLI exits as for a bad input.
        try b.withUnsafeBytes { raw in
            XCTAssertThrowsError(try TorchCheckpoint(path: "web.pt", bytes: raw, owner: self)) {
                XCTAssertEqual(($0 as? FormatError)?.category, .input)
            }
        }
    }

    func testManyReferencesToOneTensorAreRefusedQuickly() throws {
        let m = try refusal(try legacy(web(levels: 19, nesting: 0)))
        XCTAssertTrue(m.contains("names its tensors more than 16388 times"), m)
        // A 2^60-path web stops at the same budget.
        let m60 = try refusal(try legacy(web(levels: 60, nesting: 3)))
        XCTAssertTrue(m60.contains("more than 16388 times"), m60)
    }

    func testSharedReferencesBelowTheBudgetKeepTheirNames() throws {
        // Eight names for one tensor, all listed (as torch names a shared module twice), all the
        // same bytes of the file.
        let b = try legacy(web(levels: 3, nesting: 1), storage: [1.5])
        try b.withUnsafeBytes { raw in
            let c = try TorchCheckpoint(path: "shared.pt", bytes: raw, owner: self)
            XCTAssertEqual(c.names, ["0.0.0", "0.0.1", "0.1.0", "0.1.1", "1.0.0", "1.0.1", "1.1.0", "1.1.1"])
            for n in c.names {
                XCTAssertEqual(c[n]?.toTensor().values, [1.5])
                XCTAssertEqual(c[n]?.bytes.baseAddress, c["0.0.0"]?.bytes.baseAddress, "a view, not a copy")
            }
        }
        // Without the storage, the error names the first tensor and the storage.
        let m = try refusal(try legacy(web(levels: 3, nesting: 1)))
        XCTAssertTrue(m.hasSuffix("tensor '0.0.0' refers to storage '0', which the file lacks; truncated?"), m)
    }

    func testTotalTensorBytesAreBudgeted() throws {
        // A view of 16 × 2^20 floats over a storage of 2^20 (stride 0 on the first axis): 64 MiB,
        // copied once however often it is named; named twice it is more than 4 × the file + 64 MiB.
        var t = ascii("ctorch._utils\n_rebuild_tensor_v2\n") + [0x28]
        t += [0x28] + str("storage") + ascii("ctorch\nFloatStorage\n") + str("0") + str("cpu") + [0x4A, 0, 0, 0x10, 0, 0x74, 0x51]
        t += [0x4B, 0, 0x4B, 16, 0x4A, 0, 0, 0x10, 0, 0x86, 0x4B, 0, 0x4B, 1, 0x86, 0x89]
        t += ascii("ccollections\nOrderedDict\n") + [0x29, 0x52, 0x74, 0x52]
        let p: [UInt8] = [0x80, 0x02, 0x5D, 0x28] + t + [0x32, 0x65, 0x2E]           // [t, t]
        let m = try refusal(try legacy(p, storage: [Float](repeating: 0.25, count: 1 << 20)))
        XCTAssertTrue(m.contains("tensors total more than"), m)
    }

    func testNestingBeyondTheLimitIsRefused() throws {
        var p: [UInt8] = [0x80, 0x02]
        for _ in 0..<300 { p += [0x7D] + str("x") }
        p += tensor + [UInt8](repeating: 0x73, count: 300) + [0x2E]
        let m = try refusal(try legacy(p))
        XCTAssertTrue(m.hasSuffix("checkpoint nests deeper than 200 levels"), m)
    }

    func testObjectAndMemoBudgets() throws {
        // OrderedDict(pairs) called again and again on one memoised list of 1000 pairs.
        var p: [UInt8] = [0x80, 0x02] + ascii("ccollections\nOrderedDict\n") + [0x71, 0, 0x5D, 0x28]
        for i in 0..<1000 { p += [0x4D, UInt8(i & 0xFF), UInt8(i >> 8), 0x4E, 0x86] }  // (i, None)
        p += [0x65, 0x85, 0x71, 1, 0x5D, 0x28]                                         // APPENDS, (pairs,), [
        for _ in 0..<5000 { p += [0x68, 0, 0x68, 1, 0x52] }                           // OrderedDict(*args)
        p += [0x65, 0x2E]
        let m = try refusal(try legacy(p))
        XCTAssertTrue(m.contains("pickle builds more than"), m)

        // Memo budget: a small limit so the test stays small.
        var q: [UInt8] = [0x80, 0x04, 0x4E]
        q += [UInt8](repeating: 0x94, count: 100) + [0x2E]                            // MEMOIZE × 100
        try q.withUnsafeBytes { raw in
            let arena = PickleArena()
            arena.limits.memo = 64
            XCTAssertThrowsError(try Unpickler(path: "p", data: raw, arena: arena).load()) {
                XCTAssertTrue("\($0)".contains("memo holds more than 64 entries"), "\($0)")
            }
        }
    }

    func testReEncodedStringsAreBudgeted() throws {
        // _codecs.encode of one memoised 60 KB string, 20 000 times: 1.2 GB asked of a 160 KB file.
        var p: [UInt8] = [0x80, 0x02] + ascii("c_codecs\nencode\n") + [0x71, 0]
        p += str(String(repeating: "a", count: 60_000)) + str("latin1") + [0x86, 0x71, 1, 0x5D, 0x28]
        for _ in 0..<20_000 { p += [0x68, 0, 0x68, 1, 0x52] }
        p += [0x65, 0x2E]
        let m = try refusal(try legacy(p))
        XCTAssertTrue(m.contains("bytes of strings"), m)
    }

    func testProtocolZeroPickleNamesItsCallable() throws {
        let m = try refusal(ascii("cos\nsystem\n(S'echo hi'\ntR."), name: "p0.pt")
        XCTAssertTrue(m.hasSuffix("refusing to call os.system (not on the allowlist)"), m)
        // Protocol 1 (binary, no PROTO header) too.
        let m1 = try refusal(ascii("cposix\nsystem\n") + [0x28] + str("echo hi") + [0x74, 0x52, 0x2E], name: "p1.pt")
        XCTAssertTrue(m1.hasSuffix("refusing to call posix.system (not on the allowlist)"), m1)
        // Bytes that are no pickle at all keep the plain answer.
        let junk = try refusal(ascii("hello, world\n"), name: "junk.pt")
        XCTAssertTrue(junk.hasSuffix("not a PyTorch checkpoint (neither a zip archive nor a pickle)"), junk)
    }

    func testNamesFromTheFileArePrintedEscaped() throws {
        let m = try refusal(ascii("cos\u{1b}[31m\nsys\0tem\n(S'echo hi'\ntR."), name: "esc.pt")
        XCTAssertTrue(m.hasSuffix("refusing to call os\\u{1b}[31m.sys\\u{0}tem (not on the allowlist)"), m)
        let p: [UInt8] = [0x80, 0x02, 0x7D] + str("w\u{1b}[31m\r") + tensor + [0x73, 0x2E]
        let k = try refusal(try legacy(p))
        XCTAssertTrue(k.contains("tensor 'w\\u{1b}[31m\\u{d}' refers to storage '0'"), k)
        XCTAssertEqual(printable("a\\b\u{202e}c\u{7f}é"), "a\\\\b\\u{202e}c\\u{7f}é")
        XCTAssertEqual(printable(String(repeating: "x", count: 300)).count, 201)
    }
}
