import Foundation
import GRDB
import PlexusCore
@testable import PlexusGateway
import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct ReceiptStoreTests {
    func record(_ i: Int) -> RequestRecord {
        RequestRecord(requestId: Hash256.of(Array("request \(i)".utf8)), requestor: KeyPair.deterministic("requestor").address,
                      model: "m", nodes: [KeyPair.deterministic("node").address], outputTokens: [UInt64(i)], receipts: [],
                      charge: Amount(units: UInt64(100 + i)), state: "unsettled", reason: nil, createdMillis: UInt64(1_000 + i))
    }

    /// Failed attempts are kept with their reasons, survive the stored form, and the trace lists
    /// every attempt in order: a refusal, a node that failed mid-answer, the one that finished.
    @Test func failedAttemptsAreKeptInOrderWithTheirReasons() throws {
        let a = KeyPair.deterministic("a").address, b = KeyPair.deterministic("b").address, c = KeyPair.deterministic("c").address
        var r = record(1)
        r.nodes = [b, c]
        r.outputTokens = [7, 5]
        r.failures = [.init(node: a, outputTokens: 0, reason: "busy (429): every slot is taken"),
                      .init(node: b, outputTokens: 7, reason: "stream_interrupted (502): the connection closed")]
        let back = try RequestRecord(canonicalBytes: r.canonicalBytes)
        #expect(back.failures == r.failures)
        let attempts = back.attempts
        #expect(attempts.map(\.node) == [a, b, c] && attempts.map(\.outputTokens) == [0, 7, 5])
        #expect(attempts.map(\.failure) == ["busy (429): every slot is taken", "stream_interrupted (502): the connection closed", nil])
        // A record without failures (an older one too) lists its shares alone.
        #expect(record(2).attempts.map(\.node) == [KeyPair.deterministic("node").address])
    }

    /// A save made inline is on disk when `beginSave` returns (a read-only view,
    /// which reads the journal's files, sees it at once); inline and queued
    /// saves made together all land, and all survive reopening.
    @Test func inlineSavesAreDurableAtOnceAndMixWithQueuedOnes() async throws {
        let dir = try TemporaryDirectory("plexus-receipts")
        defer { dir.remove() }
        let path = dir.path + "/receipts.sqlite"
        var store: ReceiptStore? = try ReceiptStore(path: path)
        let view = try ReceiptStore(path: path, readOnly: true)
        for i in 0..<5 {
            let ticket = try store!.beginSave(record(i), inline: true)
            #expect(try view.get(record(i).requestId)?.state == "unsettled")
            try await ticket.wait()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 5..<305 {
                group.addTask { [store] in try await store!.beginSave(record(i), inline: i % 2 == 0).wait() }
            }
            try await group.waitForAll()
        }
        let all = Set((0..<305).map { record($0).requestId })
        #expect(Set(store!.unsettled(limit: .max).map(\.requestId)) == all)
        #expect(Set(try view.records(in: ["unsettled"], limit: 1_000).map(\.requestId)) == all)
        store = nil
        store = try ReceiptStore(path: path)
        #expect(Set(store!.unsettled(limit: .max).map(\.requestId)) == all)
        #expect(try store!.get(record(42).requestId)?.charge == Amount(units: 142))
    }

    /// Records saved, settled in part, then the store dropped without warning
    /// (as a killed process would) and opened again: what was not settled is
    /// unsettled again, what was is where settlement put it, and a read-only
    /// view from outside agrees at every step.
    @Test func recordsSurviveReopeningAndMoveOnceSettled() async throws {
        let dir = FileManager.default.temporaryDirectory.path + "/plexus-receipts-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/receipts.sqlite"
        var store: ReceiptStore? = try ReceiptStore(path: path)
        // 300 concurrent saves share journal writes.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask { [store] in try await store!.saveDurably(record(i)) }
            }
            try await group.waitForAll()
        }
        // What moves into SQLite is synced to the disk itself (FULL).
        let level = try await store!.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(level == 2)
        let view = try ReceiptStore(path: path, readOnly: true)
        #expect(store!.unsettled(limit: .max).count == 300)
        #expect(try view.records(in: ["unsettled"], limit: 1_000).count == 300)
        #expect(try store!.count() == 300 && view.count() == 300)
        #expect(try view.get(record(7).requestId)?.state == "unsettled")

        // The first 200 (in arrival order: concurrent saves arrive in any order) answered by
        // the ledger: pending (due at 50), final or refused.
        let first = store!.unsettled(limit: 200)
        #expect(Set(first.map(\.requestId)).count == 200)
        try store!.archive(first.enumerated().map { k, r in
            var r = r
            r.state = k % 3 == 0 ? "pending" : (k % 3 == 1 ? "final" : "rejected")
            return (r, r.state == "pending" ? 50 : 0)
        })
        let rest = Set((0..<300).map { record($0).requestId }).subtracting(first.map(\.requestId))
        #expect(Set(store!.unsettled(limit: .max).map(\.requestId)) == rest)
        #expect(try store!.get(first[3].requestId)?.state == "pending")
        #expect(try store!.get(first[4].requestId)?.state == "final")
        #expect(try store!.get(first[5].requestId)?.state == "rejected")
        #expect(try store!.get(rest.first!)?.state == "unsettled")
        #expect(try store!.records(state: "pending", dueBy: 60, limit: 1_000).count == 67)
        #expect(try view.records(in: ["unsettled"], limit: 1_000).count == 100)
        #expect(try view.records(in: ["final", "rejected"], limit: 1_000).count == 133)
        #expect(try store!.count() == 300 && view.count() == 300)

        // A record withdrawn (its receipt failed) is gone now and after reopening;
        // one saved again for the same request afterwards stands.
        let (gone, again) = (rest.sorted()[0], rest.sorted()[1])
        let againRecord = try #require(try store!.get(again))
        store!.discard(gone)
        store!.discard(again)
        try await store!.saveDurably(againRecord)
        #expect(try store!.get(gone) == nil)
        #expect(Set(store!.unsettled(limit: .max).map(\.requestId)) == rest.subtracting([gone]))
        #expect(store!.unsettled(limit: .max).count == 99)
        #expect(try view.records(in: ["unsettled"], limit: 1_000).count == 99)

        // Dropped without settling the rest, then opened again.
        store = nil
        store = try ReceiptStore(path: path)
        #expect(Set(store!.unsettled(limit: .max).map(\.requestId)) == rest.subtracting([gone]))
        #expect(try store!.get(first[3].requestId)?.state == "pending")
        #expect(try store!.count() == 299)

        // The rest settled: nothing left unsettled, and the journal keeps no more than its spares.
        try store!.archive(store!.unsettled(limit: .max).map { r in
            var r = r
            r.state = "final"
            return (r, 0)
        })
        #expect(store!.unsettled(limit: .max).isEmpty)
        #expect(try view.records(in: ["unsettled"], limit: 1_000).isEmpty)
        #expect(try view.records(in: ["final"], limit: 1_000).count == 166)
        #expect(try store!.count() == 299 && view.count() == 299)
        store = nil
        store = try ReceiptStore(path: path)
        #expect(store!.unsettled(limit: .max).isEmpty)
        #expect(try Journal.read(directory: dir + "/receipts.journal").isEmpty)
    }
}
