import Foundation
import Logging
import Metrics
import Prometheus

/// Process-wide logging and metrics; only the executable sets these up.
enum Bootstrap {
    nonisolated(unsafe) private static var done = false
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

    static func metricsText() -> [UInt8] { registry.emitToBuffer() }
}
