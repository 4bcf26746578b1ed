extension SluicedConfig {
    /// Checks that `next` differs from this running configuration only in what a running
    /// `sluiced` can change without a restart: `vips`, `services`, `routes` and static
    /// `neighbors` (published as a new snapshot). Ports, workers, the mbuf pool, the EAL
    /// arguments and the flow table are set up once; a change to them names the field.
    public func checkLiveChange(to next: SluicedConfig, file: String) throws(ConfigError) {
        func fixed(_ field: String, _ same: Bool) throws(ConfigError) {
            guard same else {
                throw ConfigError(file: file, field: field, reason: "cannot change while sluiced runs (restart it to apply)")
            }
        }
        try fixed("eal", eal == next.eal)
        try fixed("ports", ports == next.ports)
        try fixed("workers", workers == next.workers)
        try fixed("mempool", mempool == next.mempool)
        try fixed("flows", flows == next.flows)
    }
}
