/// What kind of failure an error is, for callers that react differently to each: a command-line
/// tool picks its exit status from it, a batch run skips a photo without a face but stops on a
/// missing model.
public enum ErrorCategory: String, Sendable, CaseIterable {
    /// The user's file or argument is unreadable or invalid (a corrupt photo, a bad option value,
    /// an output path that cannot be written).
    case input
    /// A valid input holds nothing to work on: no face, no person, no garment.
    case notFound
    /// A model file is missing, corrupt, or not the network expected.
    case model
    /// A valid request this build or this model cannot carry out.
    case unsupported
    /// A failure inside Guise: one part handed another something it cannot take.
    case `internal`
}

/// The errors every Guise module throws: a one-line, user-facing message and its category.
/// Each module keeps its own type (`FaceError`, `FormatError`, …) with a default category that
/// fits most of its failures; a throw site that knows better passes its own.
public protocol GuiseError: Error, CustomStringConvertible {
    var message: String { get }
    var category: ErrorCategory { get }
}

extension GuiseError {
    public var description: String { message }
}
