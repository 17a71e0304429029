import XCTest
@testable import GuiseFormats
import GuiseTensor
import GuiseTestSupport

final class TorchCheckpointTests: XCTestCase {
    static let checkpoints: [(String, CheckpointFormat)] = [
        ("zip_dtypes", .torchZip), ("legacy_dtypes", .torchLegacy), ("zip_half", .torchZip), ("legacy_half", .torchLegacy),
        ("zip_views", .torchZip), ("legacy_views", .torchLegacy), ("nested_model_state_dict", .torchZip),
        ("state_dict_module_prefix", .torchZip), ("pickled_module", .torchZip), ("pickled_module_legacy", .torchLegacy),
        ("dotted", .torchZip), ("zip_extras_p4", .torchZip), ("pickled_shared_module", .torchZip),
        ("legacy_py2_cuda", .torchLegacy), ("zip64_dtypes", .torchZip),
    ]

    func testCheckpointsMatchTorchBitForBit() throws {
        for (name, format) in Self.checkpoints {
            let c = try Checkpoint(path: try fixturePath(name + ".pt"))
            XCTAssertEqual(c.format, format, name)
            assertSameTensors(c.names, c.tensors, try fixture(name + ".expected"), name)
        }
    }

    func testConvertedSafetensorsAreBitIdentical() throws {
        for (name, _) in Self.checkpoints {
            let c = try Checkpoint(path: try fixturePath(name + ".pt"))
            let out = temporaryPath(name + ".safetensors")
            defer { unlink(out) }
            try SafeTensorsWriter.write(stored: c.tensors, to: out, metadata: ["format": "pt"])
            let back = try SafeTensorsFile(path: out)
            assertSameTensors(back.names, c.tensors, try fixture(name + ".expected"), name + " converted")
            XCTAssertEqual(back.metadata["format"], "pt")
        }
    }

    func testModuleNamesFollowStateDictOrder() throws {
        let c = try TorchCheckpoint(path: try fixturePath("pickled_module.pt"))
        // A module's own parameters and buffers come before its children's, as in torch's state_dict().
        XCTAssertEqual(c.names, ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                 "bn.running_var", "bn.num_batches_tracked", "head.1.weight"])
        XCTAssertNil(c["scratch"], "a non-persistent buffer is not part of the state dict")
    }

    func testSelectionAndPrefixOptions() throws {
        let kept = try TorchCheckpoint(path: try fixturePath("pickled_module.pt"), stripModulePrefix: false)
        XCTAssertTrue(kept.names.allSatisfy { $0.hasPrefix("module.") }, "\(kept.names)")
        let dp = try TorchCheckpoint(path: try fixturePath("state_dict_module_prefix.pt"), stripModulePrefix: false)
        XCTAssertNotNil(dp["module.conv.weight"])
        let opt = try TorchCheckpoint(path: try fixturePath("nested_model_state_dict.pt"), select: "optimizer_state_dict")
        XCTAssertNotNil(opt["state.0.momentum_buffer"], "\(opt.names)")
        XCTAssertThrowsError(try TorchCheckpoint(path: try fixturePath("nested_model_state_dict.pt"), select: "ema")) {
            XCTAssertTrue("\($0)".contains("no key 'ema'"), "\($0)")
        }
    }

    func testHostilePicklesAreRefusedWithoutSideEffect() throws {
        let marker = "/tmp/guise-pwned"
        unlink(marker)
        let cases = [
            ("hostile_os_system.pkl", "posix.system"), ("hostile_exec.pkl", "__builtin__.exec"),
            ("hostile_eval.pkl", "__builtin__.eval"), ("hostile_popen.pkl", "subprocess.Popen"),
            ("hostile_exec_p4.pkl", "builtins.exec"), ("hostile_getattr.pkl", "builtins.getattr"),
            ("hostile_inst.pkl", "os.system"), ("hostile_apply.pkl", "__builtin__.apply"),
            ("hostile_rebuild_from_type.pkl", "os.system"), ("hostile_zip.pt", "posix.system"),
            ("hostile_legacy.pt", "__builtin__.eval"), ("hostile_nested.pt", "__builtin__.exec"),
        ]
        for (file, callable) in cases {
            let path = try fixturePath(file)
            XCTAssertThrowsError(try Checkpoint(path: path), file) { e in
                // A protocol-0 pickle (hostile_inst.pkl) is no torch checkpoint, but is named for its callable too.
                XCTAssertEqual("\(e)", "\(path): refusing to call \(callable) (not on the allowlist)")
            }
            // The raw pickles are refused by the unpickler itself, not by a later magic-number check.
            if file.hasSuffix(".pkl") {
                let m = try MappedFile(path: path)
                XCTAssertThrowsError(try Unpickler(path: file, data: m.bytes).load(), file) {
                    XCTAssertTrue("\($0)".contains("refusing to call \(callable)"), "\($0)")
                }
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testMalformedCheckpointsGiveClearErrors() throws {
        let cases = [
            ("bad_huge_size.pt", "has an absurd size"), ("bad_overflow.pt", "has an absurd size"),
            ("bad_short_storage.pt", "holds 3 bytes but needs 16"), ("bad_deflated.pt", "is compressed (method 8)"),
        ]
        for (file, message) in cases {
            XCTAssertThrowsError(try Checkpoint(path: try fixturePath(file)), file) {
                XCTAssertTrue("\($0)".contains(message), "\(file): \($0)")
            }
        }
    }

    /// Reads a checkpoint from bytes in memory, so fuzzing needs no file per variant.
    private func read(_ bytes: [UInt8], _ check: (TorchCheckpoint) -> Void = { _ in }) throws {
        try bytes.withUnsafeBytes { raw in
            check(try TorchCheckpoint(path: "variant.pt", bytes: raw, owner: self))
        }
    }

    private func bytes(_ file: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath(file))))
    }

    /// Every prefix of a checkpoint is refused with a one-line error: never read as something else,
    /// never a crash.
    func testTruncatedFilesAreRefused() throws {
        for name in ["zip_views", "legacy_views", "pickled_module", "legacy_half", "pickled_module_legacy"] {
            let full = try bytes(name + ".pt")
            for cut in Array(stride(from: 0, to: full.count, by: max(1, full.count / 300))) + [full.count - 1] {
                XCTAssertThrowsError(try read(Array(full[0..<cut])), "\(name) cut at \(cut)") { e in
                    XCTAssertFalse("\(e)".contains("\n"), "one-line message")
                }
            }
        }
        // And through the file reader too.
        let out = temporaryPath("cut.pt")
        defer { unlink(out) }
        try Data(try bytes("zip_dtypes.pt").dropLast(100)).write(to: URL(fileURLWithPath: out))
        XCTAssertThrowsError(try Checkpoint(path: out)) { XCTAssertTrue("\($0)".contains("damaged zip archive"), "\($0)") }
    }

    /// Each byte of the zip's central directory flipped in turn (three ways): the reader either
    /// refuses the file or, where the byte carries nothing it uses (a time stamp, a storage's CRC),
    /// still reads exactly torch's values. It never crashes and never returns garbage.
    func testCorruptedCentralDirectoryNeverYieldsGarbage() throws {
        for name in ["zip_dtypes", "zip64_dtypes"] {
            let full = try bytes(name + ".pt")
            let expected = try fixture(name + ".expected")
            // The directory runs from its first entry's signature to the end of the file.
            let dirStart = try XCTUnwrap((0..<(full.count - 4)).first { full[$0..<($0 + 4)].elementsEqual([0x50, 0x4B, 0x01, 0x02]) })
            var refused = 0, b = full
            for i in dirStart..<full.count {
                for mask: UInt8 in [0x01, 0x5A, 0xFF] {
                    b[i] ^= mask
                    do {
                        try read(b) { c in assertSameTensors(c.names, c.tensors, expected, "\(name): flip \(mask) at \(i)") }
                    } catch {
                        refused += 1
                    }
                    b[i] ^= mask
                }
            }
            XCTAssertGreaterThan(refused, full.count - dirStart, name)
            // Specific fields must be caught: the first entry's signature, sizes and local-header offset.
            for i in [dirStart, dirStart + 20, dirStart + 24, dirStart + 42] {
                b[i] ^= 0x5A
                XCTAssertThrowsError(try read(b), "\(name): flip at \(i)")
                b[i] ^= 0x5A
            }
        }
    }

    /// Every byte of a zip's data.pkl flipped: the CRC check refuses them all.
    func testCorruptedZipPickleIsRefused() throws {
        let full = try bytes("pickled_module.pt")
        let start = 0x40  // torch pads the first local header so data.pkl starts at 64
        XCTAssertEqual(Array(full[start..<(start + 2)]), [0x80, 0x02])
        for i in stride(from: start, to: start + 2000, by: 3) {
            var b = full
            b[i] ^= 0x20
            XCTAssertThrowsError(try read(b), "flip at \(i)") { XCTAssertTrue("\($0)".contains("CRC"), "\($0)") }
        }
    }

    /// Flipped bytes anywhere in a legacy file (pickles and storage headers): refusal or a result,
    /// never a crash. Flips in raw tensor data cannot be detected in this format.
    func testCorruptedLegacyFileNeverCrashes() throws {
        for name in ["legacy_views", "pickled_module_legacy"] {
            var b = try bytes(name + ".pt")
            var refused = 0
            for i in stride(from: 0, to: b.count, by: b.count > 5000 ? 23 : 1) {
                for mask: UInt8 in [0x01, 0x80, 0xFF] {
                    b[i] ^= mask
                    do { try read(b) } catch { refused += 1 }
                    b[i] ^= mask
                }
            }
            XCTAssertGreaterThan(refused, 0)
        }
    }

    /// A legacy checkpoint around a hand-written main pickle (without storages).
    private func legacy(_ main: [UInt8]) throws -> [UInt8] {
        let legacy = try MappedFile(path: try fixturePath("legacy_half.pt"))
        // The first three pickles (magic, protocol, sys_info) are reused as they are.
        var pos = 0
        for _ in 0..<3 {
            let u = Unpickler(path: "x", data: legacy.bytes, at: pos)
            _ = try u.load()
            pos = u.pos
        }
        return [UInt8](legacy.bytes[0..<pos]) + main + [0x80, 0x02, 0x5D, 0x2E]  // ... and an empty key list
    }

    /// A 200 000-deep tuple: read and refused, no stack overflow (also not when it is released).
    func testDeepNestingIsRefused() throws {
        let b = try legacy([0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E])  // ((((),),),)...
        let out = temporaryPath("deep.pt")
        defer { unlink(out) }
        try Data(b).write(to: URL(fileURLWithPath: out))
        XCTAssertThrowsError(try Checkpoint(path: out)) { XCTAssertTrue("\($0)".contains("nests deeper"), "\($0)") }
    }

    /// A list inside itself reads as no tensors; 2^60 paths through shared tuples are refused
    /// after a bounded walk instead of running forever.
    func testCyclesAndSharedWebsTerminate() throws {
        try read(try legacy([0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E])) { XCTAssertEqual($0.names, []) }
        let web = try legacy([0x80, 0x02, 0x29] + Array([[UInt8]](repeating: [0x32, 0x86], count: 60).joined()) + [0x2E])
        XCTAssertThrowsError(try read(web)) { XCTAssertTrue("\($0)".contains("too large to walk"), "\($0)") }
    }

    func testEmptyTensorsWiden() throws {
        let c = try Checkpoint(path: try fixturePath("zip_dtypes.pt"))
        let e = try XCTUnwrap(c.tensors["empty"])
        XCTAssertEqual(e.shape, [0, 5])
        XCTAssertEqual(e.toTensor().shape, [0, 5])
        XCTAssertEqual(try c.tensor("i16").values, [-300, 300])
        XCTAssertThrowsError(try c.tensor("nope")) { XCTAssertTrue("\($0)".hasSuffix("no tensor named 'nope'")) }
    }

    func testUnpicklerRefusesAbsurdLengthsAndJunk() throws {
        let cases: [([UInt8], String)] = [
            ([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x61], "ends early"),          // BINUNICODE of 2 GB
            ([0x80, 0x04, 0x8D] + [UInt8](repeating: 0xFF, count: 8), "ends early"),   // BINUNICODE8
            ([0x80, 0x02, 0x8B, 0xFF, 0xFF, 0xFF, 0xFF], "ends early"),                // LONG4
            ([0x80, 0x02, 0xFF], "unknown pickle opcode 0xff"),
            ([0x80, 0x02, 0x61, 0x2E], "stack underflow"),                             // APPEND on nothing
            ([0x80, 0x02, 0x68, 0x07, 0x2E], "memo 7 unset"),
            ([0x80, 0x02, 0x4E, 0x29, 0x52, 0x2E], "refusing to call a computed value"), // None()
            ([0x80, 0x02, 0x5D, 0x4E, 0x4E, 0x73, 0x2E], "SETITEM on a non-dict"),
            ([0x80, 0x02, 0x82, 0x01], "extension registry"),
            ([0x80, 0x02, 0x7D], "ends early"),
        ]
        for (bytes, message) in cases {
            try bytes.withUnsafeBytes { raw in
                XCTAssertThrowsError(try Unpickler(path: "p", data: raw).load(), message) {
                    XCTAssertTrue("\($0)".contains(message), "\($0) lacks \(message)")
                }
            }
        }
    }

    /// Artefacts of modules pickled by old torch: the THNN backend getter and NEWOBJ torch.Size.
    func testOldTorchModuleArtefacts() throws {
        func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28]                                     // {
        p += [0x58, 8, 0, 0, 0] + ascii("_backend")                                   //  '_backend':
        p += ascii("ctorch.nn.backends.thnn\n_get_thnn_function_backend\n)R")        //   backend(),
        p += [0x58, 4, 0, 0, 0] + ascii("size")                                       //  'size':
        p += ascii("ctorch\nSize\n") + [0x4B, 2, 0x4B, 3, 0x86, 0x85, 0x81]         //   Size.__new__(Size, ((2, 3),))
        p += [0x75, 0x2E]                                                             // } (SETITEMS), STOP
        try p.withUnsafeBytes { raw in
            let u = Unpickler(path: "p", data: raw)
            let v = try u.load()
            let d = try XCTUnwrap(u.arena.node(v))
            guard case .opaque("torch.nn.backends.thnn._get_thnn_function_backend")? = u.arena.dictLookup(d, "_backend").flatMap(u.arena.node) else {
                return XCTFail("backend not read")
            }
            let size = try XCTUnwrap(u.arena.dictLookup(d, "size").flatMap(u.arena.items))
            XCTAssertEqual(size.count, 2)
        }
    }

    func testUnpicklerReadsPlainValues() throws {
        // {'a': [1, -2, 3.5, 'é', b'\x00', True, None, 2**70]} at protocol 4, written by Python.
        let hex = "80049532000000000000007d948c0161945d94284b014afeffffff47400c0000000000008c02c3a994430100948" +
                  "84e8a0900000000000000004065732e"
        var bytes: [UInt8] = []
        var it = hex.makeIterator()
        while let h = it.next(), let l = it.next() { bytes.append(UInt8(String([h, l]), radix: 16)!) }
        try bytes.withUnsafeBytes { raw in
            let u = Unpickler(path: "p", data: raw)
            let v = try u.load()
            guard let d = u.arena.node(v), let a = u.arena.dictLookup(d, "a"), let items = u.arena.items(a) else {
                return XCTFail("not a dict holding a list")
            }
            XCTAssertEqual(items.count, 8)
            if case .int(1) = items[0] {} else { XCTFail("\(items[0])") }
            if case .int(-2) = items[1] {} else { XCTFail("\(items[1])") }
            if case .float(3.5) = items[2] {} else { XCTFail("\(items[2])") }
            if case .string("é") = items[3] {} else { XCTFail("\(items[3])") }
            if case .bytes([0]) = items[4] {} else { XCTFail("\(items[4])") }
            if case .bool(true) = items[5] {} else { XCTFail("\(items[5])") }
            if case .none = items[6] {} else { XCTFail("\(items[6])") }
            if case .bigInt(let b) = items[7] { XCTAssertEqual(b, [0, 0, 0, 0, 0, 0, 0, 0, 0x40]) } else { XCTFail("\(items[7])") }
        }
    }
}
