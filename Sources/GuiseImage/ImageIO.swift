import CPNG
import CVBridge
import Foundation
import GuiseFiles

/// Reading and writing image files. Errors are `ImageError`s whose one-line message names the file.
public enum ImageIO {
    /// Images declaring more pixels than this are refused before decoding. 100 megapixels
    /// is 1.6 GB as float RGBA, a sane ceiling for a CPU tool.
    public static let defaultMaxPixels = 100_000_000
    /// Larger files are refused before being read into memory.
    public static let maxFileBytes = 1 << 30

    public static func read(_ path: String, maxPixels: Int = defaultMaxPixels) throws -> Image {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ImageError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw ImageError("\(path): is a folder, not an image") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size <= maxFileBytes else { throw ImageError("\(path): the file is larger than \(maxFileBytes >> 20) MiB") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("\(path): cannot read the file") }
        do {
            return try decode(data, maxPixels: maxPixels)
        } catch let e as ImageError {
            throw ImageError("\(path): \(e.message)")
        }
    }

    /// Decodes PNG, JPEG, WebP, BMP or TIFF bytes. JPEG EXIF orientation is applied.
    public static func decode(_ data: Data, maxPixels: Int = defaultMaxPixels) throws -> Image {
        guard !data.isEmpty else { throw ImageError("the file is empty") }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Image in
            let header = try ImageHeader.read(raw)
            guard header.width > 0 && header.height > 0 else {
                throw ImageError("the image declares an empty size \(header.width)x\(header.height)")
            }
            guard let pixels = header.pixelCount, pixels <= maxPixels else {
                throw ImageError("the image declares \(header.width)x\(header.height) pixels, more than the limit of \(maxPixels)")
            }
            let bytes = raw.bindMemory(to: UInt8.self)
            if header.format == .png { return try decodePNG(bytes, maxPixels: maxPixels) }
            return try decodeWithOpenCV(bytes, orient: header.format == .jpeg)
        }
    }

    private static func decodePNG(_ bytes: UnsafeBufferPointer<UInt8>, maxPixels: Int) throws -> Image {
        var png = cpng_image()
        var message = [CChar](repeating: 0, count: 256)
        guard cpng_read(bytes.baseAddress, bytes.count, maxPixels, &png, &message, message.count) == 0 else {
            throw ImageError("corrupt PNG (\(String(cString: message)))")
        }
        defer { cpng_free(&png) }
        return image(from: UnsafeRawPointer(png.pixels), width: Int(png.width), height: Int(png.height),
                     channels: Int(png.channels), depth: Int(png.depth))
    }

    private static func decodeWithOpenCV(_ bytes: UnsafeBufferPointer<UInt8>, orient: Bool) throws -> Image {
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0, d: Int32 = 0
        var buffer: OpaquePointer?
        // JPEG carries no alpha, so decode it as colour to get EXIF orientation applied;
        // others keep their channels and depth (OpenCV 4.6 reads EXIF from JPEG only).
        try OpenCV.check(cvb_decode(bytes.baseAddress, bytes.count, orient ? 0 : 1, &w, &h, &c, &d, &buffer))
        defer { cvb_buffer_free(buffer) }
        return image(from: cvb_buffer_data(buffer), width: Int(w), height: Int(h), channels: Int(c), depth: Int(d))
    }

    private static func image(from p: UnsafeRawPointer, width: Int, height: Int, channels: Int, depth: Int) -> Image {
        let n = width * height * channels
        if depth == 16 {
            return Image(interleaved: Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt16.self), count: n)),
                         width: width, height: height, channels: channels)
        }
        return Image(interleaved: Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: n)),
                     width: width, height: height, channels: channels)
    }

    // MARK: writing

    /// Writes atomically in the format the extension names. PNG keeps the image's source
    /// layout (grey, bit depth) unless `bitDepth` overrides it; JPEG, WebP and BMP are 8-bit.
    /// Nothing is created or replaced if encoding fails.
    public static func write(_ image: Image, to path: String, bitDepth: Int? = nil, quality: Int = 95) throws {
        let ext = URL(fileURLWithPath: path).pathExtension
        guard let format = ImageFileFormat(pathExtension: ext) else {
            throw ImageError("\(path): unknown image type .\(ext) (use .png, .jpg, .webp, .bmp or .tif)")
        }
        try AtomicFile.checkWritable(path)
        let data: Data
        do {
            data = try encode(image, as: format, bitDepth: bitDepth, quality: quality)
        } catch let e as ImageError {
            throw ImageError("\(path): \(e.message)")
        }
        try AtomicFile.write(data, to: path)
    }

    public static func encode(_ image: Image, as format: ImageFileFormat, bitDepth: Int? = nil, quality: Int = 95) throws -> Data {
        try image.validate()
        let source = image.sourceFormat
        var depth = bitDepth ?? source?.bitDepth ?? 8
        if format != .png && format != .tiff { depth = 8 }
        guard depth == 8 || depth == 16 else { throw ImageError("unsupported bit depth \(depth)", category: .unsupported) }
        // Grey output only for grey sources that are still grey, so nothing is lost.
        let grey = source?.isGrey == true && image.isGrey
        let alpha = image.alpha != nil && format != .jpeg && format != .bmp
        let channels = (grey ? 1 : 3) + (alpha ? 1 : 0)
        // OpenCV's encoders take 1, 3 or 4 channels; grey+alpha goes out as RGBA.
        let cvChannels = format != .png && channels == 2 ? 4 : channels
        func withSamples<R>(_ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
            if depth == 16 { return try image.interleaved16(channels: cvChannels).withUnsafeBytes { try body($0.baseAddress!) } }
            return try image.interleaved8(channels: cvChannels).withUnsafeBytes { try body($0.baseAddress!) }
        }
        let (w, h) = (Int32(image.width), Int32(image.height))
        if format == .png {
            var out = cpng_bytes()
            var message = [CChar](repeating: 0, count: 256)
            let status = withSamples { cpng_write($0, w, h, Int32(cvChannels), Int32(depth), &out, &message, message.count) }
            guard status == 0 else { throw ImageError("cannot encode PNG (\(String(cString: message)))", category: .internal) }
            defer { cpng_free_bytes(&out) }
            return Data(bytes: out.data, count: out.size)
        }
        var buffer: OpaquePointer?
        try withSamples {
            try OpenCV.check(cvb_encode(format.encoderExtension, $0, w, h, Int32(cvChannels), Int32(depth), Int32(quality), &buffer))
        }
        defer { cvb_buffer_free(buffer) }
        return Data(bytes: cvb_buffer_data(buffer), count: cvb_buffer_size(buffer))
    }
}

/// Turns the bridge's status codes into thrown errors.
enum OpenCV {
    static func check(_ status: Int32) throws {
        guard status == 0 else { throw ImageError(String(cString: cvb_last_error())) }
    }
    static var version: String { String(cString: cvb_opencv_version()) }
}
