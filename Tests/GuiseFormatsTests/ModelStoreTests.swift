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
}
