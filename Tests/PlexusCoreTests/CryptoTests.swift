import Foundation
import PlexusCore
import PlexusTestKit
import Testing

@Suite struct CryptoTests {
    @Test func addressRoundTripsThroughText() throws {
        let key = KeyPair.deterministic("a")
        let text = key.address.text
        #expect(text.hasPrefix("plx") && text.count == 75)
        #expect(try Address(text) == key.address)
    }

    @Test func everySingleCharacterTypoIsRejected() throws {
        let text = KeyPair.deterministic("b").address.text
        var chars = Array(text)
        var rejected = 0, tried = 0
        for i in 3..<chars.count {
            let original = chars[i]
            chars[i] = original == "0" ? "1" : "0"
            tried += 1
            if (try? Address(String(chars))) == nil { rejected += 1 }
            chars[i] = original
        }
        #expect(rejected == tried)
    }

    @Test(arguments: ["", "plx", "abc" + String(repeating: "0", count: 72), "plx" + String(repeating: "g", count: 72), "plx00"])
    func malformedAddressesAreRejected(text: String) {
        #expect(throws: PlexusError.self) { try Address(text) }
    }

    @Test func signaturesVerifyOnlyForTheSignerAndMessage() {
        let a = KeyPair(), b = KeyPair()
        let msg: [UInt8] = Array("hello".utf8)
        let sig = a.sign(msg)
        #expect(a.address.verifies(sig, over: msg))
        #expect(!b.address.verifies(sig, over: msg))
        #expect(!a.address.verifies(sig, over: msg + [0]))
        var bytes = sig.bytes
        bytes[10] ^= 1
        #expect(!a.address.verifies(try! Signature(bytes: bytes), over: msg))
        #expect(!Address.treasury.verifies(sig, over: msg))
    }

    @Test func keyFilesAreOwnerOnlyAndRoundTrip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/k.json"
        let key = KeyPair()
        try KeyFile.write(key, to: path)
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try KeyFile.read(path).address == key.address)
        #expect(throws: PlexusError.self) { try KeyFile.write(KeyPair(), to: path) }
    }

    @Test func keyFilesOthersCanReadAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/k.json"
        try KeyFile.write(KeyPair(), to: path)
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] as [mode_t] {
            chmod(path, mode)
            let error = #expect(throws: PlexusError.self) { try KeyFile.read(path) }
            #expect(error?.message.contains("chmod 600") == true)
        }
        chmod(path, 0o400)
        #expect(throws: Never.self) { try KeyFile.read(path) }
    }

    @Test func corruptKeyFilesAreRejected() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/bad.json"
        for contents in ["", "{", "{\"address\":\"plx\",\"seed\":\"00\"}", String(repeating: "x", count: 10_000)] {
            try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o600)
            #expect(throws: PlexusError.self) { try KeyFile.read(path) }
        }
        // A valid seed with someone else's address.
        let other = KeyPair.deterministic("other").address.text
        let seed = Hex.encode(KeyPair.deterministic("mine").seed)
        try Data("{\"address\":\"\(other)\",\"seed\":\"\(seed)\"}".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        #expect(throws: PlexusError.self) { try KeyFile.read(path) }
    }

    @Test func sha256MatchesAKnownVector() {
        // SHA-256("abc") from FIPS 180-2.
        #expect(Hash256.of(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func merkleRootDependsOnOrderAndContent() {
        let a = Hash256.of([1]), b = Hash256.of([2]), c = Hash256.of([3])
        #expect(MerkleRoot.of([]) == .zero)
        #expect(MerkleRoot.of([a, b, c]) != MerkleRoot.of([b, a, c]))
        #expect(MerkleRoot.of([a, b]) != MerkleRoot.of([a, b, c]))
        #expect(MerkleRoot.of([a]) != a)
    }
}
