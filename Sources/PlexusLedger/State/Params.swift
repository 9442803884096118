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
public struct Params: Sendable, Hashable, CanonicalCodable {
    /// Identifies a parameter; the raw value is its index in `specs`.
    public enum Key: Int, CaseIterable, Sendable {
        case challengeWindowBlocks
        case escrowWithdrawDelayBlocks
        case maxBlockTransactions
        case maxPendingReleases
        case maxTxBytes
        case minFee
        case minNodeStake
        case protocolFeeBps
        case unbondingBlocks
    }

    /// Name, bounds and default of every parameter, indexed by `Key.rawValue`.
    public static let specs: [ParamSpec] = [
        ParamSpec(name: "challengeWindowBlocks", min: 1, max: 1_000_000, defaultValue: 20,
                  summary: "blocks a settled request stays pending (open to challenge) before it is paid out"),
        ParamSpec(name: "escrowWithdrawDelayBlocks", min: 1, max: 1_000_000, defaultValue: 50,
                  summary: "blocks between an escrow withdrawal request and its release"),
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
        ParamSpec(name: "protocolFeeBps", min: 0, max: 2_000, defaultValue: 500,
                  summary: "share of every settled charge paid to the treasury, in basis points"),
        ParamSpec(name: "unbondingBlocks", min: 1, max: 1_000_000, defaultValue: 100,
                  summary: "blocks between unstaking and the release of the stake"),
    ]

    private var values: [UInt64]

    /// Every parameter at its default.
    public static let defaults = Params(values: specs.map(\.defaultValue))

    private init(values: [UInt64]) { self.values = values }

    /// The value of `key`.
    public subscript(key: Key) -> UInt64 { values[key.rawValue] }

    /// Sets `name` to `value`, or throws if the name is unknown or the value is out of bounds.
    public mutating func set(_ name: String, to value: UInt64) throws {
        guard let i = Self.specs.firstIndex(where: { $0.name == name }) else {
            throw PlexusError(.notFound, "unknown parameter '\(name)'")
        }
        let spec = Self.specs[i]
        guard value >= spec.min, value <= spec.max else {
            throw PlexusError(.outOfRange, "parameter \(name) = \(value) is outside its bounds \(spec.min)...\(spec.max)")
        }
        values[i] = value
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
            throw PlexusError(.malformed, "parameter table has \(n) entries, expected \(Self.specs.count)")
        }
        var p = Params.defaults
        for i in 0..<n { try p.set(Self.specs[i].name, to: r.readUInt64()) }
        self = p
    }
}
