import Foundation
import GuiseFace
import GuiseImage
import GuiseTensor

/// The dlib identity expert as a guidance energy: the squared descriptor distance from an image's
/// face to a target descriptor, averaged over the face's chip as it is and small random
/// similarity views of it (DiffFace's augmented views), so the guidance cannot fit one exact
/// chip's pixels. Shared by the swap (towards the source) and `edit --identity-from`.
struct DlibIdentityEnergy {
    let identity: FaceIdentity
    /// The descriptor to come close to, [1, 128].
    let target: Tensor
    /// The 5 points (MeshPoints.dlib5 order) of each view, in the image tensor's pixels.
    let views: [[Point]]

    /// Squared dlib distance of `img` ([1, 3, H, W] in 0…1) to `target`, averaged over the views.
    func callAsFunction(_ img: Tensor) throws -> Tensor {
        var sum = Tensor.scalar(0)
        for v in views {
            let diff = try identity.descriptor(img, dlib5: v) - target
            sum = sum + (diff * diff).sum(dims: [0, 1], keepDims: false)
        }
        return sum.scaled(1 / Float(views.count))
    }

    /// The identity chip's 5 points, first as they are, then nudged by small random similarity
    /// transforms (±4°, ±4 % scale, ±3 % of the eye distance shift).
    static func views(count: Int, points: [Point], seed: UInt64) -> [[Point]] {
        var out = [points]
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53) * 2 - 1
        }
        let cx = points.map(\.x).reduce(0, +) / Double(points.count), cy = points.map(\.y).reduce(0, +) / Double(points.count)
        let span = (points.map { ($0.x - cx) * ($0.x - cx) + ($0.y - cy) * ($0.y - cy) }.reduce(0, +) / Double(points.count)).squareRoot()
        while out.count < count {
            let angle = uniform() * 4 * Double.pi / 180, s = 1 + 0.04 * uniform()
            let tx = 0.03 * span * uniform(), ty = 0.03 * span * uniform()
            let c = cos(angle) * s, sn = sin(angle) * s
            out.append(points.map { Point(cx + c * ($0.x - cx) - sn * ($0.y - cy) + tx, cy + sn * ($0.x - cx) + c * ($0.y - cy) + ty) })
        }
        return out
    }
}
