import PlexusCore

/// The compute market's spot price: every node's offer is its ask (a floor), and each model
/// has a congestion premium, the same for all its nodes, that follows utilization — tokens
/// settled against the capacity offered over a window — as EIP-1559's base fee follows gas
/// used. A request pays its node's ask plus the premium locked when its gateway admitted it.
/// The premium goes to the treasury, never to a node: a node that sent itself traffic to raise
/// it would pay the premium (and the fee) and get back only its ask.
public enum SpotPrice {
    /// The rule's governed parameters.
    public struct Rule: Sendable, Hashable {
        public var targetBps: UInt64
        public var bandBps: UInt64
        public var maxChangeBps: UInt64
        public var step: UInt64
        public var max: UInt64

        public init(targetBps: UInt64, bandBps: UInt64, maxChangeBps: UInt64, step: UInt64, max: UInt64) {
            self.targetBps = targetBps
            self.bandBps = bandBps
            self.maxChangeBps = maxChangeBps
            self.step = step
            self.max = max
        }

        public init(_ p: Params) {
            self.init(targetBps: p[.premiumTargetBps], bandBps: p[.premiumBandBps], maxChangeBps: p[.premiumMaxChangeBps],
                      step: p[.premiumStep], max: p[.premiumMax])
        }

        /// The most one update moves `premium`: its share `maxChangeBps`, or one step if that is more.
        public func bound(_ premium: UInt64) -> UInt64 { Swift.max(step, Self.share(premium, maxChangeBps)) }

        static func share(_ x: UInt64, _ bps: UInt64) -> UInt64 { UInt64(10_000).dividingFullWidth(x.multipliedFullWidth(by: bps)).quotient }
    }

    /// The premium after one update at utilization `u` (basis points of capacity): unchanged
    /// within the dead band around the target; above it, up by the premium's share
    /// `maxChangeBps` × (u − target)/target (that fraction at most 1), at least one step, at
    /// most `max`; below it, down likewise, to zero at the least. Never above `max` (a premium
    /// above a `max` that governance lowered comes down to it at once).
    public static func next(_ premium: UInt64, utilizationBps u: UInt64, rule r: Rule) -> UInt64 {
        let t = r.targetBps
        if u > t &+ r.bandBps {
            let delta = Swift.max(r.step, proportional(premium, Swift.min(u - t, t), t, r.maxChangeBps))
            let (up, o) = premium.addingReportingOverflow(delta)
            return o ? r.max : Swift.min(r.max, up)
        }
        if u &+ r.bandBps < t {
            let delta = Swift.max(r.step, proportional(premium, Swift.min(t - u, t), t, r.maxChangeBps))
            return Swift.min(r.max, premium > delta ? premium - delta : 0)
        }
        return Swift.min(premium, r.max)
    }

    /// ⌊p · bps/10⁴ · a/b⌋ with a ≤ b, without overflow.
    static func proportional(_ p: UInt64, _ a: UInt64, _ b: UInt64, _ bps: UInt64) -> UInt64 {
        let x = Rule.share(p, bps)
        return b == 0 ? x : b.dividingFullWidth(x.multipliedFullWidth(by: a)).quotient
    }

    /// The premium a request's receipts pay at `premium` base units per million tokens: on the
    /// tokens each sampling share read and wrote (a pipeline's other shards add none), and the
    /// tokens they count (for utilization).
    public static func premiumCost(_ receipts: [Receipt], premium: UInt64) throws -> (amount: Amount, tokens: UInt64) {
        var amount = Amount.zero, tokens: UInt64 = 0
        for r in receipts where r.samples {
            amount = try amount.adding(try Pricing.cost(inputTokens: r.inputTokens, outputTokens: r.outputTokens,
                                                        priceIn: Amount(units: premium), priceOut: Amount(units: premium)))
            tokens = tokens &+ r.inputTokens &+ r.outputTokens
        }
        return (amount, tokens)
    }

    /// Utilization in basis points: `tokens` against `slots` × `tokensPerSecond` over `windowMillis`
    /// (no capacity: 0 with no tokens, else the most); at most 10⁶ (a hundredfold).
    public static func utilizationBps(tokens: UInt64, slots: UInt64, tokensPerSecond: UInt64, windowMillis: UInt64) -> UInt64 {
        let (a, o1) = slots.multipliedReportingOverflow(by: tokensPerSecond)
        let (b, o2) = a.multipliedReportingOverflow(by: windowMillis)
        let capacity = o1 || o2 ? UInt64.max / 1_000 : b / 1_000  // tokens the window could hold
        guard capacity > 0 else { return tokens == 0 ? 0 : 1_000_000 }
        let (n, o3) = tokens.multipliedReportingOverflow(by: 10_000)
        return o3 ? 1_000_000 : Swift.min(1_000_000, n / capacity)
    }
}

/// One model's spot market on the ledger: its premium (base units per million tokens), when it
/// was last updated (block time), the tokens settled recently and the premium's history (for
/// checking quotes), each bounded.
public struct SpotMarket: Sendable, Hashable, Codable, CanonicalCodable {
    /// Tokens settled for the model in one block.
    public struct Sample: Sendable, Hashable, Codable {
        public var timeMillis: UInt64
        public var tokens: UInt64
        public init(timeMillis: UInt64, tokens: UInt64) {
            self.timeMillis = timeMillis
            self.tokens = tokens
        }
    }
    /// The premium in force from `height` on.
    public struct Change: Sendable, Hashable, Codable {
        public var height: UInt64
        public var premium: UInt64
        public init(height: UInt64, premium: UInt64) {
            self.height = height
            self.premium = premium
        }
    }

    public var premium: UInt64 = 0
    public var updatedMillis: UInt64 = 0
    public var samples: [Sample] = []
    public var history: [Change] = []

    public static let maxSamples = 4_096
    public static let maxHistory = 65_536

    public init() {}

    /// The premium in force at `height`, if the history reaches back that far (the first
    /// change is the premium in force at the start of what is kept).
    public func premium(at height: UInt64) -> UInt64? {
        guard let first = history.first else { return premium }
        guard height >= first.height else { return nil }
        return history.last { $0.height <= height }?.premium
    }

    /// The highest premium in force at any height from `height` on.
    public func highest(since height: UInt64) -> UInt64 {
        var top = premium
        for (i, c) in history.enumerated() where i + 1 == history.count || history[i + 1].height > height { top = max(top, c.premium) }
        return top
    }

    /// Tokens settled in the window ending at `now`.
    public func tokens(since start: UInt64) -> UInt64 {
        samples.reduce(0) { $1.timeMillis >= start ? $0 &+ $1.tokens : $0 }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(premium); w.write(updatedMillis)
        w.write(UInt32(samples.count)); for s in samples { w.write(s.timeMillis); w.write(s.tokens) }
        w.write(UInt32(history.count)); for c in history { w.write(c.height); w.write(c.premium) }
    }

    public init(from r: inout CanonicalReader) throws {
        premium = try r.readUInt64()
        updatedMillis = try r.readUInt64()
        let n = Int(try r.readUInt32())
        guard n <= Self.maxSamples else { throw PlexusError(.tooLarge, "a spot market keeps at most \(Self.maxSamples) samples") }
        samples = try (0..<n).map { _ in Sample(timeMillis: try r.readUInt64(), tokens: try r.readUInt64()) }
        let m = Int(try r.readUInt32())
        guard m <= Self.maxHistory else { throw PlexusError(.tooLarge, "a spot market keeps at most \(Self.maxHistory) changes") }
        history = try (0..<m).map { _ in Change(height: try r.readUInt64(), premium: try r.readUInt64()) }
    }
}

/// A premium a gateway locked for a request when it admitted it: the model's premium in force
/// at `height`. The ledger settles the request at that premium if it is the one its history
/// holds for that height and the quote is at most `quoteValidityBlocks` old.
public struct SpotQuote: Sendable, Hashable, Codable, CanonicalCodable {
    public var requestId: Hash256
    public var premium: UInt64
    public var height: UInt64

    public init(requestId: Hash256, premium: UInt64, height: UInt64) {
        self.requestId = requestId
        self.premium = premium
        self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(requestId); w.write(premium); w.write(height) }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        premium = try r.readUInt64()
        height = try r.readUInt64()
    }
}

/// What a settled request paid as premium, beside its settlement (only where it paid one).
public struct SpotCharge: Sendable, Hashable, Codable, CanonicalCodable {
    public var premium: UInt64
    public var quoteHeight: UInt64
    public var amount: Amount

    public init(premium: UInt64, quoteHeight: UInt64, amount: Amount) {
        self.premium = premium
        self.quoteHeight = quoteHeight
        self.amount = amount
    }

    public func encode(to w: inout CanonicalWriter) { w.write(premium); w.write(quoteHeight); w.write(amount) }

    public init(from r: inout CanonicalReader) throws {
        premium = try r.readUInt64()
        quoteHeight = try r.readUInt64()
        amount = try r.readAmount()
    }
}

/// A model's compute market as `GET /v1/market/prices` shows it: the premium in force (base
/// units per million tokens) at the height read, the utilization it is steered by, every
/// node's ask, and the premium's recent changes.
public struct MarketView: Sendable, Codable {
    public struct Ask: Sendable, Codable, Hashable {
        public var node: Address
        public var owner: Address
        public var priceIn: Amount
        public var priceOut: Amount
        public var concurrency: UInt32
        /// The longest context the node takes (its offer's, at most the card's).
        public var contextLength: UInt32
        public var region: String
        /// Uptime, latency and throughput as gateways measured them (nil: never measured).
        public var service: ServiceView?
    }

    public var model: String
    /// The model card's quantization (every node serves the card's weights).
    public var quantization: String
    public var height: UInt64
    public var premium: UInt64
    public var utilizationBps: UInt64
    public var offeredSlots: UInt64
    public var asks: [Ask]
    public var history: [SpotMarket.Change]

    public init(model: String, in state: LedgerState) {
        self.model = model
        quantization = state.models[model]?.quantization ?? ""
        height = state.height
        premium = state.spot[model]?.premium ?? 0
        utilizationBps = state.utilizationBps(model)
        offeredSlots = state.offeredSlots(model)
        asks = state.nodes.values.filter { !state.standing($0.owner).isJailed(at: state.height) }.flatMap { n in
            n.offers.filter { $0.model == model && $0.layers == nil }
                .map { Ask(node: n.nodeKey, owner: n.owner, priceIn: $0.priceIn, priceOut: $0.priceOut, concurrency: $0.concurrency,
                           contextLength: min($0.contextLength, state.models[model]?.contextLength ?? $0.contextLength), region: $0.region,
                           service: state.serviceView(node: n.nodeKey, model: model)) }
        }.sorted { ($0.priceIn.units &+ $0.priceOut.units, $0.node) < ($1.priceIn.units &+ $1.priceOut.units, $1.node) }
        history = Array((state.spot[model]?.history ?? []).suffix(256))
    }
}
