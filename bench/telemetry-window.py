#!/usr/bin/env python3
"""Packets and forwarding-thread CPU time over a window of a running DPDK process.

Samples, every INTERVAL seconds, port PORT's `ipackets` through the process's telemetry socket
(/ethdev/stats) together with the run and wait time of its forwarding thread (EAL lcore 1,
`rte-worker-1`, from /proc/PID/task/TID/schedstat), and prints, for the window it was asked for:

    PACKETS RUN_NS WAIT_NS WALL_NS FIRST LAST [BUSY_CYCLES TOTAL_CYCLES]

PACKETS received in the window, the nanoseconds the thread ran (RUN_NS) and waited runnable
for its core (WAIT_NS), the wall-clock length, and the ipackets counts at its two ends. With
--worker N (sluiced only), also the worker's busy_cycles and total_cycles over the window, from
its `/sluice/workers,N` counters read when the window opens and when it closes (two reads:
each builds a whole metrics sample, too costly for every sample).

  --from N --seconds S   steady state: the window opens at the first sample with ipackets >= N
                         (a warm-up of N packets) and closes S wall-clock seconds later;
  --from N --to M        a packet range: from the first sample with ipackets >= N to the last
                         sample with ipackets <= M (e.g. only the first pass over a replayed pcap).

With --ready-log LOG --ready-text TEXT, sampling starts only once LOG contains TEXT (the ports
are started): until then the counter is not the application's (the pcap PMD counts the packets
it loads from the file at queue setup, then resets the count).

Exits 1 with a reason on stderr when the process ends, the socket never appears, or the
window cannot be measured. Uses only the standard library; the socket answers in well under a
millisecond, and the schedstat times are those the kernel last accounted (at most one tick old).
"""
import argparse
import json
import os
import socket
import sys
import time


def fail(message):
    print(f"telemetry-window: {message}", file=sys.stderr)
    sys.exit(1)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("socket")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--thread", default="rte-worker-1")
    ap.add_argument("--from", dest="start", type=int, required=True)
    ap.add_argument("--to", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--worker", type=int, help="also report sluiced worker N's busy and total cycles over the window")
    ap.add_argument("--ready-log")
    ap.add_argument("--ready-text")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = ap.parse_args()
    if (args.to is None) == (args.seconds is None):
        fail("give exactly one of --to and --seconds")
    deadline = time.monotonic() + args.timeout

    while not os.path.exists(args.socket):
        if not alive(args.pid) or time.monotonic() > deadline:
            fail(f"no telemetry socket {args.socket}")
        time.sleep(0.05)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(args.socket)
    sock.recv(4096)  # the greeting: version, pid, max_output_len

    tid = None
    while tid is None:
        try:
            for t in os.listdir(f"/proc/{args.pid}/task"):
                with open(f"/proc/{args.pid}/task/{t}/comm") as f:
                    if f.read().strip() == args.thread:
                        tid = t
        except OSError:
            pass
        if tid is None:
            if not alive(args.pid) or time.monotonic() > deadline:
                fail(f"no thread {args.thread} in process {args.pid}")
            time.sleep(0.05)
    schedstat = f"/proc/{args.pid}/task/{tid}/schedstat"
    query = f"/ethdev/stats,{args.port}".encode()

    def sample():
        try:
            with open(schedstat) as f:
                a = f.read().split()
            t = time.monotonic_ns()
            sock.send(query)
            reply = json.loads(sock.recv(65536))
            with open(schedstat) as f:
                b = f.read().split()
        except (OSError, ValueError) as e:
            fail(f"process {args.pid} went away while sampling ({e})")
        stats = reply.get("/ethdev/stats")
        if not isinstance(stats, dict):
            fail(f"no stats for port {args.port}: {reply}")
        # The counter is read between the two schedstat reads: take their mean.
        return (t, stats["ipackets"], (int(a[0]) + int(b[0])) / 2, (int(a[1]) + int(b[1])) / 2)

    def worker_cycles():
        """(busy_cycles, total_cycles) of worker args.worker; retried while sluiced's metrics start."""
        while True:
            try:
                sock.send(f"/sluice/workers,{args.worker}".encode())
                reply = json.loads(sock.recv(65536)).get("/sluice/workers")
            except (OSError, ValueError) as e:
                fail(f"process {args.pid} went away while reading worker counters ({e})")
            if isinstance(reply, dict) and "busy_cycles" in reply and "total_cycles" in reply:
                return reply["busy_cycles"], reply["total_cycles"]
            if not alive(args.pid) or time.monotonic() > deadline:
                fail(f"no counters for worker {args.worker}: {reply}")
            time.sleep(0.01)

    if args.ready_log:
        while True:
            try:
                with open(args.ready_log, errors="replace") as f:
                    if args.ready_text in f.read():
                        break
            except OSError:
                pass
            if not alive(args.pid) or time.monotonic() > deadline:
                fail(f"'{args.ready_text}' never appeared in {args.ready_log}")
            time.sleep(0.002)

    first = previous = None
    last_change, last_count = time.monotonic(), -1
    while True:
        s = sample()
        now = time.monotonic()
        if s[1] != last_count:
            last_change, last_count = now, s[1]
        elif now - last_change > 10:
            fail(f"ipackets stuck at {s[1]} for 10 s")
        if now > deadline:
            fail(f"window not complete after {args.timeout} s (ipackets {s[1]})")
        if first is None:
            if s[1] >= args.start and (args.to is None or s[1] <= args.to):
                first = s
                first_cycles = worker_cycles() if args.worker is not None else None
            elif args.to is not None and s[1] > args.to:
                fail(f"ipackets jumped past the window [{args.start}, {args.to}] to {s[1]} before a sample inside it")
        elif args.seconds is not None and s[0] - first[0] >= args.seconds * 1e9:
            last = s
            break
        elif args.to is not None and s[1] > args.to:
            last = previous
            break
        previous = s
        time.sleep(args.interval)
    last_cycles = worker_cycles() if args.worker is not None else None
    if last is first or last[1] == first[1]:
        fail(f"window too short: ipackets {first[1]} .. {last[1]}")
    fields = [last[1] - first[1], int(last[2] - first[2]), int(last[3] - first[3]), last[0] - first[0], first[1], last[1]]
    if last_cycles is not None:
        # Read a sample period after the window's last packet count: close enough for a share.
        fields += [last_cycles[0] - first_cycles[0], last_cycles[1] - first_cycles[1]]
    print(*fields)


if __name__ == "__main__":
    main()
