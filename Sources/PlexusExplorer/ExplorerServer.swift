import Foundation
import NIOHTTP1
import PlexusCore
import PlexusHTTP
import PlexusLedger

/// The explorer over HTTP: pages by path, the overview's figures as server-sent events
/// (`/live`), an account's activity as CSV. Paths and queries are checked before use: an
/// unknown page, a malformed id or height is a clear 404 page.
public struct ExplorerServer: Sendable {
    public let explorer: Explorer

    public init(explorer: Explorer) { self.explorer = explorer }

    static func html(_ page: Explorer.Page) -> HTTPResponseOut {
        .full(status: page.status, headers: [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")], body: Array(page.html.utf8))
    }

    /// A CSV download (`filename` is built from a checked address).
    static func csv(_ text: String, filename: String) -> HTTPResponseOut {
        .full(status: 200, headers: [("content-type", "text/csv; charset=utf-8"), ("content-disposition", "attachment; filename=\"\(filename)\"")],
              body: Array(text.utf8))
    }

    /// The decoded value of query parameter `name` (form encoding: `+` is a space).
    static func query(_ q: String?, _ name: String) -> String? {
        for pair in (q ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, kv[0] == name else { continue }
            return String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }

    public func handle(_ request: HTTPRequestIn) async -> HTTPResponseOut {
        guard request.method == .GET || request.method == .HEAD else {
            return .full(status: 405, headers: [("allow", "GET")], body: Array("method not allowed\n".utf8))
        }
        let e = explorer
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        do {
            switch (parts.first, parts.count) {
            case (nil, _): return Self.html(try await e.overview())
            case ("health", 1): return .full(status: 200, headers: [("content-type", "text/plain")], body: Array("ok\n".utf8))
            case ("live", 1): return live()
            case ("blocks", 1):
                return Self.html(try await e.blocks(before: Self.query(request.query, "before").flatMap { UInt64($0) }))
            case ("blocks", 2):
                guard let h = UInt64(parts[1]) else { return Self.html(e.notFound("A block height is a number.")) }
                let page = Self.query(request.query, "page").flatMap { Int($0) } ?? 0
                guard (0...100_000).contains(page) else { return Self.html(e.notFound("No such page of block \(h).")) }
                return Self.html(try await e.block(h, page: page))
            case ("tx", 2):
                guard let h = try? Hash256(hex: parts[1]) else { return Self.html(e.notFound("A transaction hash is 64 hex digits.")) }
                return Self.html(try await e.transaction(h))
            case ("accounts", 2) where parts[1].hasSuffix(".csv"):
                guard let a = try? Address(String(parts[1].dropLast(4))) else { return Self.html(e.notFound("Not an address.")) }
                return Self.csv(e.accountCSV(a), filename: "\(a.text)-activity.csv")
            case ("accounts", 2):
                guard let a = try? Address(parts[1]) else { return Self.html(e.notFound("Not an address.")) }
                return Self.html(try await e.account(a))
            case ("nodes", 1):
                let page = Self.query(request.query, "page").flatMap { Int($0) } ?? 0
                guard (0...100_000).contains(page) else { return Self.html(e.notFound("No such page of nodes.")) }
                return Self.html(try await e.nodes(sort: Self.query(request.query, "sort"), page: page))
            case ("nodes", 2) where parts[1].hasSuffix(".csv"):
                guard let key = try? Address(String(parts[1].dropLast(4))) else { return Self.html(e.notFound("Not a node key.")) }
                return Self.csv(e.nodeCSV(key), filename: "\(key.text)-shares.csv")
            case ("nodes", 2):
                guard let key = try? Address(parts[1]) else { return Self.html(e.notFound("Not a node key.")) }
                return Self.html(try await e.node(key, range: Self.query(request.query, "range")))
            case ("requests", 2):
                guard let id = try? Hash256(hex: parts[1]) else { return Self.html(e.notFound("A request id is 64 hex digits.")) }
                return Self.html(try await e.request(id))
            case ("governance", 1): return Self.html(try await e.governance())
            case ("governance", 2):
                guard let id = try? Hash256(hex: parts[1]) else { return Self.html(e.notFound("A proposal id is 64 hex digits.")) }
                return Self.html(try await e.proposal(id))
            case ("markets", 1): return Self.html(try await e.markets())
            case ("charts", 2): return Self.html(try await e.chart(parts[1], range: Self.query(request.query, "range")))
            case ("search", 1):
                let q = Self.query(request.query, "q") ?? ""
                if let to = await e.search(q) { return .full(status: 303, headers: [("location", to)], body: []) }
                return Self.html(e.render("search", ["query": String(q.prefix(128))], title: "Search", query: String(q.prefix(128)), status: 404))
            default:
                return Self.html(e.notFound("No page at \(request.path.prefix(100))."))
            }
        } catch {
            return Self.html(e.render("error", ["status": "Unavailable", "message": "The ledger could not be read: \(error)"], title: "Unavailable", status: 503))
        }
    }

    /// The overview's figures as server-sent events, every second while the client stays
    /// (at most an hour; the browser reconnects).
    func live() -> HTTPResponseOut {
        let pipe = BytePipe()
        let e = explorer
        Task {
            for _ in 0..<3_600 {
                guard let figures = try? await e.figures() else { break }
                let object = Dictionary(figures.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
                guard let json = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                      pipe.write(Array("data: ".utf8) + Array(json) + Array("\n\n".utf8)) else { break }
                try? await Task.sleep(for: .seconds(1))
            }
            pipe.finish()
        }
        return .stream(status: 200, headers: [("content-type", "text/event-stream"), ("cache-control", "no-store")], body: pipe)
    }

    /// Serves on `host`:`port` until the process is asked to stop, following the chain meanwhile.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let following = Task { await explorer.follow() }
        let sampling = Task { await explorer.keepHistory() }
        defer {
            following.cancel()
            sampling.cancel()
        }
        let server = PlainHTTPServer(host: host, port: port, name: "plexus-explorer") { request in await self.handle(request) }
        try await server.run { bound in await onListening(bound) }
    }
}
