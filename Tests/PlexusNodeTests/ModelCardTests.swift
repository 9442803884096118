import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire
import PlexusTestKit
import Testing

/// A model card read from a GGUF file, and cards listed from genesis.
@Suite struct ModelCardTests {
    let creator = KeyPair.deterministic("creator").address

    @Test func aCardDescribesTheFilesOwnMetadata() throws {
        let dir = try TemporaryDirectory("plexus-card")
        defer { dir.remove() }
        let path = try TinyModel.write(to: dir.path + "/tiny.gguf")
        let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
        let card = try ModelCard.describing(try GGUFFile(path: path), weightsHash: hash, id: "tiny", license: "mit", creator: creator, royaltyBps: 150)
        #expect(card == ModelCard(id: "tiny", weightsHash: hash, architecture: "llama", quantization: "Q4_1", contextLength: 256,
                                  license: "mit", capabilities: ["chat", "completion"], creator: creator, royaltyBps: 150))
    }

    @Test func aFileWithoutLicenceOrContextIsRefused() throws {
        let dir = try TemporaryDirectory("plexus-card")
        defer { dir.remove() }
        let path = try TinyModel.write(to: dir.path + "/tiny.gguf")
        let file = try GGUFFile(path: path)
        #expect(throws: PlexusError.self) {
            try ModelCard.describing(file, weightsHash: Hash256.of([1]), id: "tiny", license: nil, creator: creator, royaltyBps: 0)
        }
        var shape = TinyModel.Shape()
        shape.architecture = "mamba"  // no mamba.context_length in the file
        let other = try TinyModel.write(to: dir.path + "/other.gguf", shape: shape)
        #expect(throws: PlexusError.self) {
            try ModelCard.describing(try GGUFFile(path: other), weightsHash: Hash256.of([1]), id: "o", license: "mit", creator: creator, royaltyBps: 0)
        }
    }

    @Test func aGenesisListsModelCardsCheckedAsRegistrations() throws {
        let orderer = KeyPair.deterministic("orderer").address
        let card = try ModelCard.defaultModel(creator: creator)
        let plain = Genesis(chainId: "c", timeMillis: 0, orderer: orderer, accounts: [.init(address: creator, balance: Amount(units: 5))])
        var listed = plain
        listed.models = [card]
        #expect(try listed.initialState().models[card.id] == card)
        #expect(try plain.initialState().models.isEmpty)
        #expect(listed.hash != plain.hash)
        // Cards survive the genesis file's JSON.
        #expect(try Genesis.decode(try listed.json()) == listed)
        var twice = listed
        twice.models = [card, card]
        #expect(throws: PlexusError.self) { try twice.initialState() }
        var bad = card
        bad.royaltyBps = 9_000
        listed.models = [bad]
        #expect(throws: PlexusError.self) { try listed.initialState() }
    }
}
