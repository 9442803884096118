import Foundation
import Logging
import NIOCore
import PlexusCore
import PlexusLedger

/// A ledger in this process, serving its API on a loopback port.
public enum TestLedger {
    /// Runs a ledger of `net`'s genesis on an ephemeral port for the duration of `body`.
    public static func run(_ net: TestNetwork, idleTimeout: TimeAmount = .seconds(15), blockInterval: Duration = .milliseconds(10),
                           _ body: (LedgerClient, LedgerService) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/l.sqlite")
        try store.initialize(genesis: net.genesis)
        let service = try LedgerService(store: store, signer: net.orderer, blockInterval: blockInterval)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var server = LedgerServer(service: service, store: store, host: "127.0.0.1", port: 0, logger: logger, metrics: { Array("x 1\n".utf8) })
        server.idleTimeout = idleTimeout
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await server.run { port in cont.yield(port) } }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next() else { throw PlexusError(.io, "server did not start") }
        do {
            try await body(LedgerClient(baseURL: "http://127.0.0.1:\(port)"), service)
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
        task.cancel()
        _ = await task.result
    }
}
