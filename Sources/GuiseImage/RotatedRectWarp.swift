import CVBridge

extension Image {
    /// The crop MediaPipe's CPU ImageToTensorCalculator makes: this image as 8-bit RGB, the
    /// rectangle centred at `centre`, `width` × `height`, turned by `rotation` radians
    /// (clockwise on screen), mapped corner to corner onto `outputWidth` × `outputHeight` by
    /// OpenCV's bilinear warpPerspective in 8 bits. Results come back on 8-bit levels.
    ///
    /// `warpedAffine` samples the same points in float, but OpenCV rounds the affine and the
    /// perspective source coordinates to its 1/32-pixel grid differently, and the 8-bit path
    /// rounds each value; networks whose decoders amplify small input changes (the pose
    /// model's heatmap refinement) need MediaPipe's exact input to give MediaPipe's result.
    /// `border` is `.constant(0)` or `.replicate`.
    public func rotatedRectCrop8Bit(centre: Point, width rw: Double, height rh: Double, rotation: Double,
                                    outputWidth ow: Int, outputHeight oh: Int, border: Border) throws -> Image {
        try validate()
        guard ow > 0, oh > 0 else { throw ImageError("cannot crop to \(ow)x\(oh)", category: .internal) }
        guard rw > 0, rh > 0, rw.isFinite, rh.isFinite, centre.x.isFinite, centre.y.isFinite, rotation.isFinite else {
            throw ImageError("the crop rectangle \(rw)x\(rh) at (\(centre.x), \(centre.y)) is not a finite, non-empty rectangle", category: .internal)
        }
        switch border {
        case .replicate: break
        case .constant(let v) where v == 0: break
        default: throw ImageError("an 8-bit crop pads with zeros or the edge pixels only", category: .internal)
        }
        let pixels = interleaved8(channels: 3)
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        try OpenCV.check(cvb_warp_rotated_rect_u8(pixels, Int32(width), Int32(height), 3,
                                                  Float(centre.x), Float(centre.y), Float(rw), Float(rh),
                                                  Float(Double(Float(rotation) * 180) / Double.pi),  // as MediaPipe rounds it
                                                  &out, Int32(ow), Int32(oh), border.mode))
        return Image(interleaved: out, width: ow, height: oh, channels: 3)
    }
}

extension Image {
    /// The crop MediaPipe's older CPU calculators make (ImageCroppingCalculator, then
    /// ImageTransformationCalculator with scale_mode FIT), which its iris graph still uses: this
    /// image as 8-bit RGB, the rectangle with whole-pixel `centre` and size turned by `rotation`
    /// radians, its corners mapped onto the centres of a `rectWidth` × `rectHeight` crop's corner
    /// pixels with nearest-neighbour sampling; that crop resized to fit `outputWidth` ×
    /// `outputHeight` (OpenCV's INTER_AREA when shrinking, INTER_LINEAR otherwise), centred on
    /// black, and mirrored left–right if `flipped`. `border` is `.constant(0)` or `.replicate`.
    public func croppedAndFitted8Bit(centreX: Int, centreY: Int, rectWidth rw: Int, rectHeight rh: Int, rotation: Double,
                                     outputWidth ow: Int, outputHeight oh: Int, flipped: Bool, border: Border) throws -> Image {
        try validate()
        guard ow > 0, oh > 0 else { throw ImageError("cannot crop to \(ow)x\(oh)", category: .internal) }
        guard rw > 0, rh > 0, rotation.isFinite else { throw ImageError("the crop rectangle \(rw)x\(rh) is empty or its rotation is not finite", category: .internal) }
        switch border {
        case .replicate: break
        case .constant(let v) where v == 0: break
        default: throw ImageError("an 8-bit crop pads with zeros or the edge pixels only", category: .internal)
        }
        let pixels = interleaved8(channels: 3)
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        // MediaPipe computes the angle from a float rotation: rotation * 180.f / M_PI.
        try OpenCV.check(cvb_crop_and_fit_u8(pixels, Int32(width), Int32(height), 3, Int32(centreX), Int32(centreY),
                                             Int32(rw), Int32(rh), Float(Double(Float(rotation) * 180) / Double.pi),
                                             &out, Int32(ow), Int32(oh), flipped ? 1 : 0, border.mode))
        return Image(interleaved: out, width: ow, height: oh, channels: 3)
    }
}
