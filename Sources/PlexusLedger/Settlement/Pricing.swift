import PlexusCore

/// What a request costs and how the charge is divided. Integer arithmetic
/// only, so every replica computes the same units.
public enum Pricing {
    /// Basis points in one whole.
    public static let basisPoints: UInt64 = 10_000
    /// Prices are quoted per this many tokens.
    public static let tokensPerQuote: UInt64 = 1_000_000

    /// ⌈(input·priceIn + output·priceOut) / 10⁶⌉ base units: a request that
    /// used any priced token costs at least one unit. Throws `overflow` when
    /// the exact result does not fit an amount.
    public static func cost(inputTokens: UInt64, outputTokens: UInt64, priceIn: Amount, priceOut: Amount) throws -> Amount {
        let a = inputTokens.multipliedFullWidth(by: priceIn.units)
        let b = outputTokens.multipliedFullWidth(by: priceOut.units)
        // 128-bit sum (high, low).
        let (low, carry) = a.low.addingReportingOverflow(b.low)
        let (high1, o1) = a.high.addingReportingOverflow(b.high)
        let (high, o2) = high1.addingReportingOverflow(carry ? 1 : 0)
        guard !o1, !o2 else { throw PlexusError(.overflow, "request cost overflows") }
        // Divide the 128-bit numerator by 10⁶, rounding up.
        guard high < tokensPerQuote else { throw PlexusError(.overflow, "request cost overflows") }
        let (q, r) = tokensPerQuote.dividingFullWidth((high: high, low: low))
        if r == 0 { return Amount(units: q) }
        guard q < UInt64.max else { throw PlexusError(.overflow, "request cost overflows") }
        return Amount(units: q + 1)
    }

    /// A charge divided into the node's payout, the protocol fee and the
    /// model creator's royalty; the three always add up to the charge.
    public struct Split: Sendable, Hashable {
        public var node: Amount
        public var fee: Amount
        public var royalty: Amount
    }

    /// fee = ⌊charge·feeBps/10⁴⌋, royalty = ⌊charge·royaltyBps/10⁴⌋, the
    /// node gets the rest (so rounding favours the node). Throws when the
    /// two rates together exceed the whole.
    public static func split(_ charge: Amount, feeBps: UInt64, royaltyBps: UInt64) throws -> Split {
        guard feeBps <= basisPoints, royaltyBps <= basisPoints, feeBps + royaltyBps <= basisPoints else {
            throw PlexusError(.outOfRange, "fee \(feeBps) bp and royalty \(royaltyBps) bp exceed the whole charge")
        }
        func part(_ bps: UInt64) -> UInt64 {
            // ⌊charge·bps/10⁴⌋ ≤ charge: fits, and the full-width division cannot trap.
            basisPoints.dividingFullWidth(charge.units.multipliedFullWidth(by: bps)).quotient
        }
        let fee = part(feeBps), royalty = part(royaltyBps)
        return Split(node: Amount(units: charge.units - fee - royalty), fee: Amount(units: fee), royalty: Amount(units: royalty))
    }
}
