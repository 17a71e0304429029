import Foundation
import GuiseFiles
import GuiseImage

/// A 2-D thin-plate spline: the smoothest map (least bending energy) that takes each control
/// point exactly to its destination. f(p) = a + B·p + Σ wᵢ·U(|p − cᵢ|), U(r) = r²·log r².
/// Used to bend a face's interior towards another face's proportions and garments onto a body.
public struct ThinPlateSpline {
    public let controls: [Point]
    /// Per output axis: n kernel weights, then the affine part (1, x, y).
    let wx: [Double]
    let wy: [Double]

    /// `regularisation` λ ≥ 0 trades exactness for smoothness (λ = 0 interpolates exactly).
    /// Throws when the control points are too few or all on one line.
    public init(from controls: [Point], to destinations: [Point], regularisation: Double = 0) throws {
        let n = controls.count
        guard n == destinations.count else { throw PipelineError("a thin-plate spline needs as many destinations as controls (\(n) and \(destinations.count))") }
        guard n >= 3 else { throw PipelineError("a thin-plate spline needs at least 3 control points, got \(n)") }
        // Coordinates are centred and scaled to about unit size, so the system is well conditioned
        // whether points are in pixels of a thumbnail or of a 12-megapixel photo.
        let (cx, cy, s) = ThinPlateSpline.normalisation(controls)
        let c = controls.map { Point(($0.x - cx) / s, ($0.y - cy) / s) }
        let m = n + 3
        var a = [Double](repeating: 0, count: m * m)
        for i in 0..<n {
            for j in 0..<n { a[i * m + j] = i == j ? regularisation : ThinPlateSpline.kernel(c[i], c[j]) }
            a[i * m + n] = 1; a[i * m + n + 1] = c[i].x; a[i * m + n + 2] = c[i].y
            a[n * m + i] = 1; a[(n + 1) * m + i] = c[i].x; a[(n + 2) * m + i] = c[i].y
        }
        var bx = destinations.map(\.x) + [0, 0, 0]
        var by = destinations.map(\.y) + [0, 0, 0]
        guard ThinPlateSpline.solve(a, &bx, &by, size: m) else {
            throw PipelineError("the thin-plate spline's control points are degenerate (repeated or collinear)", category: .internal)
        }
        self.controls = controls
        wx = bx
        wy = by
        centre = (cx, cy, s)
    }

    let centre: (Double, Double, Double)

    public func apply(_ p: Point) -> Point {
        let n = controls.count
        let q = Point((p.x - centre.0) / centre.2, (p.y - centre.1) / centre.2)
        var x = wx[n] + wx[n + 1] * q.x + wx[n + 2] * q.y
        var y = wy[n] + wy[n + 1] * q.x + wy[n + 2] * q.y
        for i in 0..<n {
            let c = Point((controls[i].x - centre.0) / centre.2, (controls[i].y - centre.1) / centre.2)
            let u = ThinPlateSpline.kernel(q, c)
            x += wx[i] * u
            y += wy[i] * u
        }
        return Point(x, y)
    }

    static func kernel(_ a: Point, _ b: Point) -> Double {
        let r2 = (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)
        return r2 > 1e-300 ? r2 * log(r2) : 0
    }

    static func normalisation(_ p: [Point]) -> (Double, Double, Double) {
        let cx = p.map(\.x).reduce(0, +) / Double(p.count), cy = p.map(\.y).reduce(0, +) / Double(p.count)
        let s = p.map { max(abs($0.x - cx), abs($0.y - cy)) }.max() ?? 1
        return (cx, cy, max(s, 1e-9))
    }

    /// Gaussian elimination with partial pivoting on a (size × size) system with two right-hand sides.
    static func solve(_ a: [Double], _ bx: inout [Double], _ by: inout [Double], size m: Int) -> Bool {
        var a = a
        for col in 0..<m {
            var piv = col
            for r in (col + 1)..<m where abs(a[r * m + col]) > abs(a[piv * m + col]) { piv = r }
            guard abs(a[piv * m + col]) > 1e-12 else { return false }
            if piv != col {
                for k in 0..<m { a.swapAt(col * m + k, piv * m + k) }
                bx.swapAt(col, piv)
                by.swapAt(col, piv)
            }
            let d = a[col * m + col]
            for r in (col + 1)..<m {
                let f = a[r * m + col] / d
                if f == 0 { continue }
                for k in col..<m { a[r * m + k] -= f * a[col * m + k] }
                bx[r] -= f * bx[col]
                by[r] -= f * by[col]
            }
        }
        for r in stride(from: m - 1, through: 0, by: -1) {
            var sx = bx[r], sy = by[r]
            for k in (r + 1)..<m { sx -= a[r * m + k] * bx[k]; sy -= a[r * m + k] * by[k] }
            bx[r] = sx / a[r * m + r]
            by[r] = sy / a[r * m + r]
        }
        return bx.allSatisfy(\.isFinite) && by.allSatisfy(\.isFinite)
    }
}

/// A pipeline failure with a one-line, user-facing message: options that don't fit together
/// (`input`), inputs a pipeline cannot use, or geometry it cannot build (`internal`).
public struct PipelineError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
}
