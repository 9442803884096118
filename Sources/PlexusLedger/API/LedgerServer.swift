import Hummingbird
import Logging
import NIOCore
import PlexusCore

/// Runs a ledger: the service, its sealing loop and the HTTP API, until
/// SIGINT/SIGTERM, then seals and writes what is pending.
public struct LedgerServer: Sendable {
    public var service: LedgerService
    public var store: BlockStore
    public var host: String
    public var port: Int
    public var logger: Logger
    public var metrics: @Sendable () -> [UInt8]
    /// A connection that reads nothing for this long with no request under way is closed
    /// (half-open and idle keep-alive connections; a long-poll in progress is a request).
    public var idleTimeout: TimeAmount = .seconds(15)

    public init(service: LedgerService, store: BlockStore, host: String, port: Int, logger: Logger,
                metrics: @escaping @Sendable () -> [UInt8]) {
        self.service = service
        self.store = store
        self.host = host
        self.port = port
        self.logger = logger
        self.metrics = metrics
    }

    /// Serves until a shutdown signal; `onListening` receives the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = LedgerAPI.router(service: service, store: store, metrics: metrics)
        var appLogger = logger
        appLogger.logLevel = max(logger.logLevel, .notice)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: idleTimeout)),
            configuration: .init(address: .hostname(host, port: port), serverName: "plexus-ledger"),
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? 0)
            },
            logger: appLogger)
        await service.start()
        do {
            try await app.runService()
        } catch {
            await service.stop()
            throw error
        }
        await service.stop()
    }
}
