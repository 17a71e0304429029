import GuiseFiles

/// A weight file that cannot be read. The message is one line, meant for the user.
public struct FormatError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .model) {
        self.message = message
        self.category = category
    }
}
