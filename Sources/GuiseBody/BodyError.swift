import GuiseFiles

/// A body-analysis failure (no person found, a model file that is not the expected network),
/// with a one-line, user-facing message.
public struct BodyError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .internal) {
        self.message = message
        self.category = category
    }
}
