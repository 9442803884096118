@preconcurrency import Crypto
import Foundation

/// An Ed25519 signing key and its address.
public struct KeyPair: Sendable {
    private let key: Curve25519.Signing.PrivateKey
    /// The address (public key) of this key pair.
    public let address: Address

    /// A fresh random key pair.
    public init() {
        self.init(key: Curve25519.Signing.PrivateKey())
    }

    /// A key pair from its 32-byte seed.
    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else {
            throw PlexusError(.malformed, "a key seed has 32 bytes, got \(seed.count)")
        }
        do {
            self.init(key: try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        } catch {
            throw PlexusError(.malformed, "invalid Ed25519 seed", cause: error)
        }
    }

    /// A deterministic key pair derived from a label, for tests and development
    /// networks only: anyone who knows the label knows the key.
    public static func deterministic(_ label: String) -> KeyPair {
        let seed = Array(SHA256.hash(data: Array("plexus-dev-key:\(label)".utf8)))
        // A 32-byte seed is always a valid Ed25519 private key.
        return (try? KeyPair(seed: seed)) ?? KeyPair()
    }

    private init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
        self.address = Address(unchecked: Array(key.publicKey.rawRepresentation))
    }

    /// The 32-byte seed; keep it secret.
    public var seed: [UInt8] { Array(key.rawRepresentation) }

    /// Signs `message`.
    public func sign(_ message: [UInt8]) -> Signature {
        // Ed25519 signing of in-memory bytes cannot fail.
        let sig = (try? key.signature(for: message)).map { Array($0) } ?? []
        return Signature(unchecked: sig.count == 64 ? sig : [UInt8](repeating: 0, count: 64))
    }
}

/// Reads and writes key files: JSON with the address and hex seed, mode 0600.
public enum KeyFile {
    struct Contents: Codable {
        var address: Address
        var seed: String
    }

    /// Writes `key` to `path` with owner-only permissions; refuses to overwrite.
    public static func write(_ key: KeyPair, to path: String, overwrite: Bool = false) throws {
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw PlexusError(.invalidState, "key file \(path) already exists; refusing to overwrite it")
        }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Contents(address: key.address, seed: Hex.encode(key.seed)))
        // Create with 0600 from the start so the secret is never world-readable.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else {
            throw PlexusError(.io, "cannot create key file \(path): errno \(errno)")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw PlexusError(.io, "cannot write key file \(path)", cause: error)
        }
    }

    /// Reads a key file and checks that the seed matches the recorded address. A key file
    /// that its group or others may read is refused, as ssh refuses such a private key: the
    /// secret may already have leaked, and the operator must see that.
    public static func read(_ path: String) throws -> KeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw PlexusError(.notFound, "no key file at \(path)")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw PlexusError(.invalidState, "key file \(path) can be read by others (mode \(String(mode, radix: 8))); it must be owner-only: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlexusError(.notFound, "no key file at \(path)")
        }
        guard data.count <= 4096 else {
            throw PlexusError(.tooLarge, "key file \(path) is \(data.count) bytes; a key file is under 4 KiB")
        }
        let contents: Contents
        do {
            contents = try JSONDecoder().decode(Contents.self, from: data)
        } catch {
            throw PlexusError(.malformed, "key file \(path) is not a Plexus key file", cause: error)
        }
        let key = try KeyPair(seed: Hex.decode(contents.seed))
        guard key.address == contents.address else {
            throw PlexusError(.malformed, "key file \(path): seed does not match its address")
        }
        return key
    }
}
