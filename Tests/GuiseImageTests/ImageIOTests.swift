import Foundation
import XCTest
@testable import GuiseImage
import GuiseTestSupport

func sample(_ name: String) throws -> String {
    let path = repoRoot + "/Samples/" + name
    guard FileManager.default.fileExists(atPath: path) else {
        throw ImageError("\(path) is missing: run `make samples`")
    }
    return path
}

/// Deterministic pseudo-random samples (a 64-bit LCG) so failures reproduce.
func samples<S: FixedWidthInteger & UnsignedInteger>(_ count: Int, seed: UInt64 = 1) -> [S] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return S(truncatingIfNeeded: state >> 33)
    }
}

func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

final class ImageIOTests: XCTestCase {
    /// Every PNG layout decodes to the stored samples and encodes back to the same file.
    func testPNGRoundTripsAreBitExact() throws {
        for channels in 1...4 {
            for depth in [8, 16] {
                let (w, h) = (37, 23)
                let image: Image
                let stored: [UInt16]
                if depth == 8 {
                    let s: [UInt8] = samples(w * h * channels, seed: UInt64(channels))
                    image = Image(interleaved: s, width: w, height: h, channels: channels)
                    stored = s.map(UInt16.init)
                } else {
                    let s: [UInt16] = samples(w * h * channels, seed: UInt64(channels))
                    image = Image(interleaved: s, width: w, height: h, channels: channels)
                    stored = s
                }
                let file = try ImageIO.encode(image, as: .png)
                let back = try ImageIO.decode(file)
                XCTAssertEqual(back.sourceFormat, PixelFormat(channels: channels, bitDepth: depth))
                let again: [UInt16] = depth == 8 ? back.interleaved8(channels: channels).map(UInt16.init) : back.interleaved16(channels: channels)
                XCTAssertTrue(again == stored, "\(channels) channels, \(depth)-bit")
                XCTAssertEqual(try ImageIO.encode(back, as: .png), file, "\(channels) channels, \(depth)-bit re-encode")
            }
        }
    }

    func testAstronautPNGSavesIdenticalPixels() throws {
        let image = try ImageIO.read(try sample("astronaut.png"))
        XCTAssertEqual(image.width, 512)
        XCTAssertEqual(image.height, 512)
        XCTAssertEqual(image.sourceFormat, PixelFormat(channels: 3, bitDepth: 8))
        let out = FileManager.default.temporaryDirectory.path + "/guise-astronaut-\(UUID().uuidString).png"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try ImageIO.write(image, to: out)
        let back = try ImageIO.read(out)
        XCTAssertTrue(back.interleaved8(channels: 3) == image.interleaved8(channels: 3))
    }

    func testCorruptAndTruncatedPNGGiveClearErrors() throws {
        let good = try bytes(try sample("astronaut.png"))
        var flipped = good
        flipped[good.count / 2] ^= 0xFF  // breaks an IDAT CRC
        let cases: [(Data, String)] = [
            (good.prefix(good.count / 2), "truncated"),
            (good.prefix(30), "truncated"),
            (flipped, "corrupt PNG"),
            (good.prefix(8) + Data(repeating: 7, count: 100), "corrupt PNG"),
        ]
        for (data, expected) in cases {
            XCTAssertThrowsError(try ImageIO.decode(data)) { error in
                let message = (error as? ImageError)?.message ?? ""
                XCTAssertTrue(message.contains(expected), "got: \(message)")
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    /// A valid PNG header declaring 100000 × 100000 pixels (30 GB as RGB) is refused before
    /// decoding; the libpng path refuses it too when the header check is bypassed.
    func testHugeDeclaredPNGIsRefusedBeforeAllocating() throws {
        var ihdr = Data("IHDR".utf8)
        for v: UInt32 in [100_000, 100_000] { withUnsafeBytes(of: v.bigEndian) { ihdr.append(contentsOf: $0) } }
        ihdr.append(contentsOf: [8, 2, 0, 0, 0])  // 8-bit RGB
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        withUnsafeBytes(of: UInt32(13).bigEndian) { png.append(contentsOf: $0) }
        png.append(ihdr)
        withUnsafeBytes(of: crc32(ihdr).bigEndian) { png.append(contentsOf: $0) }
        XCTAssertThrowsError(try ImageIO.decode(png)) { error in
            XCTAssertTrue("\(error)".contains("100000x100000"), "\(error)")
        }
        // Past the Swift header check, libpng's reader still refuses before allocating rows.
        XCTAssertThrowsError(try ImageIO.decode(png, maxPixels: Int.max)) { error in
            XCTAssertTrue("\(error)".contains("PNG"), "\(error)")
        }
    }

    /// Sizes whose pixel count does not fit an Int are refused by the header check itself,
    /// in one line and at once, whatever the decoder behind it would do.
    func testHeaderSizesThatOverflowArePlainlyRefused() throws {
        var ihdr = Data("IHDR".utf8)
        for v: UInt32 in [0xFFFF_FFFF, 0xFFFF_FFFF] { withUnsafeBytes(of: v.bigEndian) { ihdr.append(contentsOf: $0) } }
        ihdr.append(contentsOf: [8, 2, 0, 0, 0])
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        withUnsafeBytes(of: UInt32(13).bigEndian) { png.append(contentsOf: $0) }
        png.append(ihdr)
        withUnsafeBytes(of: crc32(ihdr).bigEndian) { png.append(contentsOf: $0) }

        // A TIFF whose first directory holds only ImageWidth and ImageLength as LONGs.
        var tiff = Data([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 2, 0])
        for tag: UInt16 in [256, 257] {
            for v: UInt16 in [tag, 4] { withUnsafeBytes(of: v.littleEndian) { tiff.append(contentsOf: $0) } }
            for v: UInt32 in [1, 0xFFFF_FFFF] { withUnsafeBytes(of: v.littleEndian) { tiff.append(contentsOf: $0) } }
        }
        tiff.append(contentsOf: [0, 0, 0, 0])

        func bmp(_ w: UInt32, _ h: UInt32) -> Data {
            var d = Data("BM".utf8)
            for v: UInt32 in [0, 0, 54, 40, w, h] { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
            d.append(contentsOf: [UInt8](repeating: 0, count: 28))
            return d
        }

        // An overflowing count is refused even with no pixel limit at all.
        let none = [ImageIO.defaultMaxPixels, Int.max], limit = [ImageIO.defaultMaxPixels]
        let cases: [(String, Data, String, [Int])] = [
            ("PNG", png, "4294967295x4294967295", none),
            ("TIFF", tiff, "4294967295x4294967295", none),
            ("BMP 2^31-1 square", bmp(0x7FFF_FFFF, 0x7FFF_FFFF), "2147483647x2147483647", limit),
            ("BMP all ones", bmp(0xFFFF_FFFF, 0xFFFF_FFFF), "empty size", none),
        ]
        for (label, data, expected, limits) in cases {
            for maxPixels in limits {
                // The message names the header's size, so the refusal came before any pixel
                // buffer was asked for.
                XCTAssertThrowsError(try ImageIO.decode(data, maxPixels: maxPixels), label) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains(expected), "\(label): \(text)")
                    XCTAssertFalse(text.contains("\n"), "\(label): \(text)")
                }
            }
        }
    }

    func testJPEGDecodesAndRejectsTruncatedOrCorruptFiles() throws {
        let image = try ImageIO.read(try sample("astronaut.png"))
        let jpeg = try ImageIO.encode(image, as: .jpeg, quality: 95)
        let back = try ImageIO.decode(jpeg)
        XCTAssertEqual(back.width, 512)
        XCTAssertEqual(back.height, 512)
        let meanError = zip(back.rgb, image.rgb).map { abs($0 - $1) }.reduce(0, +) / Float(image.rgb.count)
        XCTAssertLessThan(meanError, 0.02)

        XCTAssertThrowsError(try ImageIO.decode(jpeg.prefix(jpeg.count * 2 / 3))) { error in
            XCTAssertTrue("\(error)".contains("truncated JPEG"), "\(error)")
        }
        var badMarker = jpeg
        badMarker[2] = 0x00
        XCTAssertThrowsError(try ImageIO.decode(badMarker)) { XCTAssertTrue("\($0)".contains("corrupt JPEG"), "\($0)") }
        // A well-formed marker structure whose frame header libjpeg rejects (precision 0).
        var badFrame = jpeg
        let sof = try XCTUnwrap(findMarker(0xC0, in: jpeg))
        badFrame[sof + 4] = 0
        XCTAssertThrowsError(try ImageIO.decode(badFrame)) { error in
            XCTAssertTrue("\(error)".contains("not a readable image"), "\(error)")
        }
        // Garbage inside the entropy-coded data: libjpeg only warns and fills in grey; the
        // bridge turns its warning into an error.
        var garbled = jpeg
        let scan = try XCTUnwrap(findMarker(0xDA, in: jpeg)) + 200
        for k in stride(from: scan, to: scan + 3000, by: 7) { garbled[k] = k % 2 == 1 ? 0xFF : 0x13 }
        XCTAssertThrowsError(try ImageIO.decode(garbled)) { error in
            XCTAssertTrue("\(error)".contains("damaged image data (Corrupt JPEG data"), "\(error)")
        }
        // A JPEG frame declaring 60000 × 60000 is refused from its header.
        var huge = jpeg
        huge[sof + 5] = 0xEA; huge[sof + 6] = 0x60; huge[sof + 7] = 0xEA; huge[sof + 8] = 0x60
        XCTAssertThrowsError(try ImageIO.decode(huge)) { XCTAssertTrue("\($0)".contains("60000x60000"), "\($0)") }
    }

    /// EXIF orientation 6 ("rotate 90° clockwise to display") turns a 64×32 JPEG into 32×64.
    func testJPEGEXIFOrientationIsApplied() throws {
        var image = Image(width: 64, height: 32, red: 0, green: 0, blue: 0)
        for y in 0..<8 { for x in 0..<8 { image[x, y, 0] = 1 } }  // red top-left corner
        let plain = try ImageIO.encode(image, as: .jpeg)
        // APP1: "Exif\0\0", big-endian TIFF header, one IFD entry 0x0112 SHORT = 6.
        var tiff: [UInt8] = Array("MM".utf8) + [0, 42, 0, 0, 0, 8, 0, 1]
        tiff += [0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]
        let payload: [UInt8] = Array("Exif".utf8) + [0, 0] + tiff
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xFF)] + payload
        let rotated = Data(plain.prefix(2)) + Data(app1) + plain.dropFirst(2)
        let back = try ImageIO.decode(rotated)
        XCTAssertEqual(back.width, 32)
        XCTAssertEqual(back.height, 64)
        XCTAssertGreaterThan(back[28, 3, 0], 0.8, "the red corner moves to the top right")
        XCTAssertLessThan(back[3, 3, 0], 0.2)
    }

    func testOtherFormatsRoundTrip() throws {
        var rgb: [UInt8] = samples(29 * 17 * 4, seed: 9)
        // libwebp's lossless mode drops the colour of fully transparent pixels.
        for i in stride(from: 3, to: rgb.count, by: 4) { rgb[i] |= 1 }
        let image = Image(interleaved: rgb, width: 29, height: 17, channels: 4)
        for format in [ImageFileFormat.bmp, .tiff, .webp] {
            // OpenCV's WebP encoder is lossless for quality > 100.
            let back = try ImageIO.decode(try ImageIO.encode(image, as: format, quality: 101))
            let channels = format == .bmp ? 3 : 4
            XCTAssertTrue(back.interleaved8(channels: channels) == image.interleaved8(channels: channels), "\(format)")
        }
        let deep: [UInt16] = samples(29 * 17 * 3, seed: 5)
        let tiff16 = try ImageIO.decode(try ImageIO.encode(Image(interleaved: deep, width: 29, height: 17, channels: 3), as: .tiff))
        XCTAssertEqual(tiff16.sourceFormat?.bitDepth, 16)
        XCTAssertTrue(tiff16.interleaved16(channels: 3) == deep)
    }

    func testFileErrorsAreOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.path
        XCTAssertThrowsError(try ImageIO.read(dir + "/does-not-exist.png")) { XCTAssertTrue("\($0)".hasSuffix("no such file")) }
        let text = dir + "/guise-\(UUID().uuidString).png"
        try Data("hello".utf8).write(to: URL(fileURLWithPath: text))
        defer { try? FileManager.default.removeItem(atPath: text) }
        XCTAssertThrowsError(try ImageIO.read(text)) { XCTAssertTrue("\($0)".contains("not a supported image"), "\($0)") }
        let image = Image(width: 4, height: 4, red: 1, green: 0, blue: 0)
        XCTAssertThrowsError(try ImageIO.write(image, to: dir + "/no-such-folder-\(UUID().uuidString)/x.png")) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
    }
}

func findMarker(_ marker: UInt8, in data: Data) -> Int? {
    (0..<(data.count - 1)).first { data[$0] == 0xFF && data[$0 + 1] == marker }
}

func crc32(_ data: Data) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
