/// A network was given inputs it cannot take. The message is one line, meant for the user.
public struct NetworkError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
