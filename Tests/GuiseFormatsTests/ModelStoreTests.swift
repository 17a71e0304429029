import Foundation
import XCTest
@testable import GuiseFormats

/// Model files may be symlinks (a shared cache, a second checkout): they are judged by the
/// file they point at, and a dangling link is a missing file.
final class ModelStoreTests: XCTestCase {
    func testSymlinkedModelFilesAreJudgedByTheirTarget() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guise-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bytes = Data((0..<1000).map { UInt8($0 % 251) })
        let real = dir.appendingPathComponent("real.bin")
        try bytes.write(to: real)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("linked.bin").path, withDestinationPath: real.path)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("dangling.bin").path,
                                                   withDestinationPath: dir.appendingPathComponent("nowhere.bin").path)
        func entry(_ name: String) -> String {
            #"{"name": "\#(name)", "role": "test", "source": "s", "path": "p", "size": 1000, "sha256": "\#(bytes.withUnsafeBytes { SHA256.hex($0) })", "licence": "MIT"}"#
        }
        let manifest = #"{"sources": {"s": {"kind": "wheel", "package": "x"}}, "files": [\#(entry("linked.bin")), \#(entry("dangling.bin"))]}"#
        try Data(manifest.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        let store = try ModelStore(directory: dir.path)
        let linked = try XCTUnwrap(store.manifest.files.first { $0.name == "linked.bin" })
        let dangling = try XCTUnwrap(store.manifest.files.first { $0.name == "dangling.bin" })
        guard case .installed = store.status(of: linked) else { return XCTFail("linked: \(store.status(of: linked))") }
        guard case .ok = try store.verify(linked) else { return XCTFail("linked content") }
        guard case .missing = store.status(of: dangling) else { return XCTFail("dangling: \(store.status(of: dangling))") }
    }

    /// A file of the right size with one byte changed is refused at load, in one line that
    /// names the file, the sha256 and how to fetch it again; the project-trained prior says
    /// how to restore it instead. Each file is hashed once while it stays unchanged.
    func testContentMismatchIsRefusedAtLoadAndHashedOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guise-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("prior"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bytes = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let digest = bytes.withUnsafeBytes { SHA256.hex($0) }
        func entry(_ name: String, _ source: String) -> String {
            #"{"name": "\#(name)", "role": "test", "source": "\#(source)", "path": "p", "size": 5000, "sha256": "\#(digest)", "licence": "MIT"}"#
        }
        let manifest = #"{"sources": {"s": {"kind": "wheel", "package": "x"}}, "files": [\#(entry("net.bin", "s")), \#(entry("prior/p.bin", "project"))]}"#
        try Data(manifest.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        let net = dir.appendingPathComponent("net.bin"), prior = dir.appendingPathComponent("prior/p.bin")
        try bytes.write(to: net)
        try bytes.write(to: prior)
        let store = try ModelStore(directory: dir.path)

        let before = ContentDigests.shared.hashed
        XCTAssertEqual(try store.installedPath("net.bin"), net.path)
        XCTAssertEqual(try store.installedPath("net.bin"), net.path)
        XCTAssertEqual(ContentDigests.shared.hashed - before, 1, "a file loaded twice is hashed once")

        var flipped = bytes
        flipped[2500] ^= 0x01
        for (url, name, remedy) in [(net, "net.bin", "make models"), (prior, "prior/p.bin", "git checkout -- Models/prior/p.bin")] {
            try flipped.write(to: url)
            XCTAssertThrowsError(try store.installedPath(name)) { e in
                guard let e = e as? FormatError else { return XCTFail("\(e)") }
                XCTAssertEqual(e.category, .model)
                for part in [url.path, "sha256", remedy] { XCTAssertTrue(e.message.contains(part), e.message) }
                XCTAssertFalse(e.message.contains("\n"))
            }
        }
        // Put right again (a new modification time): hashed again and accepted.
        try bytes.write(to: net)
        XCTAssertEqual(try store.installedPath("net.bin"), net.path)
    }
}

