import AsyncHTTPClient
import Foundation
import Metrics
import NIOCore
import NIOHTTP1
import PlexusCore

/// A small client of etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`,
/// `/v3/watch`, `/v3/maintenance/*`), over the project's HTTP client: what the replicated
/// ledger needs of etcd and nothing more. Keys and values travel base64-encoded, 64-bit
/// numbers as decimal strings. A request goes to one member and, when that member cannot
/// be reached or has no leader, to the next.
public struct EtcdClient: Sendable {
    /// A key-value pair as etcd stores it.
    public struct KeyValue: Sendable, Hashable {
        public var key: [UInt8]
        public var value: [UInt8]
        public var createRevision: Int64
        public var modRevision: Int64
        public var lease: Int64
    }

    /// The members' client URLs.
    public let endpoints: [String]
    let http: HTTPClient
    let timeout: TimeAmount
    /// The member answering last, tried first.
    let preferred = Locked(0)

    public init(endpoints: [String], http: HTTPClient = .failFast, timeout: TimeAmount = .seconds(5)) {
        self.endpoints = endpoints.map { var u = $0; while u.hasSuffix("/") { u.removeLast() }; return u }
        self.http = http
        self.timeout = timeout
    }

    /// What went wrong, by kind (the `kind` label of `plexus_ledger_etcd_errors_total`).
    public enum Failure: String, Sendable {
        case unavailable, tooLarge = "too_large", noSpace = "no_space", compacted, rejected
    }

    /// An etcd error with its kind.
    public struct EtcdError: Error, CustomStringConvertible, Sendable {
        public var kind: Failure
        public var message: String
        public var description: String { "etcd: \(message)" }
    }

    static func counted(_ e: EtcdError) -> EtcdError {
        Counter(label: "plexus_ledger_etcd_errors_total", dimensions: [("kind", e.kind.rawValue)]).increment()
        return e
    }

    // MARK: Requests

    /// POSTs `body` to `path` on a member (the preferred one first), returning the JSON answer.
    func call(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let payload = try JSONSerialization.data(withJSONObject: body)
        var last: EtcdError?
        let first = preferred.value
        for k in 0..<endpoints.count {
            let i = (first + k) % endpoints.count
            var request = HTTPClientRequest(url: endpoints[i] + path)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: payload))
            do {
                let response = try await http.execute(request, timeout: timeout)
                let bytes = try await response.body.collect(upTo: 64 << 20)
                let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
                if response.status == .ok, object["error"] == nil {
                    preferred.value = i
                    return object
                }
                let e = Self.classify(object["error"] as? String ?? object["message"] as? String ?? "HTTP \(response.status.code)")
                guard e.kind == .unavailable else { throw Self.counted(e) }
                last = e
            } catch let e as EtcdError where e.kind != .unavailable {
                throw e
            } catch let e as EtcdError {
                last = e
            } catch {
                last = EtcdError(kind: .unavailable, message: "\(endpoints[i]) cannot be reached (\(error))")
            }
        }
        throw Self.counted(last ?? EtcdError(kind: .unavailable, message: "no etcd endpoint"))
    }

    static func classify(_ message: String) -> EtcdError {
        let m = message.lowercased()
        let kind: Failure
        if m.contains("too large") || m.contains("larger than max") { kind = .tooLarge }
        else if m.contains("space exceeded") || m.contains("nospace") { kind = .noSpace }
        else if m.contains("compacted") { kind = .compacted }
        else if m.contains("no leader") || m.contains("timed out") || m.contains("unavailable") || m.contains("leader changed")
                    || m.contains("not capable") || m.contains("stopped") || m.contains("http 5") { kind = .unavailable }
        else { kind = .rejected }
        return EtcdError(kind: kind, message: String(message.prefix(300)))
    }

    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func bytes(_ any: Any?) -> [UInt8] {
        guard let s = any as? String, let d = Data(base64Encoded: s) else { return [] }
        return Array(d)
    }

    static func int(_ any: Any?) -> Int64 {
        if let s = any as? String { return Int64(s) ?? 0 }
        if let n = any as? NSNumber { return n.int64Value }
        return 0
    }

    static func keyValue(_ o: [String: Any]) -> KeyValue {
        KeyValue(key: bytes(o["key"]), value: bytes(o["value"]), createRevision: int(o["create_revision"]),
                 modRevision: int(o["mod_revision"]), lease: int(o["lease"]))
    }

    static func revision(_ o: [String: Any]) -> Int64 { int((o["header"] as? [String: Any])?["revision"]) }

    /// The end of the range of every key starting with `prefix`.
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xff { end[end.count - 1] = last + 1; return end }
            end.removeLast()
        }
        return [0]
    }

    // MARK: Key-value

    /// Keys in `[key, end)` in key order, at most `limit`; with the store's revision and whether more remain.
    public func range(_ key: [UInt8], end: [UInt8]? = nil, limit: Int = 0) async throws -> (kvs: [KeyValue], more: Bool, revision: Int64) {
        var body: [String: Any] = ["key": Self.b64(key)]
        if let end { body["range_end"] = Self.b64(end) }
        if limit > 0 { body["limit"] = String(limit) }
        let o = try await call("/v3/kv/range", body)
        let kvs = (o["kvs"] as? [[String: Any]] ?? []).map(Self.keyValue)
        return (kvs, o["more"] as? Bool ?? false, Self.revision(o))
    }

    /// The value at `key`, if any.
    public func get(_ key: [UInt8]) async throws -> KeyValue? {
        try await range(key).kvs.first
    }

    /// Puts `value` at `key` unconditionally.
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0) async throws {
        var body: [String: Any] = ["key": Self.b64(key), "value": Self.b64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        _ = try await call("/v3/kv/put", body)
    }

    /// How a guarded write fared.
    public enum Write: Sendable, Equatable {
        /// Written, at this revision.
        case written(Int64)
        /// `key` already holds this.
        case taken(KeyValue)
        /// The key it had to follow does not exist.
        case missingPredecessor
    }

    /// Writes `value` at `key` only if `key` does not exist and, when `after` is given,
    /// `after` does: one etcd transaction, so of two writers racing for a key exactly one wins.
    public func create(_ key: [UInt8], _ value: [UInt8], after: [UInt8]? = nil, lease: Int64 = 0) async throws -> Write {
        var compare: [[String: Any]] = [["key": Self.b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"]]
        if let after {
            compare.append(["key": Self.b64(after), "result": "GREATER", "target": "CREATE", "create_revision": "0"])
        }
        var put: [String: Any] = ["key": Self.b64(key), "value": Self.b64(value)]
        if lease != 0 { put["lease"] = String(lease) }
        var failure: [[String: Any]] = [["request_range": ["key": Self.b64(key)]]]
        if let after { failure.append(["request_range": ["key": Self.b64(after), "count_only": true]]) }
        let o = try await call("/v3/kv/txn", ["compare": compare, "success": [["request_put": put]], "failure": failure])
        if o["succeeded"] as? Bool == true { return .written(Self.revision(o)) }
        let responses = o["responses"] as? [[String: Any]] ?? []
        let existing = ((responses.first?["response_range"] as? [String: Any])?["kvs"] as? [[String: Any]])?.first
        if let existing { return .taken(Self.keyValue(existing)) }
        return .missingPredecessor
    }

    /// Deletes the keys in `[key, end)`; how many went, and the store's revision after.
    /// (Allowed while the space quota is exhausted, as reads are.)
    public func deleteRange(_ key: [UInt8], end: [UInt8]) async throws -> (deleted: Int64, revision: Int64) {
        let o = try await call("/v3/kv/deleterange", ["key": Self.b64(key), "range_end": Self.b64(end)])
        return (Self.int(o["deleted"]), Self.revision(o))
    }

    /// How many keys `[key, end)` holds.
    public func count(_ key: [UInt8], end: [UInt8]) async throws -> Int64 {
        Self.int(try await call("/v3/kv/range", ["key": Self.b64(key), "range_end": Self.b64(end), "count_only": true])["count"])
    }

    /// Discards the history before `revision` (etcd keeps every revision until compacted).
    public func compact(_ revision: Int64) async throws {
        do {
            _ = try await call("/v3/kv/compaction", ["revision": String(revision), "physical": true])
        } catch let e as EtcdError where e.kind == .compacted {
            // Compacted already, to this revision or a later one.
        }
    }

    // MARK: Leases

    /// Grants a lease of `ttl` seconds; its id.
    public func grantLease(ttl: Int) async throws -> Int64 {
        let o = try await call("/v3/lease/grant", ["TTL": String(ttl)])
        let id = Self.int(o["ID"])
        guard id != 0 else { throw Self.counted(EtcdError(kind: .rejected, message: "lease grant answered no id")) }
        return id
    }

    /// Renews a lease; the seconds it has left (0: expired).
    public func keepAlive(_ lease: Int64) async throws -> Int64 {
        let o = try await call("/v3/lease/keepalive", ["ID": String(lease)])
        return Self.int((o["result"] as? [String: Any])?["TTL"])
    }

    /// Ends a lease (its keys are deleted).
    public func revoke(_ lease: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": String(lease)])
    }

    // MARK: Watch

    /// Events on keys in `[key, end)` from `revision` on, as etcd streams them, until the
    /// stream ends or fails (a compacted revision fails with `.compacted`).
    public func watch(_ key: [UInt8], end: [UInt8], from revision: Int64) -> AsyncThrowingStream<[KeyValue], any Error> {
        let endpoints = self.endpoints, http = self.http, first = preferred.value
        return AsyncThrowingStream { continuation in
            let task = Task {
                let body: [String: Any] = ["create_request": ["key": Self.b64(key), "range_end": Self.b64(end), "start_revision": String(revision)]]
                var request = HTTPClientRequest(url: endpoints[first % endpoints.count] + "/v3/watch")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                do {
                    request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
                    let response = try await http.execute(request, timeout: .hours(24))
                    guard response.status == .ok else {
                        throw Self.counted(EtcdError(kind: .unavailable, message: "watch answered \(response.status.code)"))
                    }
                    var pending: [UInt8] = []
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        // The gateway writes one JSON object per message, each ending with a newline.
                        while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = Array(pending[..<nl])
                            pending.removeSubrange(...nl)
                            guard !line.isEmpty, let o = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else { continue }
                            if let error = o["error"] as? [String: Any] {
                                throw Self.counted(Self.classify(error["message"] as? String ?? "watch failed"))
                            }
                            let result = o["result"] as? [String: Any] ?? [:]
                            if Self.int(result["compact_revision"]) > 0 {
                                throw Self.counted(EtcdError(kind: .compacted, message: "watch from revision \(revision) is compacted"))
                            }
                            if result["canceled"] as? Bool == true {
                                throw Self.counted(EtcdError(kind: .unavailable, message: "watch cancelled: \(result["cancel_reason"] as? String ?? "")"))
                            }
                            let events = (result["events"] as? [[String: Any]] ?? []).compactMap { e -> KeyValue? in
                                guard e["type"] as? String != "DELETE", let kv = e["kv"] as? [String: Any] else { return nil }
                                return Self.keyValue(kv)
                            }
                            if !events.isEmpty { continuation.yield(events) }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Maintenance

    /// One member's view of the cluster.
    public struct MemberStatus: Sendable {
        public var endpoint: String
        public var memberId: String
        public var leader: String
        public var dbSize: Int64
        public var raftIndex: Int64
    }

    /// Gives the space freed by compaction back on every member (one at a time: a member
    /// answers nothing while it defragments), then clears the space alarms, so that
    /// writes refused for an exhausted quota are taken again. Members that cannot be
    /// reached are passed over.
    public func reclaimSpace() async throws {
        for endpoint in endpoints {
            let one = EtcdClient(endpoints: [endpoint], http: http, timeout: .seconds(60))
            _ = try? await one.call("/v3/maintenance/defragment", [:])
        }
        let o = try await call("/v3/maintenance/alarm", ["action": "GET"])
        for alarm in o["alarms"] as? [[String: Any]] ?? [] where alarm["alarm"] as? String == "NOSPACE" {
            _ = try await call("/v3/maintenance/alarm", ["action": "DEACTIVATE", "memberID": alarm["memberID"] as? String ?? "0", "alarm": "NOSPACE"])
        }
    }

    /// The status of the member at `endpoint`.
    public func status(of endpoint: String) async throws -> MemberStatus {
        let one = EtcdClient(endpoints: [endpoint], http: http, timeout: timeout)
        let o = try await one.call("/v3/maintenance/status", [:])
        let header = o["header"] as? [String: Any] ?? [:]
        return MemberStatus(endpoint: endpoint, memberId: header["member_id"] as? String ?? "", leader: o["leader"] as? String ?? "",
                            dbSize: Self.int(o["dbSize"]), raftIndex: Self.int(o["raftIndex"]))
    }
}
