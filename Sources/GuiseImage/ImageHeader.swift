/// The file formats Guise reads and writes. PNG goes through libpng, the others through OpenCV.
public enum ImageFileFormat: String, CaseIterable, Sendable {
    case png, jpeg, webp, bmp, tiff

    /// The format a file name's extension asks for, or nil.
    public init?(pathExtension ext: String) {
        switch ext.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "webp": self = .webp
        case "bmp": self = .bmp
        case "tif", "tiff": self = .tiff
        default: return nil
        }
    }

    var encoderExtension: String {
        switch self {
        case .png: ".png"
        case .jpeg: ".jpg"
        case .webp: ".webp"
        case .bmp: ".bmp"
        case .tiff: ".tif"
        }
    }
}

/// What a file's first bytes say: its format and declared size. Read cheaply from the
/// header, so that oversized images are refused before any decoder allocates pixels.
struct ImageHeader: Equatable {
    var format: ImageFileFormat
    var width: Int
    var height: Int

    /// width × height, or nil when the product does not fit an Int (a header may claim
    /// 4294967295×4294967295, and this module is built without overflow traps).
    var pixelCount: Int? {
        let (n, overflow) = width.multipliedReportingOverflow(by: height)
        return overflow ? nil : n
    }

    static func read(_ b: UnsafeRawBufferPointer) throws -> ImageHeader {
        func u8(_ i: Int) throws -> Int {
            guard i < b.count else { throw ImageError("the file is truncated") }
            return Int(b[i])
        }
        func be16(_ i: Int) throws -> Int { try u8(i) << 8 | u8(i + 1) }
        func le16(_ i: Int) throws -> Int { try u8(i) | u8(i + 1) << 8 }
        func be32(_ i: Int) throws -> Int { try be16(i) << 16 | be16(i + 2) }
        func le32(_ i: Int) throws -> Int { try le16(i) | le16(i + 2) << 16 }
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            b.count >= offset + magic.count && magic.indices.allSatisfy { b[offset + $0] == magic[$0] }
        }

        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            // The IHDR chunk must come first: length, "IHDR", width, height.
            guard starts(Array("IHDR".utf8), at: 12) else { throw ImageError("corrupt PNG (no IHDR chunk)") }
            return ImageHeader(format: .png, width: try be32(16), height: try be32(20))
        }
        if starts([0xFF, 0xD8]) { return try jpeg(b, be16: be16, u8: u8) }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) {
            guard try le32(4) + 8 <= b.count else { throw ImageError("truncated WebP") }
            if starts(Array("VP8 ".utf8), at: 12) {
                guard starts([0x9D, 0x01, 0x2A], at: 23) else { throw ImageError("corrupt WebP (bad VP8 frame)") }
                return ImageHeader(format: .webp, width: try le16(26) & 0x3FFF, height: try le16(28) & 0x3FFF)
            }
            if starts(Array("VP8L".utf8), at: 12) {
                guard try u8(20) == 0x2F else { throw ImageError("corrupt WebP (bad VP8L signature)") }
                let bits = try le32(21)
                return ImageHeader(format: .webp, width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1)
            }
            if starts(Array("VP8X".utf8), at: 12) {
                let w = try le16(24) | u8(26) << 16, h = try le16(27) | u8(29) << 16
                return ImageHeader(format: .webp, width: w + 1, height: h + 1)
            }
            throw ImageError("unsupported WebP variant")
        }
        if starts(Array("BM".utf8)) {
            let fileSize = try le32(2)
            guard fileSize == 0 || fileSize <= b.count else { throw ImageError("truncated BMP") }
            if try le32(14) == 12 {  // OS/2 BITMAPCOREHEADER
                return ImageHeader(format: .bmp, width: try le16(18), height: try le16(20))
            }
            let w = Int32(truncatingIfNeeded: try le32(18)), h = Int32(truncatingIfNeeded: try le32(22))
            return ImageHeader(format: .bmp, width: Int(w), height: abs(Int(h)))
        }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) {
            let little = b[0] == 0x49
            let r16 = little ? le16 : be16, r32 = little ? le32 : be32
            let ifd = try r32(4), count = try r16(ifd)
            var w = 0, h = 0, rowsPerStrip = 0, tileW = 0, tileH = 0
            var seen: Set<Int> = []
            for e in 0..<count {
                let at = ifd + 2 + 12 * e
                let tag = try r16(at), type = try r16(at + 2)
                guard [256, 257, 278, 322, 323].contains(tag) else { continue }
                // Each size once, as one SHORT or LONG: libtiff keeps the first of two entries, so a
                // second one would make this check read another size than the decoder allocates.
                guard seen.insert(tag).inserted, type == 3 || type == 4, try r32(at + 4) == 1 else {
                    throw ImageError("corrupt TIFF (tag \(tag) repeated or not a single SHORT or LONG)")
                }
                let value = type == 3 ? try r16(at + 8) : try r32(at + 8)
                switch tag {
                case 256: w = value
                case 257: h = value
                case 278: rowsPerStrip = value
                case 322: tileW = value
                default: tileH = value
                }
            }
            guard w > 0 && h > 0 else { throw ImageError("corrupt TIFF (no image size)") }
            // OpenCV allocates one strip or tile as declared, up to 1 GB, without clamping it to the
            // image: a 200-byte file of 4102×6 pixels with 8299 rows per strip made it take 130 MB.
            // A strip or tile may be as large as the image, or 1 MP, whichever is more. A tiled file
            // that leaves one tile side out (or gives it as 0) gets that side from the image, as
            // OpenCV does: 5×4 pixels with 5392710-row tiles and no tile width took 103 MB.
            let tiled = tileW > 0 || tileH > 0
            let blockW = tiled ? (tileW > 0 ? tileW : w) : w
            let blockH = tiled ? (tileH > 0 ? tileH : h) : (rowsPerStrip == 0 || rowsPerStrip == 0xFFFF_FFFF ? h : rowsPerStrip)
            let (block, overflow) = blockW.multipliedReportingOverflow(by: blockH)
            let (area, areaOverflow) = w.multipliedReportingOverflow(by: h)
            guard !overflow, areaOverflow || block <= max(area, 1 << 20) else {
                throw ImageError("corrupt TIFF (\(tiled ? "tiles" : "strips") of \(blockW)x\(blockH) pixels for a \(w)x\(h) image)")
            }
            return ImageHeader(format: .tiff, width: w, height: h)
        }
        throw ImageError("not a supported image (PNG, JPEG, WebP, BMP or TIFF)")
    }

    /// Walks the JPEG markers to the frame header (SOFn). Also requires the end-of-image
    /// marker after the first scan: libjpeg decodes a truncated file without failing,
    /// filling the missing part with grey. Inside entropy-coded data every 0xFF byte is
    /// followed by 0x00 or a restart marker, so FF D9 there can only be the real end.
    private static func jpeg(_ b: UnsafeRawBufferPointer, be16: (Int) throws -> Int, u8: (Int) throws -> Int) throws -> ImageHeader {
        var i = 2
        var size: (Int, Int)?
        while true {
            guard try u8(i) == 0xFF else { throw ImageError("corrupt JPEG (bad marker)") }
            var marker = try u8(i + 1)
            while marker == 0xFF { i += 1; marker = try u8(i + 1) }  // fill bytes
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
            if marker == 0xD9 { throw ImageError("corrupt JPEG (no image data)") }
            let length = try be16(i + 2)
            if marker == 0xDA { break }
            if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) {
                size = (try be16(i + 7), try be16(i + 5))
            }
            i += 2 + length
        }
        guard let (w, h) = size else { throw ImageError("corrupt JPEG (no frame header)") }
        var j = b.count - 2
        while j > i && !(b[j] == 0xFF && b[j + 1] == 0xD9) { j -= 1 }
        guard j > i else { throw ImageError("truncated JPEG (no end-of-image marker)") }
        return ImageHeader(format: .jpeg, width: w, height: h)
    }
}
