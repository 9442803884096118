import Foundation
import GRDB
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct ServiceTests {
    let net = TestNetwork(accounts: 4)

    @Test func committedBlocksSurviveAReopen() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/l.sqlite")
        try store.initialize(genesis: net.genesis)
        let service = try LedgerService(store: store, signer: net.orderer, blockInterval: .milliseconds(5))
        await service.start()
        var hashes: [Hash256] = []
        for n in 0..<5 {
            for i in 0..<3 {
                let tx = net.tx(i, nonce: UInt64(n), .transfer(to: net.keys[3].address, amount: Amount(units: 100)))
                let r = try await service.submit(tx, waitForCommit: n % 2 == 0)
                hashes.append(r.hash)
            }
        }
        await service.stop()
        let status = await service.status()
        #expect(status.height >= 1)

        // Commits are synced to the disk itself (FULL), not only handed to the OS.
        let level = try await store.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(level == 2)

        let reopened = try BlockStore(path: dir.path + "/l.sqlite")
        let again = try LedgerService(store: reopened, signer: net.orderer)
        let s2 = await again.status()
        #expect(s2.height == status.height)
        #expect(s2.stateRoot == status.stateRoot)
        for h in hashes { #expect(try reopened.location(of: h) != nil) }
        #expect(await again.account(net.keys[3].address).balance.units == 1_000 * Amount.unitsPerPLX + 1_500)
        let events = try reopened.events(after: 0, through: s2.height, limit: 100)
        #expect(events.filter { if case .transferred = $0.event { true } else { false } }.count == 15)
    }

    /// `stop()` can seal while the sealing loop's write is still in flight (the
    /// actor is re-entered while a write is awaited): blocks must still reach the
    /// disk one at a time, in order, so the stored state is the tip's.
    @Test func overlappingSealsWriteBlocksInOrder() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/l.sqlite")
        try store.initialize(genesis: net.genesis)
        let service = try LedgerService(store: store, signer: net.orderer)
        for n in 0..<150 {
            _ = try await service.submit(net.tx(n % 3, nonce: UInt64(n / 3), .transfer(to: net.keys[3].address, amount: Amount(units: 7))),
                                         waitForCommit: false)
            @Sendable func submitThenSeal(_ tx: Transaction) async {
                _ = try? await service.submit(tx, waitForCommit: false)
                await service.sealAndWrite()
            }
            async let first: Void = service.sealAndWrite()
            async let second: Void = submitThenSeal(net.tx(3, nonce: UInt64(n), .transfer(to: net.keys[0].address, amount: Amount(units: 1))))
            _ = await (first, second)
        }
        let status = await service.status()
        let snap = try store.load()
        var stored = snap.state
        #expect(snap.state.height == status.height)
        #expect(stored.commit().root == status.stateRoot)
        #expect(snap.tip?.stateRoot == status.stateRoot)
    }

    @Test func anotherGenesisCannotReuseADatabase() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/l.sqlite")
        try store.initialize(genesis: net.genesis)
        let other = TestNetwork(accounts: 1, chainId: "other")
        #expect(throws: PlexusError.self) { try store.initialize(genesis: other.genesis) }
        #expect(throws: PlexusError.self) { try LedgerService(store: store, signer: net.keys[0]) }
    }

    @Test func oversizedTransactionsAreRejected() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let small = TestNetwork(accounts: 2, params: ["maxTxBytes": 200], chainId: String(repeating: "c", count: 64))
        let store = try BlockStore(path: dir.path + "/l.sqlite")
        try store.initialize(genesis: small.genesis)
        let service = try LedgerService(store: store, signer: small.orderer)
        let tx = small.tx(0, nonce: 0, .transfer(to: small.keys[1].address, amount: Amount(units: 1)))
        #expect(tx.canonicalBytes.count > 200)
        await #expect { try await service.submit(tx, waitForCommit: false) } throws: { ($0 as? PlexusError)?.code == .tooLarge }
        #expect(await service.account(small.keys[0].address).nonce == 0)
    }

    /// A replica that lacks blocks the log no longer holds: entries at heights it holds are
    /// dropped, a sealer's entry beyond the next height sends it to its peers, and a block
    /// fetched from a peer is checked as a log entry is (a bad one changes nothing).
    @Test func blocksFetchedFromAPeerAreCheckedAsLogEntriesAre() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var genesis = net.genesis
        genesis.sealers = [net.orderer.address]
        func replica(_ name: String) throws -> LedgerService {
            let store = try BlockStore(path: dir.path + "/\(name).sqlite")
            try store.initialize(genesis: genesis)
            return try LedgerService(store: store, signer: net.orderer, replicated: true)
        }
        let sealer = try replica("sealer"), behind = try replica("behind")
        var blocks: [Block] = []
        for n in 0..<3 {
            let tx = net.tx(0, nonce: UInt64(n), .transfer(to: net.keys[3].address, amount: Amount(units: 100)))
            let (block, slot) = await sealer.cut([tx], hashes: [tx.hash], signer: net.orderer)
            #expect(await sealer.ingest(slot: slot, block: block, signaturesValid: true) == .applied(UInt64(n + 1)))
            blocks.append(block)
        }
        // The log now starts at entry 3 (blocks 1 and 2 pruned): a sealer's block 3 is ahead.
        #expect(await behind.ingest(slot: 1, block: blocks[2], signaturesValid: true) == .behind(3))
        #expect(await behind.appliedHeight == 0)
        // Fetched blocks: a forged transaction signature, an outsider's seal, a block out of order are refused.
        var forged = blocks[0]
        forged.transactions[0].signature = net.keys[1].sign([1])
        var outsider = blocks[0]
        outsider.header.orderer = net.keys[2].address
        outsider.signature = net.keys[2].sign(outsider.header.hash.bytes)
        for bad in [forged, outsider, blocks[1]] {
            await #expect(throws: PlexusError.self) { try await behind.applyFetched(bad) }
        }
        #expect(await behind.appliedHeight == 0)
        #expect(try await behind.applyFetched(blocks[0]) == 1)
        #expect(try await behind.applyFetched(blocks[1]) == 2)
        // Reading the log on from entry 3: block 3 is next; an entry at a held height is dropped.
        await behind.resume(atSlot: 3)
        #expect(await behind.ingest(slot: 3, block: blocks[1], signaturesValid: true) == .duplicate)
        #expect(await behind.ingest(slot: 4, block: blocks[2], signaturesValid: true) == .applied(3))
        await sealer.flush()
        await behind.flush()
        #expect(await behind.status().blockHash == (await sealer.status()).blockHash)
        #expect(await behind.status().stateRoot == (await sealer.status()).stateRoot)
    }

    /// A signed snapshot: taken from a store, checked against the genesis, installed in an
    /// empty store that then opens at the same height, block and root; an altered row, an
    /// outsider's signature, another chain or truncated bytes are refused with clear errors.
    @Test func aSnapshotIsCheckedAndInstalledAndAlteredOnesAreRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/a.sqlite")
        try store.initialize(genesis: net.genesis)
        let service = try LedgerService(store: store, signer: net.orderer, blockInterval: .milliseconds(5))
        await service.start()
        for n in 0..<3 {
            _ = try await service.submit(net.tx(n, nonce: 0, .transfer(to: net.keys[3].address, amount: Amount(units: 100))), waitForCommit: true)
        }
        await service.stop()
        let status = await service.status()
        let snapshot = try await service.snapshot()
        #expect(snapshot.height == status.height && snapshot.stateRoot == status.stateRoot)
        _ = try snapshot.check(genesis: net.genesis)
        let decoded = try LedgerSnapshot(canonicalBytes: snapshot.canonicalBytes)
        #expect(decoded == snapshot)

        let fresh = try BlockStore(path: dir.path + "/b.sqlite")
        try fresh.initialize(genesis: net.genesis)
        try fresh.install(decoded)
        let opened = try LedgerService(store: fresh, signer: net.orderer)
        let s2 = await opened.status()
        #expect(s2.height == status.height && s2.blockHash == status.blockHash && s2.stateRoot == status.stateRoot && s2.historyFrom == status.height)
        #expect(await opened.account(net.keys[3].address) == (await service.account(net.keys[3].address)))
        // The tip block's transactions are found on the new store as on the old.
        for tx in try #require(decoded.tip).transactions {
            #expect(try fresh.location(of: tx.hash)?.height == status.height)
        }
        #expect(throws: PlexusError.self) { try fresh.install(decoded) }  // not an empty store any more

        var altered = snapshot
        var account = try Account(canonicalBytes: altered.accounts[0].value)
        account.balance = Amount(units: account.balance.units + 1)
        altered.accounts[0].value = account.canonicalBytes
        altered.signature = net.orderer.sign(altered.hash.bytes)
        #expect { try altered.check(genesis: self.net.genesis) } throws: { ($0 as? PlexusError)?.code == .stateMismatch }
        var outsider = snapshot
        outsider.signer = net.keys[0].address
        outsider.signature = net.keys[0].sign(outsider.hash.bytes)
        #expect { try outsider.check(genesis: self.net.genesis) } throws: { ($0 as? PlexusError)?.code == .badSignature }
        var other = net.genesis
        other.chainId = "another"
        #expect(throws: PlexusError.self) { try snapshot.check(genesis: other) }
        let bytes = snapshot.canonicalBytes
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
            #expect(throws: (any Error).self) { try LedgerSnapshot(canonicalBytes: Array(bytes[..<cut])) }
        }
    }
}
