import PlexusCore

/// An amount that becomes free at a block height.
public struct PendingRelease: Sendable, Hashable, Codable, CanonicalCodable {
    /// How much is released.
    public var amount: Amount
    /// The height at whose start it is released.
    public var releaseHeight: UInt64

    public init(amount: Amount, releaseHeight: UInt64) {
        self.amount = amount
        self.releaseHeight = releaseHeight
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(amount)
        w.write(releaseHeight)
    }

    public init(from r: inout CanonicalReader) throws {
        amount = try r.readAmount()
        releaseHeight = try r.readUInt64()
    }
}

/// Everything the ledger holds for one address.
public struct Account: Sendable, Hashable, Codable, CanonicalCodable {
    /// Spendable balance.
    public var balance: Amount = .zero
    /// The nonce the next transaction from this account must carry.
    public var nonce: UInt64 = 0
    /// Bonded stake.
    public var staked: Amount = .zero
    /// Stake on its way out, released after `unbondingBlocks`.
    public var unbonding: [PendingRelease] = []
    /// Escrow available to pay for this account's requests.
    public var escrow: Amount = .zero
    /// Escrow withdrawals waiting for `escrowWithdrawDelayBlocks`.
    public var escrowUnlocking: [PendingRelease] = []

    public init() {}

    /// Every unit this account holds in any form, or `overflow`.
    public func total() throws -> Amount {
        var t = try balance.adding(staked).adding(escrow)
        for u in unbonding { t = try t.adding(u.amount) }
        for u in escrowUnlocking { t = try t.adding(u.amount) }
        return t
    }

    /// The sum of the unbonding entries.
    public var unbondingTotal: Amount {
        Amount(units: unbonding.reduce(0) { $0 &+ $1.amount.units })
    }

    /// The sum of the escrow withdrawals waiting.
    public var escrowUnlockingTotal: Amount {
        Amount(units: escrowUnlocking.reduce(0) { $0 &+ $1.amount.units })
    }

    /// Whether this account holds nothing and has never sent a transaction.
    public var isEmpty: Bool { self == Account() }

    public func encode(to w: inout CanonicalWriter) {
        w.write(balance)
        w.write(nonce)
        w.write(staked)
        w.write(array: unbonding)
        w.write(escrow)
        w.write(array: escrowUnlocking)
    }

    public init(from r: inout CanonicalReader) throws {
        balance = try r.readAmount()
        nonce = try r.readUInt64()
        staked = try r.readAmount()
        unbonding = try r.readArray(of: PendingRelease.self, limit: 1_000)
        escrow = try r.readAmount()
        escrowUnlocking = try r.readArray(of: PendingRelease.self, limit: 1_000)
    }
}
