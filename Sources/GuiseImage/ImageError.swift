import GuiseFiles

/// An image that cannot be read, written or processed. The message is one line, meant for the user.
public struct ImageError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
}
