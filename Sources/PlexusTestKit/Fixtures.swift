import Foundation
import PlexusCore
import PlexusLedger

/// A deterministic test network: an orderer and funded accounts whose keys
/// derive from fixed labels, so every run builds the same genesis.
public struct TestNetwork: Sendable {
    public let orderer: KeyPair
    public let keys: [KeyPair]
    public let genesis: Genesis

    /// `accounts` accounts each holding `balance`, with optional parameter overrides.
    public init(accounts: Int, balance: Amount = Amount(units: 1_000 * Amount.unitsPerPLX),
                params: [String: UInt64] = [:], chainId: String = "plexus-test") {
        orderer = KeyPair.deterministic("test-orderer")
        keys = (0..<accounts).map { KeyPair.deterministic("test-account-\($0)") }
        genesis = Genesis(chainId: chainId, timeMillis: 1_000, orderer: orderer.address, params: params,
                          accounts: keys.map { .init(address: $0.address, balance: balance) })
    }

    /// A signed transaction from account `i`.
    public func tx(_ i: Int, nonce: UInt64, fee: Amount = Amount(units: 1_000), _ body: Transaction.Body) -> Transaction {
        Transaction(chainId: genesis.chainId, from: keys[i], nonce: nonce, fee: fee, body: body)
    }
}

/// A clock that only moves when told to.
public final class ManualClock: WallClock, @unchecked Sendable {
    // Invariant: `now` is only touched under `lock`.
    private let lock = NSLock()
    private var now: UInt64

    public init(startMillis: UInt64 = 1_000) { now = startMillis }

    public func nowMillis() -> UInt64 { lock.withLock { now } }

    public func advance(millis: UInt64) { lock.withLock { now += millis } }
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "plexus-test") throws {
        path = NSTemporaryDirectory() + "\(label)-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
