import SluiceConfig
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why the control socket could not be opened.
public struct ControlServerError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// Who may connect, where, and the limits every connection lives within.
public struct ControlServerOptions: Sendable {
    public var path: String
    /// Permission bits of the socket file (connect(2) needs write permission on it).
    public var mode: UInt32 = 0o660
    /// Owner and group of the socket file; peers must be root, this uid, or in this gid
    /// (SO_PEERCRED, supplementary groups included). Nil: the server's own euid / egid.
    public var owner: UInt32?
    public var group: UInt32?
    public var maxClients = 16
    /// A request line longer than this is answered with an error and the connection closed.
    public var maxRequestBytes = 1 << 20
    /// A connection with no complete request for this long is closed (a subscriber is not,
    /// while it reads what it is sent).
    public var idleTimeoutMilliseconds = 30_000
    /// Output waiting for a client that does not read: past this it is disconnected, so a stalled
    /// subscriber cannot make the server buffer without bound.
    public var maxPendingOutputBytes = 8 << 20

    public init(path: String) { self.path = path }

    /// From the `control` section; user and group names are resolved here.
    public init(_ c: ControlConfig) throws(ControlServerError) {
        path = c.socket
        mode = UInt32(c.mode)
        maxClients = c.maxClients
        idleTimeoutMilliseconds = c.idleTimeoutSeconds * 1000
        if let o = c.owner {
            guard let uid = ControlServerOptions.userID(o) else { throw ControlServerError(reason: "control.owner: no user '\(o)'") }
            owner = uid
        }
        if let g = c.group {
            guard let gid = ControlServerOptions.groupID(g) else { throw ControlServerError(reason: "control.group: no group '\(g)'") }
            group = gid
        }
    }

    static func userID(_ s: String) -> UInt32? {
        if let n = UInt32(s) { return n }
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(s, &pw, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return pw.pw_uid
    }

    static func groupID(_ s: String) -> UInt32? {
        if let n = UInt32(s) { return n }
        var gr = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(s, &gr, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return gr.gr_gid
    }
}

/// The control socket's server: a Unix stream socket, JSON-RPC 2.0, one JSON text per line.
///
/// Why plain POSIX `poll(2)` on one thread rather than SwiftNIO: the control plane is a handful
/// of local clients and its state changes must be serialised anyway (one transaction at a
/// time, each ending in one RCU publication). One thread that owns the state, every socket and
/// every buffer needs no lock, no executor and no extra dependency in the data-plane binary,
/// and it makes each limit (line length, client count, idle time, unread output) an explicit
/// check in one loop. The thread is never a DPDK worker; a worker never waits on it.
public final class ControlServer: @unchecked Sendable {
    // Safe (@unchecked Sendable): after `start`, everything below is touched by the server
    // thread only; `stop` talks to it through the wake-up pipe and then joins it.
    public let options: ControlServerOptions
    public let plane: ControlPlane
    private var listener: Int32 = -1
    /// The socket file this server bound (device, inode): `stop` removes the file at the path
    /// only while it is still this one.
    private var boundFile: (dev: UInt, ino: UInt)?
    private var wake: (read: Int32, write: Int32) = (-1, -1)
    private var thread: pthread_t?
    private var clients: [Client] = []
    private var stopping = false
    /// Out of file descriptors (EMFILE/ENFILE): the listener stays readable but accept cannot
    /// take the connection, so it is left out of the poll set until then (no busy loop).
    private var acceptPausedUntil: UInt64 = 0
    static let acceptPauseMilliseconds: UInt64 = 100
    /// Serialises use of `plane` between the server thread and `withPlane` callers (the
    /// daemon's SIGHUP reload). `pendingEvents` is only touched with it held.
    private let planeLock = Mutex(())
    private var pendingEvents: [JSONValue] = []
    /// The most output ever waiting for one client (what the output limits bound; tests read it).
    private let peakPending = Atomic<Int>(0)
    public var peakPendingOutput: Int { peakPending.load(ordering: .relaxed) }

    final class Client {
        /// -1 once closed.
        var fd: Int32
        let uid: UInt32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var outputSent = 0
        /// Close once `output` is written (after a fatal error reply).
        var closing = false
        var session = ControlPlane.Session()
        var deadline: UInt64
        var nextStats: UInt64 = 0

        init(fd: Int32, uid: UInt32, deadline: UInt64) {
            self.fd = fd
            self.uid = uid
            self.deadline = deadline
        }

        var pending: Int { output.count - outputSent }
    }

    /// How long a connection being closed gets to read its last error.
    static let closingGraceMilliseconds: UInt64 = 1000

    public init(options: ControlServerOptions, plane: ControlPlane) {
        self.options = options
        self.plane = plane
    }

    deinit {
        if thread == nil { closeAll() }
    }

    // MARK: - Start and stop

    /// Creates the socket (mode, owner, group as configured; a stale socket file from a dead
    /// server is replaced, a live one is an error) and starts the server thread.
    public func start() throws(ControlServerError) {
        try bindSocket()
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0, ControlServer.setNonBlocking(fds[0]), ControlServer.setNonBlocking(fds[1]) else {
            closeAll()
            throw ControlServerError(reason: "\(options.path): pipe: \(ControlServer.errorText())")
        }
        wake = (fds[0], fds[1])
        // Called with `planeLock` held (inside `handle` or `withPlane`); sent by the server thread.
        plane.onChange = { [unowned self] event in self.pendingEvents.append(event) }
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            let server = Unmanaged<ControlServer>.fromOpaque(raw!).takeRetainedValue()
            server.loop()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            closeAll()
            throw ControlServerError(reason: "\(options.path): cannot start the control thread (\(rc))")
        }
        thread = t
    }

    /// Runs `body` on the plane from another thread, between two requests (never concurrently
    /// with one). Events it causes are sent by the server thread right after.
    public func withPlane<T: Sendable, E: Error>(_ body: (ControlPlane) throws(E) -> T) throws(E) -> T {
        let result = try planeLock.withLock { _ throws(E) in try body(plane) }
        var byte: UInt8 = 0
        if wake.write >= 0 { _ = write(wake.write, &byte, 1) }
        return result
    }

    /// Stops the thread, closes every connection and removes the socket file.
    public func stop() {
        guard let t = thread else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        pthread_join(t, nil)
        thread = nil
        // The closure refers to this server unowned: a plane used after it is gone must not call it.
        plane.onChange = nil
        closeAll()
    }

    private func closeAll() {
        for c in clients { close(c.fd) }
        clients.removeAll()
        if listener >= 0 {
            close(listener)
            listener = -1
            var st = stat()
            if let bound = boundFile, lstat(options.path, &st) == 0, UInt(st.st_dev) == bound.dev, UInt(st.st_ino) == bound.ino {
                unlink(options.path)
            }
            boundFile = nil
        }
        if wake.read >= 0 { close(wake.read); close(wake.write); wake = (-1, -1) }
    }

    static func errorText() -> String { String(cString: strerror(errno)) }

    static func address(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    /// Makes the socket file without a moment in which anyone else can reach or replace it,
    /// and without touching the process-wide umask (EAL and NIO threads create files too):
    /// bound inside a fresh 0700 directory next to the path, given its owner, group and mode
    /// there (nobody else can reach that directory, so nothing there can be swapped for a
    /// symlink), listening, then renamed into place (atomic, replacing a stale socket).
    /// A parent directory that others may write to without the sticky bit is refused: anyone
    /// could replace the socket there.
    private func bindSocket() throws(ControlServerError) {
        let path = options.path
        guard ControlServer.address(path) != nil else {
            throw ControlServerError(reason: "\(path): longer than a Unix socket address allows")
        }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        // The directory (e.g. /run/sluice) is created if missing; its own mode is left alone.
        if access(dir, F_OK) != 0 && mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw ControlServerError(reason: "\(dir): cannot create the socket's directory (\(ControlServer.errorText()))")
        }
        var st = stat()
        guard stat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw ControlServerError(reason: "\(dir): the socket's directory is not a directory")
        }
        if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
            throw ControlServerError(reason: "\(dir): the socket's directory is group- or world-writable without the sticky bit "
                                     + "(mode \(String(st.st_mode & 0o7777, radix: 8))); another user could replace the socket there")
        }
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw ControlServerError(reason: "\(path): exists and is not a socket; not removing it")
            }
            if ControlServer.isServing(path) {
                throw ControlServerError(reason: "\(path): another server is listening there")
            }
        }
        var template = Array("\(dir)/.sluiced-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw ControlServerError(reason: "\(dir): cannot create a private directory to bind in (\(ControlServer.errorText()))")
        }
        let privateDir = String(cString: created)
        let bindPath = privateDir + "/s"
        defer {
            unlink(bindPath)  // still there only if something failed before the rename
            rmdir(privateDir)
        }
        guard var addr = ControlServer.address(bindPath) else {
            throw ControlServerError(reason: "\(path): the private bind path \(bindPath) is longer than a Unix socket address allows; use a shorter directory")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlServerError(reason: "\(path): socket: \(ControlServer.errorText())") }
        func failure(_ what: String) -> ControlServerError {
            let text = ControlServer.errorText()
            close(fd)
            return ControlServerError(reason: "\(path): \(what): \(text)")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw failure("bind") }
        let owner = options.owner ?? geteuid()
        let group = options.group ?? getegid()
        guard fchownat(AT_FDCWD, bindPath, owner, group, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("chown to \(owner):\(group)") }
        guard chmod(bindPath, mode_t(options.mode)) == 0 else { throw failure("chmod") }
        var made = stat()
        guard lstat(bindPath, &made) == 0 else { throw failure("stat") }
        guard listen(fd, 64) == 0 else { throw failure("listen") }
        guard rename(bindPath, path) == 0 else { throw failure("rename into place") }
        listener = fd
        boundFile = (UInt(made.st_dev), UInt(made.st_ino))
    }

    /// True when something accepts connections on `path`.
    static func isServing(_ path: String) -> Bool {
        guard var addr = address(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }

    static func monotonicMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }

    // MARK: - The loop

    private func loop() {
        // A name to find the thread by (top -H, /proc/PID/task/*/comm); at most 15 characters.
        // (prctl and pthread_setname_np are not importable: variadic / behind _GNU_SOURCE.)
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if comm >= 0 { _ = write(comm, "sluice-control", 14); close(comm) }
        var fds: [pollfd] = []
        while !stopping {
            let now = ControlServer.monotonicMilliseconds()
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0))
            var timeout: UInt64 = 1000
            // poll(2) ignores a negative fd: the listener's slot stays, unwatched while paused.
            let acceptPaused = now < acceptPausedUntil
            fds.append(pollfd(fd: acceptPaused ? -1 : listener, events: Int16(POLLIN), revents: 0))
            if acceptPaused { timeout = min(timeout, acceptPausedUntil - now) }
            for c in clients {
                // No more requests from a client while it has more than the output limit unread.
                var events = c.pending > options.maxPendingOutputBytes ? Int16(0) : Int16(POLLIN)
                if c.pending > 0 { events |= Int16(POLLOUT) }
                if c.closing { events = Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: events, revents: 0))
                timeout = min(timeout, c.deadline > now ? c.deadline - now : 0)
                if let s = c.session.subscription, s.stats {
                    timeout = min(timeout, c.nextStats > now ? c.nextStats - now : 0)
                }
            }
            let n = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if n < 0 && errno != EINTR { break }
            if fds[0].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                let n = read(wake.read, &bytes, bytes.count)
                if n > 0 && bytes[0..<n].contains(1) { stopping = true; break }
            }
            // Clients first (their pollfds are in `clients` order), then new connections.
            let polled = clients
            for (i, c) in polled.enumerated() {
                let revents = fds[2 + i].revents
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 && !c.closing { receive(c) }
                if c.pending > 0 && revents & Int16(POLLOUT | POLLHUP | POLLERR) != 0 { flush(c) }
            }
            if fds[1].revents & Int16(POLLIN) != 0 { acceptClients() }
            let events = planeLock.withLock { _ in
                defer { pendingEvents.removeAll() }
                return pendingEvents
            }
            for event in events { broadcast(event) }
            housekeeping()
        }
    }

    /// Idle and stall limits, periodic stats, and closing what is finished.
    private func housekeeping() {
        let now = ControlServer.monotonicMilliseconds()
        for c in clients where c.closing && c.fd >= 0 && now >= c.deadline { drop(c) }
        for c in clients where !c.closing {
            if let s = c.session.subscription {
                if s.stats && now >= c.nextStats {
                    c.nextStats = now + UInt64(s.intervalMilliseconds)
                    var stats = planeLock.withLock { _ in plane.statsJSON() }
                    if case .object(var m) = stats { m.insert(("type", .string("stats")), at: 0); stats = .object(m) }
                    send(RPC.notification(method: "event", stats), to: c)
                }
                // A subscriber stays while it reads; one that stops reading hits the output limit.
                c.deadline = now + UInt64(options.idleTimeoutMilliseconds)
            } else if now >= c.deadline {
                fatal(RPCError(code: RPCError.limitExceeded,
                               message: "idle for \(options.idleTimeoutMilliseconds) ms without a complete request; closing"), to: c)
            }
            if c.pending > options.maxPendingOutputBytes { drop(c) }
        }
        clients.removeAll { c in
            if c.fd < 0 { return true }
            if c.closing && c.pending == 0 {
                close(c.fd)
                return true
            }
            return false
        }
    }

    private func acceptClients() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    acceptPausedUntil = ControlServer.monotonicMilliseconds() + ControlServer.acceptPauseMilliseconds
                }
                return
            }
            guard ControlServer.setNonBlocking(fd) else {
                close(fd)
                continue
            }
            let now = ControlServer.monotonicMilliseconds()
            let cred = ControlServer.peerCredentials(fd)
            let client = Client(fd: fd, uid: cred?.uid ?? UInt32.max, deadline: now + UInt64(options.idleTimeoutMilliseconds))
            guard let cred, isAllowed(cred) else {
                let who = cred.map { "uid \($0.uid) gid \($0.gid)" } ?? "unknown peer"
                ControlServer.writeOnce(fd, RPCError(code: RPCError.permissionDenied,
                                                     message: "permission denied: \(who) is not root, the socket's owner or in its group").response(id: .null))
                close(fd)
                continue
            }
            guard clients.count < options.maxClients else {
                ControlServer.writeOnce(fd, RPCError(code: RPCError.limitExceeded,
                                                     message: "too many clients (at most \(options.maxClients)); try again later").response(id: .null))
                close(fd)
                continue
            }
            clients.append(client)
        }
    }

    /// A best-effort single write on a connection about to be closed.
    static func writeOnce(_ fd: Int32, _ message: JSONValue) {
        let bytes = Array((message.serialized + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    struct Credentials {
        var pid: Int32
        var uid: UInt32
        var gid: UInt32
        /// Supplementary groups as of connect(2) (SO_PEERGROUPS).
        var groups: [UInt32] = []
    }

    /// `struct ucred` (pid_t, uid_t, gid_t: three 32-bit fields), which Glibc's module map
    /// leaves out (it is behind _GNU_SOURCE), and the supplementary groups. Both are captured
    /// by the kernel when the peer connected, so neither can be changed afterwards (an fd
    /// handed to another process, a pid reused).
    static func peerCredentials(_ fd: Int32) -> Credentials? {
        var cred: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0, length == 12 else { return nil }
        // Without SO_PEERGROUPS (a kernel before 4.13) only the uid and primary gid can grant.
        return Credentials(pid: cred.pid, uid: cred.uid, gid: cred.gid, groups: peerGroups(fd) ?? [])
    }

    /// SO_PEERGROUPS (Linux 4.13+; 59 in asm-generic/socket.h, not in Glibc's module map): the
    /// peer's supplementary groups at connect time. ERANGE reports the length needed.
    static let soPeerGroups: Int32 = 59

    static func peerGroups(_ fd: Int32) -> [UInt32]? {
        var groups = [UInt32](repeating: 0, count: 64)
        while true {
            var length = socklen_t(groups.count * MemoryLayout<UInt32>.size)
            let rc = groups.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, soPeerGroups, $0.baseAddress, &length) }
            if rc == 0 { return Array(groups.prefix(Int(length) / MemoryLayout<UInt32>.size)) }
            guard errno == ERANGE, Int(length) > groups.count * MemoryLayout<UInt32>.size else { return nil }
            groups = [UInt32](repeating: 0, count: (Int(length) + 3) / MemoryLayout<UInt32>.size)
        }
    }

    /// O_NONBLOCK and FD_CLOEXEC (accept4 and pipe2 are not in Glibc's module map).
    static func setNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0
    }

    /// Root, the configured owner, or a member of the configured group (primary or
    /// supplementary, as the peer's credentials were when it connected).
    func isAllowed(_ c: Credentials) -> Bool {
        let owner = options.owner ?? geteuid()
        let group = options.group ?? getegid()
        return c.uid == 0 || c.uid == owner || c.gid == group || c.groups.contains(group)
    }

    // MARK: - Per connection

    /// One recv per poll round: a client that keeps sending cannot hold the thread from the
    /// others, the idle limits and `withPlane`.
    private func receive(_ c: Client) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { drop(c); return }
        if n < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { drop(c) }
            return
        }
        let scanFrom = c.input.count
        c.input.append(contentsOf: chunk[0..<n])
        _ = processLines(c, scanFrom: scanFrom)
    }

    /// Handles every complete line in the input buffer. False when the connection is done.
    private func processLines(_ c: Client, scanFrom: Int) -> Bool {
        var start = 0
        var i = scanFrom
        while i < c.input.count {
            if c.input[i] == UInt8(ascii: "\n") {
                var line = Array(c.input[start..<i])
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                start = i + 1
                if line.count > options.maxRequestBytes {
                    tooLarge(c)
                    return false
                }
                if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                    // Only a request keeps a connection alive: blank lines do not hold a slot.
                    c.deadline = ControlServer.monotonicMilliseconds() + UInt64(options.idleTimeoutMilliseconds)
                    // A local copy: the change broadcast inside `handle` reads every client's session.
                    var session = c.session
                    let limit = options.maxPendingOutputBytes
                    let outcome = planeLock.withLock { _ -> Result<JSONValue?, RPCError> in
                        do throws(RPCError) {
                            return .success(try plane.handle(line: line, session: &session, maxResponseBytes: limit))
                        } catch {
                            return .failure(error)
                        }
                    }
                    if c.session.subscription == nil && session.subscription != nil { c.nextStats = 0 }
                    c.session = session
                    switch outcome {
                    case .success(let response?):
                        send(response, to: c)
                        // A client that sends without reading is cut off as soon as it is past
                        // the limit, not after the rest of what it sent has been answered.
                        if c.pending > options.maxPendingOutputBytes {
                            drop(c)
                            return false
                        }
                    case .success(nil): break
                    case .failure(let error):
                        fatal(error, to: c)
                        return false
                    }
                }
                if c.closing || c.fd < 0 { return false }
            }
            i += 1
        }
        c.input.removeFirst(start)
        if c.input.count > options.maxRequestBytes {
            tooLarge(c)
            return false
        }
        return true
    }

    private func tooLarge(_ c: Client) {
        c.input.removeAll()
        fatal(RPCError(code: RPCError.limitExceeded,
                       message: "request longer than \(options.maxRequestBytes) bytes; closing"), to: c)
    }

    /// Sends `error` (id null) and closes once it is written.
    private func fatal(_ error: RPCError, to c: Client) {
        send(error.response(id: .null), to: c)
        c.closing = true
        // A peer that does not read even this much is cut off shortly after.
        c.deadline = ControlServer.monotonicMilliseconds() + ControlServer.closingGraceMilliseconds
    }

    private func send(_ message: JSONValue, to c: Client) {
        guard c.fd >= 0 else { return }
        c.output.append(contentsOf: (message.serialized + "\n").utf8)
        if c.pending > peakPending.load(ordering: .relaxed) { peakPending.store(c.pending, ordering: .relaxed) }
        flush(c)
    }

    private func flush(_ c: Client) {
        while c.pending > 0 && c.fd >= 0 {
            let n = c.output.withUnsafeBytes { raw in
                Glibc.send(c.fd, raw.baseAddress! + c.outputSent, c.pending, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                drop(c)
                return
            }
            c.outputSent += n
        }
        if c.outputSent > 65536 || c.pending == 0 {
            c.output.removeFirst(c.outputSent)
            c.outputSent = 0
        }
    }

    private func drop(_ c: Client) {
        guard c.fd >= 0 else { return }
        close(c.fd)
        c.fd = -1
        c.closing = true
        c.output.removeAll()
        c.outputSent = 0
    }

    /// Sends an `event` notification to every subscriber.
    private func broadcast(_ event: JSONValue) {
        let message = RPC.notification(method: "event", event)
        for c in clients where c.session.subscription != nil && !c.closing { send(message, to: c) }
    }
}
