import Foundation
import PlexusCore
import Synchronization

/// API keys bound to ledger accounts, kept as SHA-256 digests in a JSON file (mode 0600).
public struct APIKeys: Sendable {
    public struct Entry: Codable, Sendable {
        public var keyHash: String
        public var account: Address
        public var created: UInt64
    }

    public let path: String

    public init(path: String) { self.path = path }

    /// Creates a new key for `account`, stores its digest and returns the key (shown once).
    public func create(account: Address) throws -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<bytes.count { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let key = "sk-plexus-" + Hex.encode(bytes)
        var entries = try load()
        entries.append(Entry(keyHash: Hash256.of(Array(key.utf8)).hex, account: account, created: SystemClock().nowMillis()))
        let data = try JSONEncoder.compact.encode(entries)
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try AtomicFile.write(Array(data), to: path, permissions: 0o600)
        return key
    }

    public func load() throws -> [Entry] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        do {
            return try JSONDecoder().decode([Entry].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PlexusError(.malformed, "API key file \(path) is unreadable", cause: error)
        }
    }

    /// Digest → account, for lookups.
    public func table() throws -> [String: Address] {
        Dictionary(try load().map { ($0.keyHash, $0.account) }, uniquingKeysWith: { a, _ in a })
    }
}

/// The API key table, reloaded when its file changes.
final class APIKeyCache: Sendable {
    let keys: APIKeys
    private let state = Mutex<(modified: Int?, size: Int, table: [String: Address])>((nil, -1, [:]))

    init(_ keys: APIKeys) { self.keys = keys }

    func account(forKeyHash h: String) throws -> Address? {
        // One stat(2) per lookup: the table is read again only when the file changed.
        var st = stat()
        let found = stat(keys.path, &st) == 0
        let modified = found ? Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec) : nil
        let size = found ? Int(st.st_size) : 0
        let cached = state.withLock { s -> [String: Address]? in s.modified == modified && s.size == size ? s.table : nil }
        if let cached { return cached[h] }
        let table = try keys.table()
        state.withLock { $0 = (modified, size, table) }
        return table[h]
    }
}
