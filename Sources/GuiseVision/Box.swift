import GuiseImage

/// An axis-aligned box in pixels: (x, y) is the top-left corner.
public struct Box: Equatable, Codable, Sendable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
    public var area: Double { width * height }
    public var centre: Point { Point(x + width / 2, y + height / 2) }
    public func contains(_ p: Point) -> Bool { p.x >= x && p.y >= y && p.x <= x + width && p.y <= y + height }
}
