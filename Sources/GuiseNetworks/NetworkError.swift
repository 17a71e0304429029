import GuiseFiles

/// A network was given inputs it cannot take. The message is one line, meant for the user.
public struct NetworkError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
}
