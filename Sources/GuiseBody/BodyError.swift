/// A body-analysis failure (no person found, a model file that is not the expected network),
/// with a one-line, user-facing message.
public struct BodyError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
