import SluiceConfig
import SluiceDPDK

/// The EAL command line `sluiced` builds, in this order:
/// program name, derived lcore options, the config's `eal` list, one device option per port,
/// then the arguments given after `--` (so a later option can override an earlier one where
/// the EAL allows it).
///
/// Derived options are added only when nothing given already sets them:
/// - `-l MAIN,W1,W2…` unless `-l`, `-c` or `--lcores` is present;
/// - `--main-lcore MAIN` unless `--main-lcore` is present.
/// Devices: `--vdev SPEC` for virtual devices, `-a ADDRESS[,ARGS]` for PCI ones (see DeviceSpec).
struct EALArguments {
    let arguments: [String]

    init(config: SluicedConfig, extra: [String]) {
        let given = config.eal + extra
        var derived: [String] = []
        let main = config.workers.effectiveMainLcore
        if !EALArguments.contains(given, options: ["-l", "-c", "--lcores"]) {
            let lcores = [main] + config.workers.lcores
            derived += ["-l", lcores.map(String.init).joined(separator: ",")]
        }
        if !EALArguments.contains(given, options: ["--main-lcore"]) {
            derived += ["--main-lcore", String(main)]
        }
        let devices = config.ports.flatMap { DeviceSpec($0.device).ealArguments }
        arguments = ["sluiced"] + derived + config.eal + devices + extra
    }

    /// True when any of `options` appears, as `-l 0,1`, `-l0,1` (short) or `--lcores=…` (long).
    static func contains(_ arguments: [String], options: [String]) -> Bool {
        arguments.contains { argument in
            options.contains { option in
                argument == option
                    || (option.hasPrefix("--") ? argument.hasPrefix(option + "=")
                                               : argument.hasPrefix(option) && !argument.hasPrefix("--"))
            }
        }
    }
}
