import GuiseImage
import GuiseTensor
import GuiseVision

extension TensorCrops {
    /// `Iris.input` on a tensor [1, 3, H, W] → [1, 64, 64, 3], sampled as MediaPipe's iris
    /// graph samples (`Iris.Crop`): each pixel of the whole-pixel crop takes its nearest image
    /// pixel (read by gridSample at that pixel's exact centre, so its gradient goes to that one
    /// pixel), then OpenCV's resize to 64² and the mirror, written as two weight matrices.
    /// Only the 8-bit rounding of MediaPipe's values is missing: within half a level.
    public static func eyeCrop(_ image: Tensor, roi: RotatedRect, mirrored: Bool) throws -> Tensor {
        guard image.rank == 4, image.shape[0] == 1, image.shape[1] == 3 else {
            throw FaceError("a crop needs an image tensor [1, 3, H, W], got \(image.shape)")
        }
        let H = image.shape[2], W = image.shape[3], n = Iris.inputSize
        let crop = Iris.Crop(roi: roi, imageWidth: W, imageHeight: H)
        let cw = crop.width, ch = crop.height
        let back = try crop.imageToCrop.inverted()
        var grid = [Float](repeating: 0, count: ch * cw * 2)
        for i in 0..<ch {
            for j in 0..<cw {
                let p = back.apply(Point(Double(j), Double(i)))
                // OpenCV's nearest pixel (cvRound: ties to even), the edge replicated.
                let x = min(max(p.x.rounded(.toNearestOrEven), 0), Double(W - 1))
                let y = min(max(p.y.rounded(.toNearestOrEven), 0), Double(H - 1))
                grid[2 * (i * cw + j)] = Float((2 * x + 1) / Double(W) - 1)
                grid[2 * (i * cw + j) + 1] = Float((2 * y + 1) / Double(H) - 1)
            }
        }
        let picked = NN.gridSample(image, grid: Tensor(shape: [1, ch, cw, 2], values: grid), padding: .border, alignCorners: false)
        let fit = crop.fitted
        let rows = Tensor(shape: [n, ch], values: Iris.Crop.resizeWeights(size: ch, target: fit.height, pad: fit.top, total: n))
        let cols = Iris.Crop.resizeWeights(size: cw, target: fit.width, pad: fit.left, total: n)
        // [cw, n]: output column o takes resize row o, or row n − 1 − o when mirrored (cv::flip).
        var colsT = [Float](repeating: 0, count: cw * n)
        for o in 0..<n {
            let r = mirrored ? n - 1 - o : o
            for j in 0..<cw { colsT[j * n + o] = cols[r * cw + j] }
        }
        let resized = rows.matmul(picked).matmul(Tensor(shape: [cw, n], values: colsT))
        return resized.permuted(0, 2, 3, 1).contiguous()
    }

}
