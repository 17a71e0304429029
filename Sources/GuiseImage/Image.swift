/// Planar float RGB in 0…1 with an optional alpha plane; what every pipeline takes and returns.
public struct Image {
    public var width: Int
    public var height: Int
    /// R, G and B planes, each width × height, row-major.
    public var rgb: [Float]
    public var alpha: [Float]?
}
