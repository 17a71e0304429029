import XCTest
@testable import GuiseFormats
import GuiseTestSupport

/// Whole pickled models read as module records (TorchCheckpoint.pickledModule).
final class TorchModuleTests: XCTestCase {
    /// Every pickled-model fixture: the records give the same tensors, bytes and names as the
    /// state-dict reader, in both formats, shared submodules included.
    func testRecordsNameTheSameTensorsAsTheStateDict() throws {
        for name in ["pickled_module", "pickled_module_legacy", "pickled_shared_module"] {
            let path = try fixturePath(name + ".pt")
            var m = try XCTUnwrap(try TorchCheckpoint.pickledModule(path: path), name)
            if m.name == "DataParallel", let inner = m["module"] { m = inner }
            let (tensors, modules) = try m.flattened()
            let c = try Checkpoint(path: path)
            XCTAssertEqual(tensors.map(\.0), c.names, name)
            for (n, t) in tensors {
                XCTAssertEqual(Array(t.bytes), Array(c.tensors[n]!.bytes), "\(name): \(n)")
            }
            XCTAssertEqual(modules.first?.0, "", name)
        }
        let shared = try XCTUnwrap(try TorchCheckpoint.pickledModule(path: try fixturePath("pickled_shared_module.pt")))
        XCTAssertTrue(shared["a"] === shared["b"], "a module used twice is one record")
        XCTAssertEqual(shared.className, "torch.nn.modules.container.ModuleDict")
        XCTAssertEqual(shared["a"]?.attributes["in_features"], .int(2))
    }

    func testStateDictsHoldNoModule() throws {
        for name in ["zip_dtypes", "legacy_dtypes", "state_dict_module_prefix", "nested_model_state_dict"] {
            XCTAssertNil(try TorchCheckpoint.pickledModule(path: try fixturePath(name + ".pt")), name)
        }
    }

    func testHostileStructuresAreRefused() throws {
        XCTAssertThrowsError(try TorchCheckpoint.pickledModule(path: try fixturePath("arcface_module_loop.pt"))) { e in
            XCTAssertTrue("\(e)".contains("a pickled module contains itself"), "\(e)")
        }
        // Building the records is linear in the file; only naming every path through the web
        // multiplies, and that stops at the limit.
        let web = try XCTUnwrap(try TorchCheckpoint.pickledModule(path: try fixturePath("arcface_module_web.pt")))
        XCTAssertThrowsError(try web.flattened()) { e in
            XCTAssertTrue("\(e)".contains("names more than 65536 tensors and submodules"), "\(e)")
        }
        // Code in a pickle is refused before any module is looked for.
        XCTAssertThrowsError(try TorchCheckpoint.pickledModule(path: try fixturePath("hostile_zip.pt"))) { e in
            XCTAssertTrue("\(e)".contains("refusing to call"), "\(e)")
        }
    }
}
