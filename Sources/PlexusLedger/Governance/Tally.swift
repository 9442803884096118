import PlexusCore

/// A ballot's choices, numbered as in OpenZeppelin's Governor.
public enum Choice: Int, CaseIterable, Sendable {
    case against = 0
    case `for` = 1
    case abstain = 2

    public var name: String {
        switch self {
        case .against: "against"
        case .for: "for"
        case .abstain: "abstain"
        }
    }

    public init(name: String) throws {
        guard let c = Self.allCases.first(where: { $0.name == name.lowercased() }) else {
            throw PlexusError(.malformed, "a choice is one of for, against, abstain (got '\(name.prefix(32))')")
        }
        self = c
    }

    /// The weights of a ballot that puts everything on this choice.
    public var weights: [UInt32] {
        var w: [UInt32] = [0, 0, 0]
        w[rawValue] = 1
        return w
    }
}

/// How votes are counted.
public enum Ballots {
    /// Largest weight a ballot may give one choice.
    public static let maxWeight: UInt32 = 1_000_000

    /// Checks a ballot's weights (against, for, abstain): three weights, each
    /// at most `maxWeight`, not all zero; schemes other than quadratic take a
    /// single choice.
    public static func validate(_ weights: [UInt32], splitAllowed: Bool) throws {
        guard weights.count == Choice.allCases.count else {
            throw PlexusError(.malformed, "a ballot has \(Choice.allCases.count) weights (against, for, abstain); got \(weights.count)")
        }
        guard weights.allSatisfy({ $0 <= maxWeight }) else {
            throw PlexusError(.outOfRange, "a ballot weight is at most \(maxWeight)")
        }
        let nonzero = weights.filter { $0 > 0 }.count
        guard nonzero > 0 else { throw PlexusError(.malformed, "a ballot must give weight to at least one choice") }
        guard splitAllowed || nonzero == 1 else {
            throw PlexusError(.malformed, "only quadratic voting splits a ballot between choices; choose one")
        }
    }
}

/// The running count of one proposal in one community.
///
/// Linear schemes add each voter's power to the chosen choice. Quadratic
/// counts as Snapshot does: a voter of power *p* giving share *s* of a
/// ballot to a choice adds √(p·s) to that choice's root sum; a choice's
/// score is its root sum squared, and the scores are rescaled to sum to the
/// power of all valid votes. All in integers: roots are fixed point with 16
/// fractional bits and exact (floor) integer square roots.
public struct Tally: Sendable, Hashable, CanonicalCodable {
    /// Linear sums per choice (against, for, abstain).
    public private(set) var sums: [UInt64] = [0, 0, 0]
    /// Quadratic root sums per choice, fixed point (×2¹⁶).
    public private(set) var roots: [UInt128] = [0, 0, 0]
    /// Power of every valid vote counted.
    public private(set) var power: UInt64 = 0
    /// Ballots counted.
    public private(set) var voters: UInt64 = 0
    public let quadratic: Bool

    public init(quadratic: Bool) { self.quadratic = quadratic }

    static let fractionBits: UInt128 = 32  // of the radicand; 16 of the root

    /// Adds a validated ballot of `power`. Power sums cannot overflow: every
    /// power counted is part of a total that fits in 64 bits.
    public mutating func add(power p: UInt64, weights: [UInt32]) {
        guard p > 0 else { return }
        voters &+= 1
        power &+= p
        if quadratic {
            var total: UInt128 = 0
            for w in weights { total += UInt128(w) }
            for (c, w) in weights.enumerated() where w > 0 {
                let radicand = (UInt128(p) * UInt128(w)) << Self.fractionBits / total
                roots[c] &+= Self.isqrt(radicand)
            }
        } else {
            for (c, w) in weights.enumerated() where w > 0 { sums[c] &+= p }
        }
    }

    /// Scores per choice (against, for, abstain) in units of power.
    public var scores: [UInt64] {
        guard quadratic else { return sums }
        // Square the root sums after a common shift that keeps each square
        // and their sum below 2¹²⁶; the rescale divides the shift out.
        let largest = roots.max() ?? 0
        var shift: UInt128 = 0
        while (largest >> shift) >= (1 << 62) { shift += 1 }
        let squares = roots.map { ($0 >> shift) * ($0 >> shift) }
        let denominator = squares.reduce(0, +)
        guard denominator > 0 else { return [0, 0, 0] }
        return squares.map { sq in
            let wide = UInt128(power).multipliedFullWidth(by: sq)
            let q = denominator.dividingFullWidth((high: wide.high, low: wide.low)).quotient
            return UInt64(q)
        }
    }

    public var forVotes: UInt64 { scores[Choice.for.rawValue] }
    public var againstVotes: UInt64 { scores[Choice.against.rawValue] }
    public var abstainVotes: UInt64 { scores[Choice.abstain.rawValue] }

    /// ⌊√n⌋ exactly: a floating-point estimate corrected by a Newton step
    /// and integer adjustment, so the result never depends on rounding.
    public static func isqrt(_ n: UInt128) -> UInt128 {
        guard n > 1 else { return n }
        let approx = (Double(UInt64(truncatingIfNeeded: n >> 64)) * 18446744073709551616.0
            + Double(UInt64(truncatingIfNeeded: n))).squareRoot()
        // √n < 2⁶⁴ for every 128-bit n, so r stays below 2⁶⁴ and r² cannot overflow.
        let top = UInt128(UInt64.max)
        var r = approx >= 1.8446744073709552e19 ? top : UInt128(UInt64(approx))
        if r == 0 { r = 1 }
        r = min(top, (r + n / r) >> 1)
        while r * r > n { r -= 1 }
        while r < top && (r + 1) * (r + 1) <= n { r += 1 }
        return r
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(quadratic)
        for s in sums { w.write(s) }
        for r in roots { w.write(UInt64(truncatingIfNeeded: r >> 64)); w.write(UInt64(truncatingIfNeeded: r)) }
        w.write(power)
        w.write(voters)
    }

    public init(from r: inout CanonicalReader) throws {
        quadratic = try r.readBool()
        sums = [try r.readUInt64(), try r.readUInt64(), try r.readUInt64()]
        var roots: [UInt128] = []
        for _ in 0..<3 {
            let hi = try r.readUInt64(), lo = try r.readUInt64()
            roots.append(UInt128(hi) << 64 | UInt128(lo))
        }
        self.roots = roots
        power = try r.readUInt64()
        voters = try r.readUInt64()
    }
}
