/// The one error type every Plexus module throws.
///
/// Errors carry a stable machine-readable `code`, a human-readable `message`
/// and optionally the underlying cause. Codes are open (a struct, not an enum)
/// so that later modules can add their own without breaking callers.
public struct PlexusError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable, machine-readable error code such as `bad_signature`.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence for people, naming the offending value where useful.
    public var message: String
    /// The lower-level error that caused this one, if any.
    public var cause: String?

    /// Creates an error with a code, a message and an optional cause.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}

extension PlexusError.Code {
    /// A server is at its concurrency limit.
    public static let busy = Self("busy")
    /// Arithmetic on amounts went above the representable maximum.
    public static let overflow = Self("overflow")
    /// Arithmetic on amounts went below zero.
    public static let underflow = Self("underflow")
    /// A value could not be parsed (hex, address, amount, JSON).
    public static let malformed = Self("malformed")
    /// Input ended before a complete value was read.
    public static let truncated = Self("truncated")
    /// Input is larger than the configured limit.
    public static let tooLarge = Self("too_large")
    /// An address failed its checksum.
    public static let badChecksum = Self("bad_checksum")
    /// A signature did not verify.
    public static let badSignature = Self("bad_signature")
    /// A value is outside its permitted range.
    public static let outOfRange = Self("out_of_range")
    /// Something on disk or the network failed.
    public static let io = Self("io")
    /// A requested item does not exist.
    public static let notFound = Self("not_found")
    /// The operation is not valid in the current state.
    public static let invalidState = Self("invalid_state")
}
