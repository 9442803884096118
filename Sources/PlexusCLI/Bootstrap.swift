import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus

/// Process-wide logging and metrics; only the executable sets these up.
enum Bootstrap {
    nonisolated(unsafe) private static var done = false
    nonisolated(unsafe) private static var onEventLoops = false
    static let registry = PrometheusCollectorRegistry()

    /// Logs as `time level label: message key=value…` to stderr, at `level` and above;
    /// metrics go to the Prometheus registry served at `/metrics`.
    static func run(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// Runs Swift concurrency's tasks on the event loops that do the network
    /// I/O, so that a request does not hop between two thread pools. For
    /// servers whose handlers never block for long (the gateway, nodes —
    /// generation runs on threads of its own — and the benchmark's clients).
    static func tasksOnEventLoops() {
        guard !onEventLoops else { return }
        onEventLoops = true
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    static func metricsText() -> [UInt8] { registry.emitToBuffer() }
}
