import Foundation
import GuiseImage

// Image files: the header check (format, declared size, the pixel limit) and the full decode
// through libpng or OpenCV. The pixel limit is lowered to 1 MP so an accepted image stays well
// inside the 100 MB budget (as float planes it is 16 MB).
let maxPixels = 1 << 20

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    expectResultOrOneLineError {
        let image = try ImageIO.decode(bytes, maxPixels: maxPixels)
        precondition(image.width > 0 && image.height > 0 && image.width * image.height <= maxPixels,
                     "decoded \(image.width)x\(image.height) past the limit")
        return "\(image.width)x\(image.height), \(image.alpha == nil ? "no alpha" : "alpha")"
    }
    return 0
}
