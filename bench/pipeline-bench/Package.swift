// swift-tools-version:6.0
//
// In-memory benchmark of PacketPipeline.process (no DPDK): ns/packet, Mpps and heap allocations
// per burst on one core. A separate package so that the main build and tests never compile it:
//
//     bench/pipeline-inmemory.sh        (builds, pins to a core, preloads the malloc interposer)
import PackageDescription

let package = Package(
    name: "pipeline-bench",
    dependencies: [
        .package(name: "Sluice", path: "../.."),
        // Counts malloc / calloc / realloc / free when its .so is LD_PRELOADed (mirrored here).
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", exact: "1.6.1"),
    ],
    targets: [
        // rdtsc and backtrace capture for allocation call sites (Swift cannot spell either).
        .target(name: "CBenchSupport"),
        .executableTarget(
            name: "sluice-pipeline-bench",
            dependencies: [
                "CBenchSupport",
                .product(name: "SluicePipeline", package: "Sluice"),
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            // As the hot-path modules and the DPDK worker that calls the pipeline are built.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
    ]
)
