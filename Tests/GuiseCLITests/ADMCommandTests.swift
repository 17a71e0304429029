import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
@testable import GuiseCLI
import GuiseTestSupport

/// `guise model run` and `guise sample` on the ADM fixtures of Tools/reference_adm.py.
final class ADMCommandTests: XCTestCase {
    func path(_ name: String) -> String { fixtureDirectory + "/" + name }

    func tempPath(_ name: String) -> String { temporaryPath("adm-" + name) }

    func testModelRunWritesOutputAndGradient() throws {
        let out = tempPath("run.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let cmd = try ModelRun.parse([path("adm_legacy.pt"), "--config", path("adm_legacy.json"),
                                      "--inputs", path("adm_legacy_io.safetensors"), "--out", out,
                                      "--grad-wrt", "x", "--grad-seed", path("adm_legacy_io.safetensors")])
        try cmd.run()
        let got = try SafeTensorsFile(path: out), ref = try SafeTensorsFile(path: path("adm_legacy_io.safetensors"))
        for (name, tol) in [("out", Float(1e-4)), ("grad_x", Float(1e-3))] {
            let a = try got.tensor(name).values, e = try ref.tensor(name).values
            let scale = max(1, e.map(abs).max() ?? 0)
            let err = zip(a, e).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err / scale, tol, name)
        }
        XCTAssertThrowsError(try ModelRun.parse([path("adm_legacy.pt"), "--inputs", "i", "--out", "o", "--grad-wrt", "x"]))
    }

    func testSampleIsSeededAndWritesPNGs() throws {
        let a = tempPath("a.png"), b = tempPath("b.png")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        for p in [a, b] {
            let cmd = try Sample.parse(["--model", path("adm_class.pt"), "--config", path("adm_class.json"),
                                        "--steps", "ddim4", "--seed", "7", "--class", "3", "--out", p, "--quiet"])
            try cmd.run()
        }
        let da = try Data(contentsOf: URL(fileURLWithPath: a)), db = try Data(contentsOf: URL(fileURLWithPath: b))
        XCTAssertEqual(Array(da.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG signature")
        XCTAssertEqual(da, db, "the same seed gives the same image")
        let bad = try Sample.parse(["--model", path("adm_id.pt"), "--config", path("adm_id.json"), "--out", a, "--quiet"])
        XCTAssertThrowsError(try bad.run())
    }
}
