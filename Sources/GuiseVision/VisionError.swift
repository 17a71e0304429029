import GuiseFiles

/// A failure in the shared detection and crop helpers (bad network outputs, mismatched sizes),
/// with a one-line, user-facing message.
public struct VisionError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .internal) {
        self.message = message
        self.category = category
    }
}
