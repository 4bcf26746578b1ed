import ArgumentParser
import SluiceConfig
import SluiceDPDK

#if canImport(Glibc)
import Glibc
#endif

/// `sluiced --config FILE [--forward-io] [-- EAL-OPTIONS...]`
///
/// Exit status: 0 after a clean stop (SIGINT / SIGTERM), 2 when the configuration is rejected
/// (before the EAL starts), 1 when DPDK setup fails or a worker dies.
@main
struct Sluiced: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluiced",
        abstract: "The Sluice data plane: DPDK poll-mode workers that answer for the VIPs they own.",
        discussion: """
            EAL options are the config file's `eal` list followed by the arguments after `--`. \
            Unless they set them, sluiced adds `-l MAIN,WORKERS --main-lcore MAIN` from `workers`, \
            and hands each port's device to the EAL: `--vdev SPEC` for a virtual device, \
            `-a ADDRESS` for a PCI one.

            Prints one `port NAME: ...` line per port, then `sluiced: running`. On SIGINT or \
            SIGTERM it stops the workers, stops and closes the ports and prints the final \
            counters as `counter NAME VALUE` lines.
            """)

    @Option(name: .long, help: ArgumentHelp("The YAML configuration file.", valueName: "file"))
    var config: String

    @Flag(name: .customLong("forward-io"),
          help: "Benchmark mode: forward port 0 <-> port 1 untouched, like testpmd io (overrides workers.mode).")
    var forwardIO = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("EAL options (after --).", valueName: "eal-option"))
    var ealOptions: [String] = []

    func run() throws {
        let loaded: SluicedConfig
        do {
            loaded = try SluicedConfig.load(path: config)
        } catch {
            Output.error(error.description)
            throw ExitCode(2)
        }
        if let problem = Daemon.validate(loaded, forwardIO: forwardIO, file: config) {
            Output.error(problem)
            throw ExitCode(2)
        }
        let status = Daemon(config: loaded, forwardIO: forwardIO, ealOptions: ealOptions, configPath: config).run()
        if status != 0 { throw ExitCode(status) }
    }
}
