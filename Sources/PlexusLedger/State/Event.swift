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
    /// A node was registered, updated or removed (by its owner's account).
    case nodeRegistered(owner: Address, nodeKey: Address)
    case nodeUpdated(owner: Address)
    case nodeDeregistered(owner: Address)
    /// A model card was registered.
    case modelRegistered(model: String, creator: Address)
    /// A gateway key was bound to its owner.
    case gatewayRegistered(key: Address, owner: Address)
    /// A request's charge moved from escrow to pending.
    case settlementPending(requestId: Hash256, requestor: Address, amount: Amount, releaseHeight: UInt64)
    /// A receipt in a settlement batch was refused (nothing moved for it).
    case settlementRejected(requestId: Hash256, reason: String)
    /// A pending settlement was paid out.
    case settlementFinal(requestId: Hash256, amount: Amount)
    /// A governance effect: `action` (e.g. `proposal_created`, `vote_cast`,
    /// `param_changed`, `council_seated`) on `subject` (a proposal id, a
    /// community, an account), with a short `detail`.
    case governance(action: String, subject: String, detail: String)
    /// A verification effect: `action` (e.g. `check_assigned`, `check_passed`,
    /// `dispute_opened`, `fraud_upheld`) on `subject` (a request id, an account), with a short `detail`.
    case trust(action: String, subject: String, detail: String)
    /// A market effect: `action` (e.g. `agent_granted`, `agent_revoked`, `call_paid`) on
    /// `subject` (an account, a request id), with a short `detail`.
    case market(action: String, subject: String, detail: String)
    /// A transaction a replicated block carried that the state refused (a stale nonce, too
    /// little balance): it changed nothing, on every replica alike.
    case transactionInvalid(hash: Hash256, reason: String)

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
        case .nodeRegistered: "node_registered"
        case .nodeUpdated: "node_updated"
        case .nodeDeregistered: "node_deregistered"
        case .modelRegistered: "model_registered"
        case .gatewayRegistered: "gateway_registered"
        case .settlementPending: "settlement_pending"
        case .settlementRejected: "settlement_rejected"
        case .settlementFinal: "settlement_final"
        case .governance: "governance"
        case .trust: "trust"
        case .market: "market"
        case .transactionInvalid: "transaction_invalid"
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
        case let .nodeRegistered(o, k): w.write(UInt8(9)); w.write(o); w.write(k)
        case let .nodeUpdated(o): w.write(UInt8(10)); w.write(o)
        case let .nodeDeregistered(o): w.write(UInt8(11)); w.write(o)
        case let .modelRegistered(m, c): w.write(UInt8(12)); w.write(m); w.write(c)
        case let .gatewayRegistered(k, o): w.write(UInt8(13)); w.write(k); w.write(o)
        case let .settlementPending(id, r, amount, h): w.write(UInt8(14)); w.write(id); w.write(r); w.write(amount); w.write(h)
        case let .settlementRejected(id, reason): w.write(UInt8(15)); w.write(id); w.write(reason)
        case let .settlementFinal(id, amount): w.write(UInt8(16)); w.write(id); w.write(amount)
        case let .governance(a, s, d): w.write(UInt8(17)); w.write(a); w.write(s); w.write(d)
        case let .trust(a, s, d): w.write(UInt8(18)); w.write(a); w.write(s); w.write(d)
        case let .market(a, s, d): w.write(UInt8(20)); w.write(a); w.write(s); w.write(d)
        case let .transactionInvalid(h, reason): w.write(UInt8(19)); w.write(h); w.write(reason)
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
        case 9: self = .nodeRegistered(owner: try r.readAddress(), nodeKey: try r.readAddress())
        case 10: self = .nodeUpdated(owner: try r.readAddress())
        case 11: self = .nodeDeregistered(owner: try r.readAddress())
        case 12: self = .modelRegistered(model: try r.readString(limit: Registry.maxName), creator: try r.readAddress())
        case 13: self = .gatewayRegistered(key: try r.readAddress(), owner: try r.readAddress())
        case 14:
            self = .settlementPending(requestId: try r.readHash(), requestor: try r.readAddress(), amount: try r.readAmount(),
                                      releaseHeight: try r.readUInt64())
        case 15: self = .settlementRejected(requestId: try r.readHash(), reason: try r.readString(limit: 512))
        case 16: self = .settlementFinal(requestId: try r.readHash(), amount: try r.readAmount())
        case 17: self = .governance(action: try r.readString(limit: 64), subject: try r.readString(limit: 256), detail: try r.readString(limit: 1024))
        case 18: self = .trust(action: try r.readString(limit: 64), subject: try r.readString(limit: 256), detail: try r.readString(limit: 2048))
        case 20: self = .market(action: try r.readString(limit: 64), subject: try r.readString(limit: 256), detail: try r.readString(limit: 2048))
        case 19: self = .transactionInvalid(hash: try r.readHash(), reason: try r.readString(limit: 512))
        case let t: throw PlexusError(.malformed, "unknown event tag \(t)")
        }
    }
}

extension Event: Codable {
    enum Keys: String, CodingKey {
        case kind, from, to, amount, account, releaseHeight, payer, requestor
        case owner, nodeKey, model, creator, key, requestId, reason
        case action, subject, detail, hash
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
        case "node_registered": self = .nodeRegistered(owner: try a(.owner), nodeKey: try a(.nodeKey))
        case "node_updated": self = .nodeUpdated(owner: try a(.owner))
        case "node_deregistered": self = .nodeDeregistered(owner: try a(.owner))
        case "model_registered": self = .modelRegistered(model: try c.decode(String.self, forKey: .model), creator: try a(.creator))
        case "gateway_registered": self = .gatewayRegistered(key: try a(.key), owner: try a(.owner))
        case "settlement_pending":
            self = .settlementPending(requestId: try c.decode(Hash256.self, forKey: .requestId), requestor: try a(.requestor),
                                      amount: try amt(), releaseHeight: try h())
        case "settlement_rejected":
            self = .settlementRejected(requestId: try c.decode(Hash256.self, forKey: .requestId), reason: try c.decode(String.self, forKey: .reason))
        case "settlement_final": self = .settlementFinal(requestId: try c.decode(Hash256.self, forKey: .requestId), amount: try amt())
        case "governance":
            self = .governance(action: try c.decode(String.self, forKey: .action), subject: try c.decode(String.self, forKey: .subject),
                               detail: try c.decode(String.self, forKey: .detail))
        case "market":
            self = .market(action: try c.decode(String.self, forKey: .action), subject: try c.decode(String.self, forKey: .subject),
                           detail: try c.decode(String.self, forKey: .detail))
        case "trust":
            self = .trust(action: try c.decode(String.self, forKey: .action), subject: try c.decode(String.self, forKey: .subject),
                          detail: try c.decode(String.self, forKey: .detail))
        case "transaction_invalid":
            self = .transactionInvalid(hash: try c.decode(Hash256.self, forKey: .hash), reason: try c.decode(String.self, forKey: .reason))
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
        case let .nodeRegistered(o, k):
            try c.encode(o, forKey: .owner); try c.encode(k, forKey: .nodeKey)
        case let .nodeUpdated(o), let .nodeDeregistered(o):
            try c.encode(o, forKey: .owner)
        case let .modelRegistered(m, cr):
            try c.encode(m, forKey: .model); try c.encode(cr, forKey: .creator)
        case let .gatewayRegistered(k, o):
            try c.encode(k, forKey: .key); try c.encode(o, forKey: .owner)
        case let .settlementPending(id, r, amount, h):
            try c.encode(id, forKey: .requestId); try c.encode(r, forKey: .requestor)
            try c.encode(amount, forKey: .amount); try c.encode(h, forKey: .releaseHeight)
        case let .settlementRejected(id, reason):
            try c.encode(id, forKey: .requestId); try c.encode(reason, forKey: .reason)
        case let .settlementFinal(id, amount):
            try c.encode(id, forKey: .requestId); try c.encode(amount, forKey: .amount)
        case let .governance(a, s, d), let .trust(a, s, d), let .market(a, s, d):
            try c.encode(a, forKey: .action); try c.encode(s, forKey: .subject); try c.encode(d, forKey: .detail)
        case let .transactionInvalid(h, reason):
            try c.encode(h, forKey: .hash); try c.encode(reason, forKey: .reason)
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
