import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger

/// The node's events in hand-written JSON (see `FastJSON`): one per streamed token.
extension FastJSON {
    /// A token event: `data: {"type":"token","token":N,"text":"…"}\n\n`.
    public static func tokenEvent(_ token: TokenID, _ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48 + text.utf8.count)
        out += tokenEventHead
        out += Array(String(token).utf8)
        out += textKey.dropLast()
        out += Array(quote(text).utf8)
        out += [UInt8(ascii: "}"), 10, 10]
        return out
    }

    static let tokenEventHead = Array("data: {\"type\":\"token\",\"token\":".utf8)

    /// The final event, with the receipt in its canonical bytes with their format byte (hex):
    /// `data: {"type":"done","finishReason":"…","promptTokens":N,"receiptBytes":"…"}\n\n`.
    /// With prompt tokens from the node's prefix cache, `"cachedTokens":M` comes before the receipt.
    public static func doneEvent(finish: String, promptTokens: Int, cachedTokens: Int = 0, receipt: Receipt) -> [UInt8] {
        let bytes = VersionedReceipt(receipt).canonicalBytes
        var out: [UInt8] = []
        out.reserveCapacity(128 + 2 * bytes.count)
        let cached = cachedTokens > 0 ? ",\"cachedTokens\":\(cachedTokens)" : ""
        out += Array("data: {\"type\":\"done\",\"finishReason\":\(quote(finish)),\"promptTokens\":\(promptTokens)\(cached),\"receiptBytes\":\"".utf8)
        Hex.append(bytes, to: &out)
        out += Array("\"}\n\n".utf8)
        return out
    }

    static let donePrefix = Array("{\"type\":\"done\",\"finishReason\":\"".utf8)
    static let promptKey = Array("\",\"promptTokens\":".utf8)
    static let receiptKey = Array(",\"receiptBytes\":\"".utf8)

    /// Parses what `doneEvent` writes (without `data: `); nil for anything else.
    public static func parseDoneEvent(_ b: ArraySlice<UInt8>) -> (finish: String, promptTokens: Int, receipt: Receipt)? {
        guard b.starts(with: donePrefix), b.count < 8_192 else { return nil }
        var i = b.startIndex + donePrefix.count
        let finishStart = i
        // (A raw control character ends the match: JSON strings escape them; found by scripts/fuzz.sh node-event.)
        while i < b.endIndex, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
        guard i < b.endIndex, b[i] == UInt8(ascii: "\""), i - finishStart <= 64,
              let finish = String(validating: b[finishStart..<i], as: UTF8.self), b[i...].starts(with: promptKey) else { return nil }
        i += promptKey.count
        var prompt = 0
        let digitsStart = i
        while i < b.endIndex, b[i] >= 48, b[i] <= 57, i - digitsStart < 10 {
            prompt = prompt * 10 + Int(b[i] - 48)
            i += 1
        }
        guard i > digitsStart, b[digitsStart] != UInt8(ascii: "0") || i == digitsStart + 1, b[i...].starts(with: receiptKey) else { return nil }
        i += receiptKey.count
        guard b.count >= 2, b[b.endIndex - 1] == UInt8(ascii: "}"), b[b.endIndex - 2] == UInt8(ascii: "\""), b.endIndex - 2 >= i,
              let hex = String(validating: b[i..<(b.endIndex - 2)], as: UTF8.self),
              let bytes = try? Hex.decode(hex), let receipt = try? VersionedReceipt(canonicalBytes: bytes).receipt else { return nil }
        return (finish, prompt, receipt)
    }

    static let tokenPrefix = Array("{\"type\":\"token\",\"token\":".utf8)
    static let textKey = Array(",\"text\":\"".utf8)

    /// Parses what `tokenEvent` writes (without `data: `); nil for anything else.
    public static func parseTokenEvent(_ b: ArraySlice<UInt8>) -> (TokenID, String)? {
        guard b.starts(with: tokenPrefix) else { return nil }
        var i = b.startIndex + tokenPrefix.count
        var negative = false
        if i < b.endIndex, b[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var value: Int64 = 0
        let digitsStart = i
        while i < b.endIndex, b[i] >= 48, b[i] <= 57, i - digitsStart < 10 {
            value = value * 10 + Int64(b[i] - 48)
            i += 1
        }
        // (JSON writes no leading zeros: "02" is not a number; found by scripts/fuzz.sh node-event.)
        guard i > digitsStart, value <= Int64(Int32.max), b[digitsStart] != UInt8(ascii: "0") || i == digitsStart + 1 else { return nil }
        guard b[i...].starts(with: textKey) else { return nil }
        i += textKey.count
        // The string runs to the last `"` before the closing `}`.
        guard b.count >= 2, b[b.endIndex - 1] == UInt8(ascii: "}"), b[b.endIndex - 2] == UInt8(ascii: "\""), b.endIndex - 2 >= i else { return nil }
        guard let text = unescape(b[i..<(b.endIndex - 2)]) else { return nil }
        return (TokenID(negative ? -value : value), text)
    }

}
