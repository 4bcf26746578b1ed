#if canImport(Glibc)
import Glibc
#endif

/// What sluiced prints. Each line is one write(2) straight to the file descriptor: nothing
/// waits in a stdio buffer when stdout is a pipe (tests wait for `sluiced: running`), and
/// lines never interleave with DPDK's own log lines mid-way.
enum Output {
    /// A line on standard output.
    static func line(_ text: String) { write(text + "\n", to: STDOUT_FILENO) }

    /// A line on standard error, exactly as given (ConfigError's `FILE: FIELD: REASON`).
    static func error(_ text: String) { write(text + "\n", to: STDERR_FILENO) }

    private static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}
