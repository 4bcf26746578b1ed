// swift-tools-version:6.1
//
// Micro-benchmarks of the packet core with ordo-one/benchmark (package-benchmark): the frame
// parser, the RFC 1624 checksum update, the Maglev lookup, conntrack hit / miss / insert and the
// full per-packet pipeline on in-memory packets, each with wall clock, CPU instructions and
// malloc counts, against thresholds committed under Thresholds/. A separate package so that the
// main build and tests never compile it:
//
//     bench/micro.sh        (builds, runs, checks the thresholds, writes bench/results/micro.md)
import PackageDescription

let package = Package(
    name: "sluice-micro",
    dependencies: [
        .package(name: "Sluice", path: "../.."),
        // Only the malloc interposer trait: the runtime (ARC) interposer is not mirrored here.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SluiceMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SluicePipeline", package: "Sluice"),
                .product(name: "SluiceCore", package: "Sluice"),
            ],
            path: "Benchmarks/SluiceMicro",
            // Exclusivity unchecked as the hot-path modules and the DPDK worker are built; Swift 5
            // mode as the Benchmark library itself (its closures capture raw packet buffers).
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-enforce-exclusivity=unchecked"])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
