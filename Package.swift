// swift-tools-version:6.0
//
// Sluice: an edge L4 load balancer in Swift on DPDK.
//
// DPDK 22.11 and libnuma come from Debian (`libdpdk-dev`, `libnuma-dev`); nothing of DPDK is
// vendored. The include paths and the machine flags below are what `pkg-config --cflags libdpdk`
// prints on Debian 12; only CDPDK and SluiceDPDK see them, so the rest of the package builds and
// tests without DPDK headers on the include path.
import PackageDescription

let dpdkCFlags = [
    "-I/usr/include/dpdk",
    "-I/usr/include/x86_64-linux-gnu/dpdk",
    "-include", "rte_config.h",
    "-march=corei7",
]
let dpdkLibraries = [
    "rte_ethdev", "rte_mbuf", "rte_mempool", "rte_ring", "rte_net", "rte_eal",
    "rte_telemetry", "rte_kvargs", "rte_rcu", "rte_hash", "numa",
]

/// Hot-path modules: exclusivity checks cost a branch per access on inout/class state; the
/// ownership discipline (one worker owns its state) is documented at each type instead.
let hotPathSwift: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluiced", targets: ["sluiced"]),
        .executable(name: "sluicectl", targets: ["sluicectl"]),
        .executable(name: "sluice-pktgen", targets: ["sluice-pktgen"]),
        .library(name: "SluiceCore", targets: ["SluiceCore"]),
        // For bench/pipeline-bench (a separate package, so that the main build does not compile it).
        .library(name: "SluicePipeline", targets: ["SluiceConfig", "SluiceDataPlane", "SluiceConntrack", "SluiceMaglev"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // The Prometheus endpoint's HTTP/1.1 server (NIOHTTP1); used by SluiceMetricsHTTP only.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // C wrapper over DPDK: per-packet calls `static inline` in the header, setup out of line.
        .target(
            name: "CDPDK",
            path: "CShims/CDPDK",
            cSettings: [.unsafeFlags(dpdkCFlags)],
            linkerSettings: dpdkLibraries.map { .linkedLibrary($0) }
        ),
        // Packet views, parsing, checksums, builders. Imports no DPDK.
        .target(name: "SluiceCore", swiftSettings: hotPathSwift),
        // The per-packet pipeline, VIP tables, counters. Imports no DPDK.
        .target(name: "SluiceDataPlane", dependencies: ["SluiceCore", "SluiceMaglev", "SluiceConntrack"],
                swiftSettings: hotPathSwift),
        // Maglev consistent hashing (NSDI 2016 §3.4) and the seeded flow hash. Pure, deterministic.
        .target(name: "SluiceMaglev", dependencies: ["SluiceCore"], swiftSettings: hotPathSwift),
        // Maglev balance, disruption, build time and flow-hash cost: `swift run -c release sluice-maglev-report`.
        .executableTarget(name: "sluice-maglev-report", dependencies: ["SluiceMaglev", "SluiceCore"]),
        // Prefetch hints Swift cannot spell (static inline C, inlined into Swift). No DPDK.
        .target(name: "CSluiceIntrinsics", path: "CShims/CSluiceIntrinsics"),
        // The lock-free connection-tracking table. Imports no DPDK.
        .target(
            name: "SluiceConntrack",
            dependencies: ["SluiceCore", "CSluiceIntrinsics"],
            swiftSettings: hotPathSwift
        ),
        // Conntrack micro-benchmark (run it in release: see docs/conntrack.md).
        .executableTarget(
            name: "sluice-conntrack-bench",
            dependencies: ["SluiceConntrack"],
            path: "bench/conntrack-bench",
            swiftSettings: hotPathSwift
        ),
        // The YAML configuration: schema, validation with field paths. Imports no DPDK.
        .target(
            name: "SluiceConfig",
            dependencies: ["SluiceCore", "SluiceDataPlane", "SluiceMaglev", "SluiceConntrack",
                           .product(name: "Yams", package: "Yams")]
        ),
        // The control socket: JSON-RPC 2.0 over a Unix stream socket, its state model, server and
        // client. Imports no DPDK: sluiced hands it a `ControlTarget`.
        .target(
            name: "SluiceControl",
            dependencies: ["SluiceConfig", "SluiceCore", "SluiceDataPlane", "SluiceConntrack",
                           .product(name: "Yams", package: "Yams")]
        ),
        // The operator's CLI for the control socket.
        .executableTarget(
            name: "sluicectl",
            dependencies: ["SluiceControl", "SluiceConfig", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Yams", package: "Yams")]
        ),
        // EAL, ports, queues, mempools, the worker loop: the only module that talks to DPDK.
        .target(
            name: "SluiceDPDK",
            dependencies: ["CDPDK", "SluiceCore", "SluiceDataPlane", "SluiceConntrack", "SluiceMetrics"],
            swiftSettings: hotPathSwift + [.unsafeFlags(dpdkCFlags.flatMap { ["-Xcc", $0] })]
        ),
        // Metrics: a sample of every counter (summed over workers) and its Prometheus text
        // rendering and DPDK-telemetry shape. Imports no DPDK, no networking.
        .target(name: "SluiceMetrics", dependencies: ["SluiceDataPlane", "SluiceCore"]),
        // The Prometheus scrape endpoint: HTTP/1.1 over swift-nio, on its own threads.
        .target(
            name: "SluiceMetricsHTTP",
            dependencies: [
                "SluiceMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "sluiced",
            dependencies: [
                "SluiceConfig", "SluiceDPDK", "SluiceDataPlane", "SluiceCore", "SluiceConntrack", "SluiceControl",
                "SluiceMetrics", "SluiceMetricsHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.unsafeFlags(dpdkCFlags.flatMap { ["-Xcc", $0] })]
        ),
        // The traffic generator's packet side: flows, templates, receive checks. Imports no DPDK.
        .target(name: "SluicePktgen", dependencies: ["SluiceCore", .product(name: "Yams", package: "Yams")],
                swiftSettings: hotPathSwift),
        // A DPDK traffic generator for benchmarking sluiced over memif / ring / af_packet (docs/pktgen.md).
        .executableTarget(
            name: "sluice-pktgen",
            dependencies: [
                "SluicePktgen", "SluiceDPDK", "CDPDK", "SluiceCore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hotPathSwift + [.unsafeFlags(dpdkCFlags.flatMap { ["-Xcc", $0] })]
        ),
        // Golden fixtures live in Tests/Fixtures and are found through #filePath.
        // Helpers the golden-test targets share (hex fixtures); not part of the product.
        .target(name: "SluiceTestSupport", path: "Tests/Support/SluiceTestSupport"),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore", "SluiceDataPlane", "SluiceTestSupport"]),
        .testTarget(name: "SluiceDataPlaneTests", dependencies: ["SluiceDataPlane", "SluiceCore"]),
        .testTarget(name: "SluiceConfigTests", dependencies: ["SluiceConfig"]),
        .testTarget(name: "SluiceControlTests",
                    dependencies: ["SluiceControl", "SluiceConfig", "SluiceDataPlane", "SluiceConntrack", "SluiceCore"]),
        // Golden packets through the whole load-balancing pipeline, configured from YAML.
        .testTarget(
            name: "SluicePipelineTests",
            dependencies: ["SluiceConfig", "SluiceDataPlane", "SluiceConntrack", "SluiceMaglev", "SluiceCore",
                           "SluiceTestSupport"]
        ),
        .testTarget(name: "SluiceMaglevTests", dependencies: ["SluiceMaglev", "SluiceCore"]),
        .testTarget(name: "SluiceConntrackTests", dependencies: ["SluiceConntrack"]),
        .testTarget(name: "SluiceMetricsTests", dependencies: ["SluiceMetrics", "SluiceConfig", "SluiceDataPlane", "SluiceCore"]),
        .testTarget(name: "SluicePktgenTests", dependencies: ["SluicePktgen", "SluiceCore"]),
    ]
)
