// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Plexus",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "plexus", targets: ["PlexusCLI"]),
        .library(name: "PlexusCore", targets: ["PlexusCore"]),
        .library(name: "PlexusEngine", targets: ["PlexusEngine"]),
        .library(name: "PlexusLedger", targets: ["PlexusLedger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        .target(
            name: "CEd25519",
            exclude: ["impl"],
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        .target(
            name: "PlexusCore",
            dependencies: ["CEd25519", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "CPlexusKernels",
            cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]
        ),
        .target(
            name: "PlexusEngine",
            dependencies: ["PlexusCore", "CPlexusKernels", .product(name: "Crypto", package: "swift-crypto")],
            // The engine's kernels are unusably slow unoptimised; tests run it optimised too.
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        .target(
            name: "PlexusLedger",
            dependencies: [
                "PlexusCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "PlexusHTTP",
            dependencies: [
                "PlexusCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "PlexusWire",
            dependencies: ["PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusHTTP"]
        ),
        .target(
            name: "PlexusNode",
            dependencies: [
                "PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusHTTP", "PlexusWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "PlexusGateway",
            dependencies: [
                "PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusHTTP", "PlexusWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "PlexusVerifier",
            dependencies: ["PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusWire",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "PlexusTestKit",
            dependencies: ["PlexusCore", "PlexusEngine", "PlexusLedger", .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .target(
            name: "PlexusExplorer",
            dependencies: ["PlexusCore", "PlexusLedger", "PlexusHTTP", .product(name: "Mustache", package: "swift-mustache"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOHTTP1", package: "swift-nio")]
        ),
        .executableTarget(
            name: "PlexusCLI",
            dependencies: [
                "PlexusCore",
                "PlexusExplorer",
                "PlexusEngine",
                "PlexusLedger",
                "PlexusNode",
                "PlexusGateway",
                "PlexusHTTP",
                "PlexusWire",
                "PlexusVerifier",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(name: "PlexusCoreTests", dependencies: ["PlexusCore", "PlexusTestKit"]),
        .testTarget(name: "PlexusEngineTests", dependencies: ["PlexusEngine", "CPlexusKernels", "PlexusTestKit"]),
        .testTarget(name: "PlexusLedgerTests", dependencies: ["PlexusLedger", "PlexusTestKit", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "PlexusTestKitTests", dependencies: ["PlexusTestKit"]),
        .testTarget(name: "PlexusNodeTests", dependencies: ["PlexusNode", "PlexusHTTP", "PlexusWire", "PlexusTestKit"]),
        .testTarget(name: "PlexusExplorerTests", dependencies: ["PlexusExplorer", "PlexusLedger", "PlexusHTTP", "PlexusTestKit"]),
        .testTarget(name: "PlexusHTTPTests", dependencies: ["PlexusHTTP", "PlexusTestKit"]),
        .testTarget(name: "PlexusWireTests", dependencies: ["PlexusWire", "PlexusTestKit"]),
        .testTarget(name: "PlexusVerifierTests", dependencies: ["PlexusVerifier", "PlexusNode", "PlexusTestKit"]),
        .testTarget(name: "PlexusGatewayTests", dependencies: ["PlexusGateway", "PlexusWire", "PlexusNode", "PlexusTestKit"]),
        .testTarget(name: "PlexusCLITests", dependencies: ["PlexusCore", "PlexusLedger", "PlexusNode", "PlexusGateway", "PlexusHTTP", "PlexusWire", "PlexusTestKit",
                                                         .product(name: "GRDB", package: "GRDB.swift")]),
    ]
)

// `scripts/fuzz.sh TARGET SECONDS` builds the decoders of outside bytes with libFuzzer's
// coverage and AddressSanitizer (PLEXUS_FUZZ=1, in a build folder of its own) and runs one
// target of Fuzz/Sources.
if Context.environment["PLEXUS_FUZZ"] != nil {
    let sanitized: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
    for t in package.targets where ["PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusHTTP", "PlexusWire", "PlexusGateway"].contains(t.name) {
        t.swiftSettings = (t.swiftSettings ?? []) + sanitized
    }
    package.products.append(.executable(name: "plexus-fuzz", targets: ["PlexusFuzz"]))
    package.targets.append(.executableTarget(
        name: "PlexusFuzz",
        dependencies: ["PlexusCore", "PlexusEngine", "PlexusLedger", "PlexusHTTP", "PlexusWire", "PlexusGateway"],
        path: "Fuzz/Sources",
        swiftSettings: sanitized + [.unsafeFlags(["-parse-as-library"])],
        linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]))
}
