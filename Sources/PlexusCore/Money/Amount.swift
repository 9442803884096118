import Foundation

/// A quantity of PLX in integer base units: 1 PLX = 10^9 base units.
///
/// All arithmetic is checked and throws `overflow` / `underflow` rather than
/// wrapping or trapping, because amounts come from the network. JSON carries
/// amounts as decimal strings of base units so that no client loses precision
/// in a float; the command line accepts PLX with up to nine decimals.
public struct Amount: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Base units per PLX.
    public static let unitsPerPLX: UInt64 = 1_000_000_000
    /// The largest representable amount (about 18.4 billion PLX).
    public static let max = Amount(units: .max)
    /// Nothing.
    public static let zero = Amount(units: 0)

    /// The value in base units.
    public var units: UInt64

    /// An amount of `units` base units.
    public init(units: UInt64) { self.units = units }

    /// An amount of whole PLX; throws on overflow.
    public static func plx(_ whole: UInt64) throws -> Amount {
        let (v, o) = whole.multipliedReportingOverflow(by: unitsPerPLX)
        guard !o else { throw PlexusError(.overflow, "\(whole) PLX exceeds the maximum amount") }
        return Amount(units: v)
    }

    /// Parses PLX text such as `12`, `0.5`, `1.000000001`; or base units with a
    /// `u` suffix such as `1500u`. Rejects signs, exponents and excess precision.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("u") {
            guard let v = UInt64(t.dropLast()), !t.dropLast().isEmpty, t.dropLast().allSatisfy(\.isASCIIDigit) else {
                throw PlexusError(.malformed, "'\(text)' is not a whole number of base units")
            }
            self.units = v
            return
        }
        let parts = t.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit), let w = UInt64(whole) else {
            throw PlexusError(.malformed, "'\(text)' is not an amount of PLX")
        }
        var frac: UInt64 = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 9, f.allSatisfy(\.isASCIIDigit), let fv = UInt64(f) else {
                throw PlexusError(.malformed, "'\(text)': PLX has at most 9 decimals")
            }
            var scale: UInt64 = 1
            for _ in 0..<(9 - f.count) { scale *= 10 }
            frac = fv * scale
        }
        let base = try Amount.plx(w)
        self = try base.adding(Amount(units: frac))
    }

    /// `self + other`, or `overflow`.
    public func adding(_ other: Amount) throws -> Amount {
        let (v, o) = units.addingReportingOverflow(other.units)
        guard !o else { throw PlexusError(.overflow, "\(self) + \(other) exceeds the maximum amount") }
        return Amount(units: v)
    }

    /// `self - other`, or `underflow` if the result would be negative.
    public func subtracting(_ other: Amount) throws -> Amount {
        guard other.units <= units else {
            throw PlexusError(.underflow, "\(self) - \(other) would be negative")
        }
        return Amount(units: units - other.units)
    }

    /// `self × factor`, or `overflow`.
    public func multiplied(by factor: UInt64) throws -> Amount {
        let (v, o) = units.multipliedReportingOverflow(by: factor)
        guard !o else { throw PlexusError(.overflow, "\(self) × \(factor) exceeds the maximum amount") }
        return Amount(units: v)
    }

    /// `⌊self × numerator / denominator⌋` computed without intermediate overflow.
    public func scaled(by numerator: UInt64, over denominator: UInt64) throws -> Amount {
        guard denominator > 0 else { throw PlexusError(.outOfRange, "division by zero") }
        let (hi, lo) = units.multipliedFullWidth(by: numerator)
        guard hi < denominator else { throw PlexusError(.overflow, "\(self) × \(numerator) / \(denominator) exceeds the maximum amount") }
        return Amount(units: denominator.dividingFullWidth((hi, lo)).quotient)
    }

    public var isZero: Bool { units == 0 }

    /// PLX text with trailing zeros trimmed: `1.5 PLX`.
    public var plxText: String {
        let whole = units / Self.unitsPerPLX
        let frac = units % Self.unitsPerPLX
        if frac == 0 { return "\(whole)" }
        var f = String(frac)
        f = String(repeating: "0", count: 9 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f)"
    }

    public var description: String { plxText + " PLX" }

    public static func < (a: Amount, b: Amount) -> Bool { a.units < b.units }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let text = try? c.decode(String.self) {
            guard !text.isEmpty, text.utf8.count <= 20, text.allSatisfy(\.isASCIIDigit), let v = UInt64(text) else {
                throw PlexusError(.malformed, "amount '\(text.prefix(40))' is not a base-unit count in 0...\(UInt64.max)")
            }
            self.units = v
        } else {
            // Plain JSON numbers are accepted only when they are exact non-negative integers.
            let v = try c.decode(UInt64.self)
            self.units = v
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(String(units))
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
