import PlexusCore

/// One protocol parameter: its name, hard bounds and default.
///
/// Bounds are part of the protocol: genesis files and (later) governance
/// proposals that name a value outside them are rejected.
public struct ParamSpec: Sendable, Hashable {
    /// The parameter's stable name, as used in genesis files and proposals.
    public var name: String
    /// The smallest allowed value.
    public var min: UInt64
    /// The largest allowed value.
    public var max: UInt64
    /// The value a genesis gets when it does not name one.
    public var defaultValue: UInt64
    /// What the parameter means, for `plexus ledger params`.
    public var summary: String
}

/// Every protocol parameter, held in ledger state.
///
/// Values are stored in the order of `Params.specs` (sorted by name), so
/// the canonical encoding never depends on dictionary order.
/// A parameter set by governance: at which height, from what, to what.
public struct ParamChange: Sendable, Hashable, Codable, CanonicalCodable {
    public var height: UInt64
    public var name: String
    public var old: UInt64
    public var new: UInt64

    public init(height: UInt64, name: String, old: UInt64, new: UInt64) {
        self.height = height
        self.name = name
        self.old = old
        self.new = new
    }

    public func encode(to w: inout CanonicalWriter) { w.write(height); w.write(name); w.write(old); w.write(new) }

    public init(from r: inout CanonicalReader) throws {
        height = try r.readUInt64()
        name = try r.readString(limit: 64)
        old = try r.readUInt64()
        new = try r.readUInt64()
    }
}

public struct Params: Sendable, Hashable, CanonicalCodable {
    /// Identifies a parameter; the raw value is its index in `specs`.
    public enum Key: Int, CaseIterable, Sendable {
        case assemblyFloor
        case assemblySeats
        case assemblyTermBlocks
        case challengeBondMin
        case challengeWindowBlocks
        case challengerShareBps
        case committeeShareBps
        case committeeSize
        case councilApprovals
        case councilEpochBlocks
        case councilSize
        case dataDeliveryBlocks
        case disputeCommitBlocks
        case disputeRevealBlocks
        case escrowWithdrawDelayBlocks
        case gracePeriodBlocks
        case jailBlocks
        case lateQuorumExtensionBlocks
        case maxBlockTransactions
        case maxPendingReleases
        case maxTxBytes
        case minFee
        case minNodeStake
        case minVerifierStake
        case modelListing
        case premiumBandBps
        case premiumMax
        case premiumMaxChangeBps
        case premiumPeriodMillis
        case premiumStep
        case premiumTargetBps
        case premiumWindowMillis
        case proposalThreshold
        case protocolFeeBps
        case provenanceShareBps
        case quorumBps
        case quoteValidityBlocks
        case reputationHalfLifeBlocks
        case reputationPerSettlement
        case slashBps
        case slotTokensPerSecond
        case sortitionDelayBlocks
        case timelockBlocks
        case unbondingBlocks
        case verdictDeadlineBlocks
        case verifierFee
        case verifierPenaltyBps
        case verifyFirstRequests
        case verifySampleBps
        case votingDelayBlocks
        case votingPeriodBlocks

        /// The parameter's name.
        public var name: String { Params.specs[rawValue].name }
    }

    /// Name, bounds and default of every parameter, indexed by `Key.rawValue`.
    public static let specs: [ParamSpec] = [
        ParamSpec(name: "assemblyFloor", min: 0, max: 100, defaultValue: 1,
                  summary: "seats every federated community is guaranteed in the assembly (at most its size)"),
        ParamSpec(name: "assemblySeats", min: 1, max: 10_000, defaultValue: 20,
                  summary: "seats in the federation assembly, shared in proportion to community sizes"),
        ParamSpec(name: "assemblyTermBlocks", min: 1, max: 10_000_000, defaultValue: 200,
                  summary: "blocks an assembly sits before it is redrawn"),
        ParamSpec(name: "challengeBondMin", min: 1, max: 1_000_000_000 * Amount.unitsPerPLX, defaultValue: Amount.unitsPerPLX,
                  summary: "least bond, in base units, a challenge of a receipt must put up"),
        ParamSpec(name: "challengeWindowBlocks", min: 1, max: 1_000_000, defaultValue: 20,
                  summary: "blocks a settled request stays pending (open to challenge) before it is paid out"),
        ParamSpec(name: "challengerShareBps", min: 0, max: 10_000, defaultValue: 2_000,
                  summary: "share of a slash paid to the challenger whose challenge was upheld, in basis points"),
        ParamSpec(name: "committeeShareBps", min: 0, max: 10_000, defaultValue: 1_000,
                  summary: "share of a slash (or of a rejected challenge's bond) paid to the committee's majority, in basis points"),
        ParamSpec(name: "committeeSize", min: 1, max: 15, defaultValue: 3,
                  summary: "verifiers drawn by stake-weighted lot to decide a dispute"),
        ParamSpec(name: "councilApprovals", min: 1, max: 100, defaultValue: 3,
                  summary: "candidates one account may approve in a council election"),
        ParamSpec(name: "councilEpochBlocks", min: 1, max: 1_000_000, defaultValue: 50,
                  summary: "blocks between council elections and sortition draws"),
        ParamSpec(name: "councilSize", min: 1, max: 1_000, defaultValue: 5,
                  summary: "seats on an elected or sortition council"),
        ParamSpec(name: "dataDeliveryBlocks", min: 1, max: 10_000_000, defaultValue: 200,
                  summary: "data market: blocks a server has to deliver a dataset bought from it before the buyer may take its payment back"),
        ParamSpec(name: "disputeCommitBlocks", min: 1, max: 100_000, defaultValue: 5,
                  summary: "blocks a dispute committee has to commit its sealed votes, from the draw"),
        ParamSpec(name: "disputeRevealBlocks", min: 1, max: 100_000, defaultValue: 5,
                  summary: "blocks a dispute committee has to reveal its votes, after the commit phase"),
        ParamSpec(name: "escrowWithdrawDelayBlocks", min: 1, max: 1_000_000, defaultValue: 50,
                  summary: "blocks between an escrow withdrawal request and its release"),
        ParamSpec(name: "gracePeriodBlocks", min: 1, max: 1_000_000, defaultValue: 100,
                  summary: "blocks after a queued proposal's eta during which it may execute; then it expires"),
        ParamSpec(name: "jailBlocks", min: 0, max: 10_000_000, defaultValue: 1_000,
                  summary: "blocks a node or verifier found at fault is jailed: no traffic, no verdicts, no unstaking"),
        ParamSpec(name: "lateQuorumExtensionBlocks", min: 0, max: 100_000, defaultValue: 5,
                  summary: "least voting left after quorum is first reached (the deadline moves out once if needed)"),
        ParamSpec(name: "maxBlockTransactions", min: 1, max: 1_000_000, defaultValue: 50_000,
                  summary: "most transactions in one block"),
        ParamSpec(name: "maxPendingReleases", min: 1, max: 1_000, defaultValue: 32,
                  summary: "most unbonding or escrow releases one account may have waiting"),
        ParamSpec(name: "maxTxBytes", min: 128, max: 1 << 20, defaultValue: 16_384,
                  summary: "largest transaction in bytes"),
        ParamSpec(name: "minFee", min: 0, max: 1_000 * Amount.unitsPerPLX, defaultValue: 1_000,
                  summary: "smallest fee per transaction, in base units"),
        ParamSpec(name: "minNodeStake", min: 0, max: 1_000_000_000 * Amount.unitsPerPLX, defaultValue: 100 * Amount.unitsPerPLX,
                  summary: "least stake, in base units, an operator must hold to register and keep a node"),
        ParamSpec(name: "minVerifierStake", min: 0, max: 1_000_000_000 * Amount.unitsPerPLX, defaultValue: 10 * Amount.unitsPerPLX,
                  summary: "least stake, in base units, a verifier must hold (the same stake may secure a node too)"),
        ParamSpec(name: "modelListing", min: 0, max: 1, defaultValue: 0,
                  summary: "1: nodes may offer only models listed by governance"),
        ParamSpec(name: "premiumBandBps", min: 0, max: 5_000, defaultValue: 1_000,
                  summary: "spot price: the dead band around the target utilization within which a model's congestion premium stays put, in basis points"),
        ParamSpec(name: "premiumMax", min: 0, max: 1_000 * Amount.unitsPerPLX, defaultValue: 100 * Amount.unitsPerPLX,
                  summary: "spot price: the highest congestion premium, in base units per million tokens"),
        ParamSpec(name: "premiumMaxChangeBps", min: 1, max: 5_000, defaultValue: 1_250,
                  summary: "spot price: the most a premium changes in one update, as a share of itself, in basis points (EIP-1559: 1250)"),
        ParamSpec(name: "premiumPeriodMillis", min: 100, max: 3_600_000, defaultValue: 1_000,
                  summary: "spot price: block time between premium updates (a block after a quiet spell applies the updates it missed, at most 64)"),
        ParamSpec(name: "premiumStep", min: 1, max: Amount.unitsPerPLX, defaultValue: Amount.unitsPerPLX / 1_000,
                  summary: "spot price: the smallest change of a premium (its first step up from zero), in base units per million tokens"),
        ParamSpec(name: "premiumTargetBps", min: 100, max: 10_000, defaultValue: 5_000,
                  summary: "spot price: the utilization (tokens settled against the capacity offered) the premium steers toward, in basis points"),
        ParamSpec(name: "premiumWindowMillis", min: 1_000, max: 86_400_000, defaultValue: 60_000,
                  summary: "spot price: the block time over which utilization is measured"),
        ParamSpec(name: "proposalThreshold", min: 0, max: 1_000_000_000 * Amount.unitsPerPLX, defaultValue: 0,
                  summary: "least voting power (at the previous block) needed to make a proposal"),
        ParamSpec(name: "protocolFeeBps", min: 0, max: 2_000, defaultValue: 500,
                  summary: "share of every settled charge paid to the treasury, in basis points"),
        ParamSpec(name: "provenanceShareBps", min: 0, max: 10_000, defaultValue: 2_000,
                  summary: "data market: share of a model's royalty paid to the contributors of the datasets its card cites, in basis points"),
        ParamSpec(name: "quorumBps", min: 0, max: 10_000, defaultValue: 400,
                  summary: "quorum: share of the total voting power at the snapshot that must vote For or Abstain, in basis points"),
        ParamSpec(name: "quoteValidityBlocks", min: 1, max: 10_000_000, defaultValue: 10_000,
                  summary: "spot price: blocks a quoted premium stays valid for settlement (the premium history kept)"),
        ParamSpec(name: "reputationHalfLifeBlocks", min: 1, max: 100_000_000, defaultValue: 10_000,
                  summary: "blocks over which a node's or verifier's standing halves its distance to neutral"),
        ParamSpec(name: "reputationPerSettlement", min: 0, max: 1_000_000, defaultValue: 1,
                  summary: "reputation points a node's operator earns per request paid out"),
        ParamSpec(name: "slashBps", min: 0, max: 10_000, defaultValue: 1_000,
                  summary: "share of a node's stake (bonded and unbonding) slashed when fraud is upheld, in basis points"),
        ParamSpec(name: "slotTokensPerSecond", min: 1, max: 1_000_000, defaultValue: 20,
                  summary: "spot price: tokens a second one offered slot (an offer's concurrency) counts for in the capacity offered"),
        ParamSpec(name: "sortitionDelayBlocks", min: 1, max: 1_000, defaultValue: 2,
                  summary: "blocks between announcing a draw by lot and drawing it from the then-latest block hash"),
        ParamSpec(name: "timelockBlocks", min: 0, max: 1_000_000, defaultValue: 2,
                  summary: "blocks between queueing a passed proposal and the earliest execution"),
        ParamSpec(name: "unbondingBlocks", min: 1, max: 1_000_000, defaultValue: 100,
                  summary: "blocks between unstaking and the release of the stake"),
        ParamSpec(name: "verdictDeadlineBlocks", min: 1, max: 1_000_000, defaultValue: 10,
                  summary: "blocks an assigned verifier has to post its verdict, from the draw (less than the challenge window)"),
        ParamSpec(name: "verifierFee", min: 0, max: 1_000 * Amount.unitsPerPLX, defaultValue: 10_000,
                  summary: "base units the treasury pays a verifier per verdict that passes with evidence"),
        ParamSpec(name: "verifierPenaltyBps", min: 0, max: 10_000, defaultValue: 100,
                  summary: "share of a verifier's stake slashed for a bad-evidence verdict, a false failure or a vote against the majority"),
        ParamSpec(name: "verifyFirstRequests", min: 0, max: 1_000_000, defaultValue: 10,
                  summary: "a node's first settled requests that are all checked, whatever the sample rate"),
        ParamSpec(name: "verifySampleBps", min: 0, max: 10_000, defaultValue: 500,
                  summary: "base share of settled requests checked by re-execution, in basis points (raised for low standing)"),
        ParamSpec(name: "votingDelayBlocks", min: 0, max: 100_000, defaultValue: 1,
                  summary: "blocks from a proposal to its snapshot; voting opens after the snapshot"),
        ParamSpec(name: "votingPeriodBlocks", min: 1, max: 1_000_000, defaultValue: 20,
                  summary: "blocks voting stays open after the snapshot (deadline inclusive)"),
    ]

    private var values: [UInt64]

    /// Every parameter at its default.
    public static let defaults = Params(values: specs.map(\.defaultValue))

    private init(values: [UInt64]) { self.values = values }

    /// The value of `key`.
    public subscript(key: Key) -> UInt64 { values[key.rawValue] }

    /// Sets `name` to `value`, or throws if the name is unknown or the value is out of bounds.
    public mutating func set(_ name: String, to value: UInt64) throws {
        let key = try Self.check(name, value)
        values[key.rawValue] = value
    }

    /// The key for `name` if `value` is within its bounds; throws otherwise.
    @discardableResult
    public static func check(_ name: String, _ value: UInt64) throws -> Key {
        guard let i = specs.firstIndex(where: { $0.name == name }), let key = Key(rawValue: i) else {
            throw PlexusError(.notFound, "unknown parameter '\(name.prefix(64))'")
        }
        let spec = specs[i]
        guard value >= spec.min, value <= spec.max else {
            throw PlexusError(.outOfRange, "parameter \(name) = \(value) is outside its bounds \(spec.min)...\(spec.max)")
        }
        return key
    }

    /// Checks the bounds between parameters: a verdict comes before the challenge
    /// window closes; stake that starts unbonding when a request settles is still
    /// there when a dispute opened at the window's last block resolves; a slash's
    /// shares add up to at most all of it.
    public func checkRelations() throws {
        guard self[.verdictDeadlineBlocks] < self[.challengeWindowBlocks] else {
            throw PlexusError(.outOfRange, "verdictDeadlineBlocks (\(self[.verdictDeadlineBlocks])) must be less than challengeWindowBlocks (\(self[.challengeWindowBlocks]))")
        }
        let dispute = self[.challengeWindowBlocks] + 1 + self[.disputeCommitBlocks] + self[.disputeRevealBlocks]
        guard self[.unbondingBlocks] > dispute else {
            throw PlexusError(.outOfRange, "unbondingBlocks (\(self[.unbondingBlocks])) must exceed challengeWindowBlocks + 1 + disputeCommitBlocks + disputeRevealBlocks (\(dispute))")
        }
        guard self[.challengerShareBps] + self[.committeeShareBps] <= 10_000 else {
            throw PlexusError(.outOfRange, "challengerShareBps + committeeShareBps must be at most 10000")
        }
    }

    /// The value of `name`, if there is such a parameter.
    public func value(_ name: String) -> UInt64? {
        Self.specs.firstIndex { $0.name == name }.map { values[$0] }
    }

    /// These parameters as they stood after block `height`, with `changes` (every change since
    /// genesis, in order) undone back to it.
    public func at(_ height: UInt64, undoing changes: [ParamChange]) -> Params {
        var p = self
        for c in changes.reversed() where c.height > height {
            if let i = Self.specs.firstIndex(where: { $0.name == c.name }) { p.values[i] = c.old }
        }
        return p
    }

    /// Name-value pairs in canonical order.
    public var named: [(name: String, value: UInt64)] {
        zip(Self.specs, values).map { ($0.name, $1) }
    }

    public var minFee: Amount { Amount(units: self[.minFee]) }

    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt32(values.count))
        for v in values { w.write(v) }
    }

    public init(from r: inout CanonicalReader) throws {
        let n = Int(try r.readUInt32())
        guard n == Self.specs.count else {
            throw PlexusError(.malformed, "parameter table has \(n) entries, expected \(Self.specs.count) (stored by another version of Plexus? start a new data directory)")
        }
        var p = Params.defaults
        for i in 0..<n { try p.set(Self.specs[i].name, to: r.readUInt64()) }
        self = p
    }
}
