import Crypto

/// An account address: the account's Ed25519 public key.
///
/// The text form is `plx` + 64 hex characters of the key + 8 hex characters
/// of checksum (the first 4 bytes of SHA-256 over a domain tag and the key),
/// so a mistyped address is rejected instead of sending money into the void.
/// Because the address *is* the public key, transactions need not carry a
/// separate key and signatures verify against `from` directly.
public struct Address: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The 32 bytes of the Ed25519 public key.
    public let bytes: [UInt8]

    /// The protocol treasury. No private key exists for the all-zero point,
    /// so no transaction can ever be signed by it.
    public static let treasury = Address(unchecked: [UInt8](repeating: 0, count: 32))

    static let prefix = "plx"
    static let textLength = 3 + 64 + 8

    /// Wraps 32 public-key bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw PlexusError(.malformed, "an address has 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Parses the text form, checking the prefix, length and checksum.
    public init(_ text: String) throws {
        guard text.utf8.count == Self.textLength, text.hasPrefix(Self.prefix) else {
            throw PlexusError(.malformed, "an address is 'plx' followed by 72 hex characters, got '\(text.prefix(80))'")
        }
        let body = try Hex.decode(String(text.dropFirst(3)))
        let key = Array(body[0..<32])
        let sum = Array(body[32..<36])
        guard sum == Self.checksum(key) else {
            throw PlexusError(.badChecksum, "address checksum does not match: '\(text)' is mistyped")
        }
        self.bytes = key
    }

    static func checksum(_ key: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: Array("plexus-address".utf8))
        h.update(data: key)
        return Array(h.finalize().prefix(4))
    }

    /// The checksummed text form.
    public var text: String { Self.prefix + Hex.encode(bytes + Self.checksum(bytes)) }
    public var description: String { text }

    /// A short form for logs: `plx1a2b…9f8e`.
    public var short: String {
        let t = text
        return String(t.prefix(7)) + "…" + String(t.suffix(4))
    }

    public static func < (a: Address, b: Address) -> Bool {
        ByteOrder.less(a.bytes, b.bytes)
    }

    /// Whether `signature` is a valid Ed25519 signature by this address over `message`.
    public func verifies(_ signature: Signature, over message: [UInt8]) -> Bool {
        Ed25519.verify(signature: signature.bytes, publicKey: bytes, message: message)
    }

    public init(from decoder: any Decoder) throws {
        try self.init(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// A 64-byte Ed25519 signature, written as hex.
public struct Signature: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The signature bytes.
    public let bytes: [UInt8]

    /// An all-zero placeholder for unsigned values; never verifies.
    public static let empty = Signature(unchecked: [UInt8](repeating: 0, count: 64))

    /// Wraps 64 bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 64 else {
            throw PlexusError(.malformed, "a signature has 64 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Parses 128 hex characters.
    public init(hex: String) throws { try self.init(bytes: Hex.decode(hex)) }

    public var description: String { Hex.encode(bytes) }

    public init(from decoder: any Decoder) throws {
        try self.init(hex: decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Address {
    /// Hashes the 32 bytes in one call (the synthesized version feeds them one at a time).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
