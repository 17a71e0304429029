/// A failure in the shared detection and crop helpers (bad network outputs, mismatched sizes),
/// with a one-line, user-facing message.
public struct VisionError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
