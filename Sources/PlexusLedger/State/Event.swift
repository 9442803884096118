import PlexusCore

/// A state change, emitted by the state machine for every effect it applies.
public enum Event: Sendable, Hashable {
    /// `amount` moved from `from` to `to`.
    case transferred(from: Address, to: Address, amount: Amount)
    /// `from` paid `amount` in fees to the treasury.
    case feePaid(from: Address, amount: Amount)
    /// `account` bonded `amount`.
    case staked(account: Address, amount: Amount)
    /// `account` began unbonding `amount`, free at `releaseHeight`.
    case unstaked(account: Address, amount: Amount, releaseHeight: UInt64)
    /// Unbonded stake returned to `account`'s balance.
    case unbonded(account: Address, amount: Amount)
    /// `payer` put `amount` into `requestor`'s escrow.
    case escrowDeposited(payer: Address, requestor: Address, amount: Amount)
    /// `requestor` asked to withdraw `amount` of escrow, free at `releaseHeight`.
    case escrowWithdrawRequested(requestor: Address, amount: Amount, releaseHeight: UInt64)
    /// Withdrawn escrow returned to `requestor`'s balance.
    case escrowReleased(requestor: Address, amount: Amount)

    /// The event's name in JSON.
    public var name: String {
        switch self {
        case .transferred: "transferred"
        case .feePaid: "fee_paid"
        case .staked: "staked"
        case .unstaked: "unstaked"
        case .unbonded: "unbonded"
        case .escrowDeposited: "escrow_deposited"
        case .escrowWithdrawRequested: "escrow_withdraw_requested"
        case .escrowReleased: "escrow_released"
        }
    }
}

extension Event: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .transferred(from, to, amount): w.write(UInt8(1)); w.write(from); w.write(to); w.write(amount)
        case let .feePaid(from, amount): w.write(UInt8(2)); w.write(from); w.write(amount)
        case let .staked(a, amount): w.write(UInt8(3)); w.write(a); w.write(amount)
        case let .unstaked(a, amount, h): w.write(UInt8(4)); w.write(a); w.write(amount); w.write(h)
        case let .unbonded(a, amount): w.write(UInt8(5)); w.write(a); w.write(amount)
        case let .escrowDeposited(p, r, amount): w.write(UInt8(6)); w.write(p); w.write(r); w.write(amount)
        case let .escrowWithdrawRequested(r, amount, h): w.write(UInt8(7)); w.write(r); w.write(amount); w.write(h)
        case let .escrowReleased(r, amount): w.write(UInt8(8)); w.write(r); w.write(amount)
        }
    }

    public init(from r: inout CanonicalReader) throws {
        switch try r.readUInt8() {
        case 1: self = .transferred(from: try r.readAddress(), to: try r.readAddress(), amount: try r.readAmount())
        case 2: self = .feePaid(from: try r.readAddress(), amount: try r.readAmount())
        case 3: self = .staked(account: try r.readAddress(), amount: try r.readAmount())
        case 4: self = .unstaked(account: try r.readAddress(), amount: try r.readAmount(), releaseHeight: try r.readUInt64())
        case 5: self = .unbonded(account: try r.readAddress(), amount: try r.readAmount())
        case 6: self = .escrowDeposited(payer: try r.readAddress(), requestor: try r.readAddress(), amount: try r.readAmount())
        case 7: self = .escrowWithdrawRequested(requestor: try r.readAddress(), amount: try r.readAmount(), releaseHeight: try r.readUInt64())
        case 8: self = .escrowReleased(requestor: try r.readAddress(), amount: try r.readAmount())
        case let t: throw PlexusError(.malformed, "unknown event tag \(t)")
        }
    }
}

extension Event: Codable {
    enum Keys: String, CodingKey {
        case kind, from, to, amount, account, releaseHeight, payer, requestor
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        func a(_ k: Keys) throws -> Address { try c.decode(Address.self, forKey: k) }
        func amt() throws -> Amount { try c.decode(Amount.self, forKey: .amount) }
        func h() throws -> UInt64 { try c.decode(UInt64.self, forKey: .releaseHeight) }
        switch try c.decode(String.self, forKey: .kind) {
        case "transferred": self = .transferred(from: try a(.from), to: try a(.to), amount: try amt())
        case "fee_paid": self = .feePaid(from: try a(.from), amount: try amt())
        case "staked": self = .staked(account: try a(.account), amount: try amt())
        case "unstaked": self = .unstaked(account: try a(.account), amount: try amt(), releaseHeight: try h())
        case "unbonded": self = .unbonded(account: try a(.account), amount: try amt())
        case "escrow_deposited": self = .escrowDeposited(payer: try a(.payer), requestor: try a(.requestor), amount: try amt())
        case "escrow_withdraw_requested":
            self = .escrowWithdrawRequested(requestor: try a(.requestor), amount: try amt(), releaseHeight: try h())
        case "escrow_released": self = .escrowReleased(requestor: try a(.requestor), amount: try amt())
        case let k: throw PlexusError(.unknownKind, "unknown event kind '\(k.prefix(64))'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(name, forKey: .kind)
        switch self {
        case let .transferred(from, to, amount):
            try c.encode(from, forKey: .from); try c.encode(to, forKey: .to); try c.encode(amount, forKey: .amount)
        case let .feePaid(from, amount):
            try c.encode(from, forKey: .from); try c.encode(amount, forKey: .amount)
        case let .staked(a, amount), let .unbonded(a, amount):
            try c.encode(a, forKey: .account); try c.encode(amount, forKey: .amount)
        case let .unstaked(a, amount, h):
            try c.encode(a, forKey: .account); try c.encode(amount, forKey: .amount); try c.encode(h, forKey: .releaseHeight)
        case let .escrowDeposited(p, r, amount):
            try c.encode(p, forKey: .payer); try c.encode(r, forKey: .requestor); try c.encode(amount, forKey: .amount)
        case let .escrowWithdrawRequested(r, amount, h):
            try c.encode(r, forKey: .requestor); try c.encode(amount, forKey: .amount); try c.encode(h, forKey: .releaseHeight)
        case let .escrowReleased(r, amount):
            try c.encode(r, forKey: .requestor); try c.encode(amount, forKey: .amount)
        }
    }
}

/// An event with where it happened: the block height and, for events caused
/// by a transaction, that transaction's index and hash.
public struct BlockEvent: Sendable, Hashable, Codable, CanonicalCodable {
    /// The block's height.
    public var height: UInt64
    /// The causing transaction's index in the block; nil for block-start effects (releases).
    public var txIndex: UInt32?
    /// The event.
    public var event: Event

    public init(height: UInt64, txIndex: UInt32?, event: Event) {
        self.height = height
        self.txIndex = txIndex
        self.event = event
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(height)
        if let txIndex { w.write(UInt8(1)); w.write(txIndex) } else { w.write(UInt8(0)) }
        event.encode(to: &w)
    }

    public init(from r: inout CanonicalReader) throws {
        height = try r.readUInt64()
        txIndex = try r.readBool() ? try r.readUInt32() : nil
        event = try Event(from: &r)
    }
}
