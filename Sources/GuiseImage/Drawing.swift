/// Simple drawing for annotated previews: opaque strokes in RGB 0…1.
extension Image {
    /// Outlines the rectangle whose top-left corner is (x, y); the stroke lies inside it.
    public mutating func strokeRectangle(x: Int, y: Int, width w: Int, height h: Int,
                                         colour: (Float, Float, Float), thickness: Int = 2) {
        guard w > 0, h > 0 else { return }
        let t = max(1, min(thickness, w, h))
        for py in y..<(y + h) {
            let fullRow = py - y < t || y + h - 1 - py < t
            let spans = fullRow ? [x..<(x + w)] : [x..<(x + t), (x + w - t)..<(x + w)]
            for span in spans { for px in span { setPixel(px, py, colour) } }
        }
    }

    public mutating func fillDisc(centre: Point, radius: Double, colour: (Float, Float, Float)) {
        guard radius > 0 else { return }
        let r = Int(radius.rounded(.up))
        let cx = Int(centre.x.rounded()), cy = Int(centre.y.rounded())
        for py in (cy - r)...(cy + r) {
            for px in (cx - r)...(cx + r) {
                let dx = Double(px) - centre.x, dy = Double(py) - centre.y
                if dx * dx + dy * dy <= radius * radius { setPixel(px, py, colour) }
            }
        }
    }

    private mutating func setPixel(_ x: Int, _ y: Int, _ c: (Float, Float, Float)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        self[x, y, 0] = c.0
        self[x, y, 1] = c.1
        self[x, y, 2] = c.2
    }
}
