import Foundation
import XCTest
import GuiseImage
import GuiseTestSupport

/// The image inputs the fuzzer failed on (Tests/Fixtures/fuzz/image-*), decoded as the harness
/// decodes them (1 MP limit): each must now give a result or the one-line error pinned here.
final class ImageFuzzRegressionTests: XCTestCase {
    static let expected: [String: String] = [
        // A 4102×6 TIFF declaring 8299 rows per strip: OpenCV allocated the whole strip (130 MB
        // from a 200-byte file) before reading any pixels.
        "image-tiff-strip-taller-than-the-image.tif": "corrupt TIFF (strips of 4102x8299 pixels for a 4102x6 image)",
        // A TIFF giving its height twice (65534, then 12): the header check took the last, libtiff
        // the first, and OpenCV allocated 4101×65534 pixels (256 MB).
        "image-tiff-height-given-twice.tif": "corrupt TIFF (tag 257 repeated or not a single SHORT or LONG)",
        // A 5×4 tiled TIFF declaring 5392710-row tiles and no tile width: OpenCV took the image's
        // width for the tile's and allocated 5×5392710 pixels (103 MB).
        "image-tiff-tile-without-width.tif": "corrupt TIFF (tiles of 5x5392710 pixels for a 5x4 image)",
    ]

    func testCrashInputsNowGiveOneLineErrors() throws {
        let dir = fixtureDirectory + "/fuzz"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("image-") }.sorted()
        XCTAssertEqual(Set(files), Set(Self.expected.keys), "every crash input has its expected outcome, and every outcome its file")
        for name in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
            let want = try XCTUnwrap(Self.expected[name])
            do {
                _ = try ImageIO.decode(data, maxPixels: 1 << 20)
                XCTAssertEqual(want, "", "\(name) decoded")
            } catch let e as ImageError {
                XCTAssertTrue(e.message.contains(want) && !want.isEmpty, "\(name): \(e.message)")
                XCTAssertFalse(e.message.contains("\n"), name)
            }
        }
    }

    /// Strips and tiles up to the image's own size (or 1 MP) still decode: a 6-row image written
    /// with 8 rows per strip, as some writers do, and a tiled layout's usual 256×256 tiles.
    func testOrdinaryStripsAndTilesAreAccepted() throws {
        for (rows, tiles) in [(8, false), (0xFFFF_FFFF, false), (256, true)] {
            var bytes = tiff(width: 5, height: 6, rowsPerStrip: rows, tiled: tiles)
            XCTAssertNoThrow(try ImageIO.decode(Data(bytes), maxPixels: 1 << 20), "rows per strip \(rows), tiled \(tiles)")
            bytes = tiff(width: 5, height: 6, rowsPerStrip: tiles ? 2048 : 300_000, tiled: tiles)
            XCTAssertThrowsError(try ImageIO.decode(Data(bytes), maxPixels: 1 << 20), "rows per strip 300000, tiled \(tiles)") { e in
                XCTAssertTrue("\(e)".contains("corrupt TIFF"), "\(e)")
            }
        }
    }

    /// An uncompressed grey TIFF, one strip (or one square tile of side `rowsPerStrip`).
    func tiff(width: Int, height: Int, rowsPerStrip: Int, tiled: Bool) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let side = rowsPerStrip
        let pixels = [UInt8](repeating: 90, count: tiled ? side * side : width * height)
        var entries: [(Int, Int, Int)] = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1)]
        if tiled {
            entries += [(277, 3, 1), (322, 3, side), (323, 3, side), (324, 4, 0), (325, 4, pixels.count)]
        } else {
            entries += [(273, 4, 0), (277, 3, 1), (278, 4, rowsPerStrip), (279, 4, pixels.count)]
        }
        let dataAt = 8 + 2 + 12 * entries.count + 4
        var out: [UInt8] = Array("II".utf8) + u16(42) + u32(8) + u16(entries.count)
        for (tag, type, value) in entries.sorted(by: { $0.0 < $1.0 }) {
            let v = tag == 273 || tag == 324 ? dataAt : value
            out += u16(tag) + u16(type) + u32(1) + (type == 3 ? u16(v) + u16(0) : u32(v))
        }
        return out + u32(0) + pixels
    }
}
