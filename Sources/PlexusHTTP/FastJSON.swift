import PlexusCore

/// Hand-written JSON for the hot path: every streamed token is one event on
/// the node and one chunk on the gateway, and generic coders cost more than
/// the work around them. Anything unusual falls back to the generic coders.
/// The node events' own writers and readers extend it in `PlexusWire`.
public enum FastJSON {
    /// `s` as a JSON string literal (quotes included).
    public static func quote(_ s: String) -> String { JSONTree.quote(s) }

    package static func hex(_ b: UInt8) -> UInt32? { JSONTree.hex(b) }

    /// The contents of a JSON string literal (without its quotes).
    package static func unescape(_ b: ArraySlice<UInt8>) -> String? { JSONTree.unescape(b) }
}
