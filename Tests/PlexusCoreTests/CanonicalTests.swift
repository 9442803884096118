import PlexusCore
import Testing

@Suite struct CanonicalTests {
    @Test func integersAreBigEndianAndRoundTrip() throws {
        var w = CanonicalWriter()
        w.write(UInt32(0x0102_0304))
        w.write(UInt64.max)
        w.write("hé")
        #expect(Array(w.bytes.prefix(4)) == [1, 2, 3, 4])
        var r = CanonicalReader(w.bytes)
        #expect(try r.readUInt32() == 0x0102_0304)
        #expect(try r.readUInt64() == .max)
        #expect(try r.readString() == "hé")
        try r.expectEnd()
    }

    @Test func truncatedInputThrowsAtEveryCut() throws {
        var w = CanonicalWriter()
        w.write(UInt64(7))
        w.write(lengthPrefixed: [1, 2, 3])
        w.write(KeyPair.deterministic("x").address)
        let bytes = w.bytes
        for cut in 0..<bytes.count {
            var r = CanonicalReader(Array(bytes.prefix(cut)))
            #expect(throws: PlexusError.self) {
                _ = try r.readUInt64()
                _ = try r.readLengthPrefixed()
                _ = try r.readAddress()
            }
        }
    }

    @Test func hugeLengthPrefixesAreRefusedBeforeAllocating() {
        var r = CanonicalReader([0xff, 0xff, 0xff, 0xff, 0])
        #expect(throws: PlexusError.self) { _ = try r.readLengthPrefixed() }
        var r2 = CanonicalReader([0x7f, 0xff, 0xff, 0xff])
        #expect(throws: PlexusError.self) { _ = try r2.readArray(of: Hash256.self, limit: .max) }
    }

    @Test func invalidUTF8AndBooleansAreRejected() {
        var r = CanonicalReader([0, 0, 0, 2, 0xc3, 0x28])
        #expect(throws: PlexusError.self) { _ = try r.readString() }
        var r2 = CanonicalReader([2])
        #expect(throws: PlexusError.self) { _ = try r2.readBool() }
    }

    @Test func hexIsStrict() throws {
        #expect(try Hex.decode("00ffAB") == [0, 255, 171])
        #expect(throws: PlexusError.self) { try Hex.decode("abc") }
        #expect(throws: PlexusError.self) { try Hex.decode("zz") }
    }
}
