extension NN {
    /// Soft-argmax over the last two dims: [..., H, W] → [..., 2] holding (row, column), the
    /// expected pixel position under softmax(β·x) over the H·W cells. Row and column run from 0
    /// to H−1 and W−1 (DiffFace's softargmax2d: linspace(0, 1)·(size−1)). Differentiable in x,
    /// as a softmax followed by a product with the [H·W, 2] grid of positions.
    public static func softArgmax2d(_ x: Tensor, beta: Float) -> Tensor {
        precondition(x.rank >= 2 && x.shape[x.rank - 2] > 0 && x.shape[x.rank - 1] > 0, "softArgmax2d: input \(x.shape) needs [..., H, W]")
        let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let lead = Array(x.shape.dropLast(2))
        var grid = [Float](repeating: 0, count: h * w * 2)
        for r in 0..<h {
            for c in 0..<w {
                grid[2 * (r * w + c)] = Float(r)
                grid[2 * (r * w + c) + 1] = Float(c)
            }
        }
        let p = (x.reshaped([-1, h * w]) * beta).softmax(dim: -1)
        return p.matmul(Tensor(shape: [h * w, 2], values: grid)).reshaped(lead + [2])
    }
}
