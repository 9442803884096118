import Foundation
import GRDB
import NIOCore
import NIOPosix
import Synchronization
import PlexusCore
import PlexusLedger

/// Durable store of receipts and their settlement state.
///
/// A request's record is appended to a journal (group commit: one write and
/// one `fdatasync` for all the records that arrive together) before the
/// request is answered, and kept in memory until its settlement round; the
/// ledger's answer then moves it into SQLite (`synchronous = FULL`) with its
/// state, in one transaction per round, and journal segments whose records
/// have all moved are retired. After a crash, records found in the journal but
/// not in SQLite are unsettled again.
///
/// Opened `readOnly` (another process looking while the gateway runs), every
/// query reads the journal, then SQLite.
public final class ReceiptStore: Sendable {
    let pool: DatabasePool
    let journal: Journal?
    let journalDirectory: String

    // Invariant: `live` only changes while holding its lock; `order` from `head` holds every key of `records`.
    private let live = Mutex(LiveRecords())

    public init(path: String, readOnly: Bool = false) throws {
        journalDirectory = (path.hasSuffix(".sqlite") ? String(path.dropLast(7)) : path) + ".journal"
        var config = Configuration()
        config.readonly = readOnly
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = -65536") }
        pool = readOnly ? try DatabasePool(path: path, configuration: config) : try DatabasePool.durable(path: path, configuration: config)
        if readOnly {
            journal = nil
            return
        }
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS requests (
                    id BLOB PRIMARY KEY, state TEXT NOT NULL, record BLOB NOT NULL, created INTEGER NOT NULL,
                    due INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                """)
            // Stores written before `due` existed: add it; "submitted" meant "not yet settled".
            let columns = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('requests')")
            if !columns.contains("due") { try db.execute(sql: "ALTER TABLE requests ADD COLUMN due INTEGER NOT NULL DEFAULT 0") }
            try db.execute(sql: """
                UPDATE requests SET state = 'unsettled' WHERE state = 'submitted';
                DROP INDEX IF EXISTS requests_state;
                CREATE INDEX IF NOT EXISTS requests_state_due ON requests (state, due, created);
                """)
        }
        let (j, entries) = try Journal.open(directory: journalDirectory)
        journal = j
        // Unsettled: rows of older stores left so, then journal records SQLite does not hold.
        let old = try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT state, record FROM requests WHERE state = 'unsettled' ORDER BY created").map(Self.decodeRow)
        }
        let journaled = try Self.notArchived(entries, pool)
        live.withLock { l in
            for r in old { _ = l.add(r, segment: nil, current: nil) }
            for (r, segment) in journaled { _ = l.add(r, segment: segment, current: nil) }
        }
        let needed = Set(journaled.map(\.1))
        for (number, _) in Journal.segments(journalDirectory) where !needed.contains(number) && number != j.currentSegment {
            j.retire(number)
        }
    }

    /// A journal entry is a record's canonical bytes (they start with the format
    /// version, 1) or a discard mark: 0 and the request id.
    static let discardMark: UInt8 = 0

    /// The records a run of journal entries leaves standing, in order (a later
    /// record for a request replaces an earlier one; a discard mark removes it).
    static func standing(_ entries: [Journal.Entry]) -> [(RequestRecord, UInt64)] {
        var out: [Hash256: (record: RequestRecord, segment: UInt64, at: Int)] = [:]
        for (i, e) in entries.enumerated() {
            if e.payload.first == discardMark {
                if e.payload.count == 33, let id = try? Hash256(bytes: Array(e.payload[1...])) { out[id] = nil }
            } else if let r = try? RequestRecord(canonicalBytes: e.payload) {
                out[r.requestId] = (r, e.segment, out[r.requestId]?.at ?? i)
            }
        }
        return out.values.sorted { $0.at < $1.at }.map { ($0.record, $0.segment) }
    }

    /// Journal records SQLite does not hold yet.
    private static func notArchived(_ entries: [Journal.Entry], _ pool: DatabasePool) throws -> [(RequestRecord, UInt64)] {
        let records = standing(entries)
        let archived = try pool.read { db in try held(records.map(\.0.requestId), db) }
        return records.filter { !archived.contains($0.0.requestId) }
    }

    /// The state column is the truth: the record blob keeps the state it was first written with.
    private static func decodeRow(_ row: Row) throws -> RequestRecord {
        var r = try RequestRecord.decodeStored(row["record"])
        r.state = row["state"]
        return r
    }

    /// Records a settlement state (and, for "pending", the height at which it becomes final) without rewriting the records.
    public func setStates(_ changes: [(id: Hash256, state: String, due: UInt64)]) throws {
        guard !changes.isEmpty else { return }
        try pool.write { db in
            let st = try db.cachedStatement(sql: "UPDATE requests SET state = ?, due = ? WHERE id = ?")
            for c in changes { try st.execute(arguments: [c.state, Int64(clamping: c.due), Data(c.id.bytes)]) }
            // A final request can no longer be challenged: its transcript goes.
            let read = try db.cachedStatement(sql: "SELECT record FROM requests WHERE id = ?")
            let write = try db.cachedStatement(sql: "UPDATE requests SET record = ? WHERE id = ?")
            for c in changes where Self.transcriptEnds(c.state) {
                guard let blob = try Data.fetchOne(read, arguments: [Data(c.id.bytes)]) else { continue }
                var r = try RequestRecord.decodeStored(blob)
                guard r.transcript != nil else { continue }
                r.transcript = nil
                try write.execute(arguments: [Data(r.canonicalBytes), Data(c.id.bytes)])
            }
        }
    }

    /// Whether a request in `state` is past every challenge (its transcript is no longer kept).
    static func transcriptEnds(_ state: String) -> Bool { state == "final" || state == "rejected" || state == "refunded" }

    /// Records in `state` due by `height` (pending settlements that should be final), earliest first.
    public func records(state: String, dueBy height: UInt64, limit: Int) throws -> [RequestRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT state, record FROM requests WHERE state = ? AND due <= ? ORDER BY due, created LIMIT ?",
                             arguments: [state, Int64(clamping: height), limit]).map(Self.decodeRow)
        }
    }

    /// Unsettled records, oldest first.
    public func unsettled(limit: Int) -> [RequestRecord] {
        live.withLock { l in
            var out: [RequestRecord] = []
            var seen = Set<Hash256>()
            var i = l.head
            while i < l.order.count, out.count < limit {
                if let x = l.records[l.order[i]], seen.insert(x.record.requestId).inserted { out.append(x.record) }
                i += 1
            }
            return out
        }
    }

    /// Moves records the ledger has answered for into SQLite with their state
    /// (`record.state`; for "pending", `due` is the height at which to look again),
    /// in one transaction, then forgets them here and retires journal segments
    /// that hold nothing needed.
    public func archive(_ items: [(record: RequestRecord, due: UInt64)]) throws {
        guard !items.isEmpty else { return }
        let rows = items.map { item -> (RequestRecord, UInt64, Data) in
            var r = item.record
            if Self.transcriptEnds(r.state) { r.transcript = nil }
            return (r, item.due, Data(r.canonicalBytes))
        }
        try pool.write { db in
            let st = try db.cachedStatement(sql: "INSERT OR REPLACE INTO requests (id, state, record, created, due) VALUES (?, ?, ?, ?, ?)")
            for (r, due, data) in rows {
                try st.execute(arguments: [Data(r.requestId.bytes), r.state, data, Int64(r.createdMillis), Int64(clamping: due)])
            }
        }
        let current = journal?.currentSegment
        let idle = live.withLock { l in items.compactMap { l.remove($0.record.requestId, current: current) } }
        for segment in idle { journal?.retire(segment) }
    }

    /// One journal write to come: a record (with whoever waits for it) or a discard mark.
    private enum Pending: Sendable {
        case record(RequestRecord, [UInt8], SaveTicket)
        case discard(Hash256)

        var bytes: [UInt8] {
            switch self {
            case let .record(_, bytes, _): bytes
            case let .discard(id): [ReceiptStore.discardMark] + id.bytes
            }
        }
    }

    // Group commit: records saved while a write is in progress go together in the next one.
    private let queue = Mutex<(pending: [Pending], writing: Bool)>(([], false))

    /// A save under way: `wait()` returns once the record is on disk.
    public final class SaveTicket: Sendable {
        private enum State {
            case writing
            case waiting(CheckedContinuation<Void, any Error>, (any EventLoop)?)
            case done(Result<Void, any Error>)
        }

        // Invariant: the writer calls `finish` once; one task calls `wait` once.
        private let state = Mutex(State.writing)

        fileprivate init() {}

        /// Returns once the record is durable, or throws the write's error.
        public func wait() async throws {
            // Resumed on the waiter's event loop: no extra thread hop.
            let loop = MultiThreadedEventLoopGroup.currentEventLoop
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let done = state.withLock { s -> Result<Void, any Error>? in
                    if case let .done(r) = s { return r }
                    s = .waiting(c, loop)
                    return nil
                }
                if let done { c.resume(with: done) }
            }
        }

        fileprivate func finish(_ result: Result<Void, any Error>) {
            let waiter = state.withLock { s -> (CheckedContinuation<Void, any Error>, (any EventLoop)?)? in
                defer { s = .done(result) }
                if case let .waiting(c, loop) = s { return (c, loop) }
                return nil
            }
            guard let (c, loop) = waiter else { return }
            if let loop { loop.execute { c.resume(with: result) } } else { c.resume(with: result) }
        }
    }

    /// Starts saving `r` durably (unsettled), sharing the journal write (and
    /// its `fdatasync`) with concurrent callers: the write begins at once, and
    /// the caller can do other work before waiting on the ticket.
    ///
    /// `inline` (for a request served alone): when no write is under way, the
    /// record is written and synced on this thread before `beginSave`
    /// returns, with no hand-over to the writer and back.
    public func beginSave(_ r: RequestRecord, inline: Bool = false) throws -> SaveTicket {
        guard journal != nil else { throw PlexusError(.invalidState, "the receipt store is open read-only") }
        let ticket = SaveTicket()
        let p = Pending.record(r, r.canonicalBytes, ticket)
        if !inline {
            enqueue(p)
        } else if claim(p) {
            // No write under way: this thread writes (otherwise `p` waits for the writer's next one).
            write(take())
            release()
        }
        return ticket
    }

    /// Saves `r` durably (unsettled); returns once it is on disk.
    public func saveDurably(_ r: RequestRecord) async throws {
        try await beginSave(r).wait()
    }

    /// Withdraws a record saved for a request that then failed (its receipt
    /// turned out invalid): it will not be settled. The mark goes with the next
    /// journal write; should it be lost in a crash, the record comes back
    /// unsettled and the ledger refuses it, so nothing is charged either way.
    public func discard(_ id: Hash256) {
        guard journal != nil else { return }
        let current = journal?.currentSegment
        let idle = live.withLock { l in l.remove(id, current: current) }
        enqueue(.discard(id))
        if let idle { journal?.retire(idle) }
    }

    /// Queues `p` for the writer, starting it if it is idle.
    private func enqueue(_ p: Pending) {
        if claim(p) { DispatchQueue.global().async { self.drain() } }
    }

    /// Queues `p`; true when the caller is to write (no write was under way).
    private func claim(_ p: Pending) -> Bool {
        queue.withLock { q -> Bool in
            q.pending.append(p)
            if q.writing { return false }
            q.writing = true
            return true
        }
    }

    /// Ends an inline write: what was queued meanwhile goes to the writer.
    private func release() {
        let more = queue.withLock { q -> Bool in
            if q.pending.isEmpty { q.writing = false }
            return q.writing
        }
        if more { DispatchQueue.global().async { self.drain() } }
    }

    /// What is pending, taken for one write; when nothing is, the writer stops.
    private func take() -> [Pending] {
        queue.withLock { q -> [Pending] in
            let b = q.pending
            q.pending = []
            if b.isEmpty { q.writing = false }
            return b
        }
    }

    private func drain() {
        while true {
            let batch = take()
            if batch.isEmpty { return }
            write(batch)
        }
    }

    /// Appends `batch` to the journal in one write and one sync, files its records and tells its waiters.
    private func write(_ batch: [Pending]) {
        guard let journal, !batch.isEmpty else { return }
        do {
            let before = journal.currentSegment
            let segment = try journal.append(batch.map(\.bytes))
            let idle = live.withLock { l -> [UInt64] in
                var idle: [UInt64] = []
                for p in batch {
                    switch p {
                    case let .record(r, _, _): if let s = l.add(r, segment: segment, current: segment) { idle.append(s) }
                    case let .discard(id): if let s = l.remove(id, current: segment) { idle.append(s) }
                    }
                }
                // A segment left behind with nothing in it.
                if segment != before, l.perSegment[before, default: 0] == 0 {
                    l.perSegment[before] = nil
                    idle.append(before)
                }
                return idle
            }
            for s in Set(idle) { journal.retire(s) }
            for case let .record(_, _, t) in batch { t.finish(.success(())) }
        } catch {
            for case let .record(_, _, t) in batch { t.finish(.failure(error)) }
        }
    }

    /// A record by request id, wherever it is.
    public func get(_ id: Hash256) throws -> RequestRecord? {
        // The journal first: a record that moves on meanwhile is then found in SQLite.
        let journaled = journal != nil ? live.withLock { $0.records[id]?.record }
                                       : try journalRecords().first { $0.requestId == id }
        if let journaled { return journaled }
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT state, record FROM requests WHERE id = ?", arguments: [Data(id.bytes)]) else { return nil }
            return try Self.decodeRow(row)
        }
    }

    /// Every record in the journal, read afresh (for the read-only view).
    private func journalRecords() throws -> [RequestRecord] {
        Self.standing(try Journal.read(directory: journalDirectory)).map(\.0)
    }

    /// Records in `states`, oldest first.
    public func records(in states: [String], limit: Int) throws -> [RequestRecord] {
        // The journal first: a record that moves on meanwhile is then found in SQLite.
        var journaled: [RequestRecord] = []
        if states.contains("unsettled") {
            journaled = journal == nil ? try journalRecords() : unsettled(limit: limit)
        }
        let (rows, archived) = try pool.read { db in
            let marks = states.map { _ in "?" }.joined(separator: ",")
            let rows = try Row.fetchAll(db, sql: "SELECT state, record FROM requests WHERE state IN (\(marks)) ORDER BY created LIMIT ?",
                                        arguments: StatementArguments(states + [String(limit)])).map(Self.decodeRow)
            return (rows, try Self.held(journaled.map(\.requestId), db))
        }
        let out = journaled.filter { !archived.contains($0.requestId) } + rows
        return Array(out.sorted { $0.createdMillis < $1.createdMillis }.prefix(limit))
    }

    /// Which of `ids` SQLite holds.
    private static func held(_ ids: [Hash256], _ db: Database) throws -> Set<Hash256> {
        var out = Set<Hash256>()
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = ids[start..<min(ids.count, start + 500)].map { Data($0.bytes) }
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            for id in try Data.fetchAll(db, sql: "SELECT id FROM requests WHERE id IN (\(marks))", arguments: StatementArguments(chunk)) {
                out.insert(try Hash256(bytes: Array(id)))
            }
        }
        return out
    }

    /// How many requests are recorded.
    public func count() throws -> Int {
        let journaled = journal == nil ? try journalRecords().map(\.requestId)
                                       : live.withLock { l in l.records.filter { $0.value.segment != nil }.map(\.key) }
        return try pool.read { db in
            let stored = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") ?? 0
            return stored + journaled.count - (try Self.held(journaled, db)).count
        }
    }
}
