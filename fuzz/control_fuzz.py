#!/usr/bin/env python3
"""Bounded fuzz of sluiced's control socket (JSON-RPC 2.0, one JSON text per line).

For SECONDS seconds it sends random and mutated requests: well-formed calls of every method
with values drawn from a pool of good and bad ones, byte-level mutations of them (flips,
inserts, deletions, truncation), random bytes, batches, deep nesting, oversized lines,
half-written lines on connections it then drops. After each payload an oracle connection
reads state.get: when no request of the payload succeeded, the state must equal the last
accepted one (nothing changes on an error); when one succeeded, the new state becomes the
last accepted one. At the end the server must still answer and its state must equal the last
accepted state. Exit status 0 when all held; prints a summary line either way.

usage: control_fuzz.py SOCKET SECONDS [SEED]
"""
import json
import random
import socket
import sys
import time

SOCK, SECONDS = sys.argv[1], float(sys.argv[2])
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
rng = random.Random(SEED)


class Conn:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(SOCK)
        self.s.settimeout(10)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        req = {"jsonrpc": "2.0", "id": "oracle", "method": method}
        if params is not None:
            req["params"] = params
        self.send(json.dumps(req).encode() + b"\n")
        while True:
            m = self.line()
            if m.get("id") == "oracle":
                return m

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# Values: good ones and every kind of bad one.
NAMES = ["web", "dns", "api", "x", "", "a" * 65, "bad name", 7, None]
VIPS = ["192.0.2.10", "192.0.2.11", "192.0.2.20", "2001:db8::10", "224.0.0.1", "127.0.0.1", "192.0.2.300", "", 5]
BACKENDS = ["198.51.100.11", "198.51.100.12", "198.51.100.13", "198.51.100.14", "2001:db8:1::11",
            "203.0.113.5", "198.51.100.255", "::", "nope", 3]
PORTS = [80, 53, 8080, 0, 65535, 65536, -1, "80", 1.5, None, 2 ** 70]
WEIGHTS = [0, 1, 2, 100, 65535, 65536, -3, "1", True, None]
PROTOCOLS = ["tcp", "udp", "sctp", "icmp", "TCP", 6, None]
PORT_NAMES = ["lan0", "lan1", "wan", "", None]


def pick(pool):
    return rng.choice(pool)


def maybe(d, key, pool, p=0.8):
    if rng.random() < p:
        d[key] = pick(pool)


def backend():
    b = {"address": pick(BACKENDS)}
    maybe(b, "port", PORTS, 0.6)
    maybe(b, "weight", WEIGHTS, 0.4)
    if rng.random() < 0.05:
        b[pick(["vni", "vtep", "color"])] = pick([1, "x", None])
    return b


def service():
    s = {}
    maybe(s, "name", NAMES, 0.95)
    maybe(s, "vip", VIPS, 0.95)
    maybe(s, "protocol", PROTOCOLS, 0.95)
    maybe(s, "port", PORTS, 0.9)
    if rng.random() < 0.1:
        s["mode"] = pick(["dnat", "vxlan", "fullnat", "nat"])
    if rng.random() < 0.05:
        s["maglev_size"] = pick([251, 65537, 100, 3])
    if rng.random() < 0.95:
        s["backends"] = [backend() for _ in range(rng.randint(0, 4))]
    return s


def vip():
    v = {}
    maybe(v, "address", VIPS, 0.95)
    maybe(v, "port", PORT_NAMES, 0.9)
    if rng.random() < 0.1:
        v["mac"] = pick(["02:00:00:00:00:20", "01:00:5e:00:00:01", "zz"])
    return v


def params_for(method):
    if method == "service.add" or method == "service.update":
        return service()
    if method == "service.delete":
        return {"name": pick(NAMES)}
    if method == "service.list":
        return pick([{}, {"name": pick(NAMES)}])
    if method == "backend.add":
        return {"service": pick(NAMES), "backend": backend()}
    if method in ("backend.update", "backend.remove"):
        p = {"service": pick(NAMES), "address": pick(BACKENDS)}
        maybe(p, "port", PORTS, 0.4)
        if method == "backend.update":
            if rng.random() < 0.7:
                p["weight"] = pick(WEIGHTS)
            if rng.random() < 0.3:
                p["drain"] = pick([True, False, "yes"])
        return p
    if method == "vip.own":
        return vip()
    if method == "vip.disown":
        p = {"address": pick(VIPS)}
        maybe(p, "port", PORT_NAMES, 0.3)
        return p
    if method == "state.apply":
        p = {"generation": pick([0, 1, 5, 50, 10 ** 6, -1, "7", None, GEN[0] + rng.randint(0, 2)])}
        if rng.random() < 0.9:
            p["vips"] = [vip() for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.9:
            p["services"] = [service() for _ in range(rng.randint(0, 3))]
        return p
    if method.startswith("conntrack."):
        p = {}
        maybe(p, "vip", VIPS, 0.3)
        maybe(p, "backend", BACKENDS, 0.3)
        maybe(p, "protocol", PROTOCOLS, 0.3)
        if method == "conntrack.list":
            maybe(p, "limit", [1, 10, 0, 20000, "5"], 0.5)
        if method == "conntrack.flush" and rng.random() < 0.3:
            p["all"] = pick([True, False, 1])
        return p
    if method == "events.subscribe":
        return {"interval_ms": pick([100, 1000, 50, "x"]), "stats": pick([True, False])}
    return pick([{}, {"x": 1}, [], None])


METHODS = ["api.version", "state.get", "state.apply", "service.list", "service.add", "service.update",
           "service.delete", "backend.add", "backend.update", "backend.remove", "vip.own", "vip.disown",
           "stats", "conntrack.count", "conntrack.list", "conntrack.flush", "neighbors.list",
           "events.subscribe", "nope", "service.add "]
GEN = [0]
counter = [0]


def request(notification=False):
    counter[0] += 1
    method = pick(METHODS)
    r = {"jsonrpc": "2.0", "method": method}
    if not notification:
        r["id"] = pick([counter[0], "r%d" % counter[0]])
    p = params_for(method)
    if p is not None:
        r["params"] = p
    if rng.random() < 0.03:
        r["jsonrpc"] = pick(["1.0", 2, None])
    return r


def mutate(data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not b:
            break
        i = rng.randrange(len(b))
        if op < 0.4:
            b[i] = rng.randrange(256)
        elif op < 0.6:
            b.insert(i, rng.choice(b'{}[]",:\\0123456789.-eE \t\x00\xff'))
        elif op < 0.8:
            del b[i]
        else:
            del b[i:]
    return bytes(b).replace(b"\n", b" ")


def payload():
    """Returns (bytes, may_change_state_silently)."""
    kind = rng.random()
    if kind < 0.45:
        return json.dumps(request()).encode() + b"\n", False
    if kind < 0.7:
        return mutate(json.dumps(request()).encode()) + b"\n", False
    if kind < 0.8:
        batch = [request() for _ in range(rng.randint(1, 4))]
        return json.dumps(batch).encode() + b"\n", False
    if kind < 0.88:
        n = rng.randint(1, 300)
        return bytes(rng.randrange(256) for _ in range(n)).replace(b"\n", b"") + b"\n", False
    if kind < 0.93:
        depth = rng.randint(50, 5000)
        return (b"[" * depth) + (b"]" * depth if rng.random() < 0.5 else b"") + b"\n", False
    if kind < 0.96:
        # A notification: no response, but it may change the state.
        return json.dumps(request(notification=True)).encode() + b"\n", True
    return b"", False  # special cases below


def main():
    deadline = time.time() + SECONDS
    oracle = Conn()
    last = oracle.call("state.get")["result"]
    GEN[0] = last["generation"]
    fuzz = Conn()
    stats = {"payloads": 0, "accepted": 0, "errors": {}, "reconnects": 0, "oversized": 0, "half": 0}
    sentinel = 0
    while time.time() < deadline:
        data, silent = payload()
        stats["payloads"] += 1
        succeeded = False
        if not data:
            special = rng.random()
            if special < 0.3:
                # Oversized line: answered with -32006, the connection closed.
                stats["oversized"] += 1
                c = Conn()
                try:
                    c.send(b'{"jsonrpc":"2.0","id":1,"method":"stats","params":{"x":"' + b"a" * (1 << 20) + b'"}}\n')
                except OSError:
                    pass
                try:
                    m = c.line()
                    assert m["error"]["code"] == -32006, m
                except (ConnectionError, OSError):
                    pass
                c.close()
            else:
                # Half a request, then gone.
                stats["half"] += 1
                c = Conn()
                req = json.dumps(request()).encode()
                c.send(req[: rng.randrange(1, len(req))])
                c.close()
        else:
            sentinel += 1
            tag = "sentinel-%d" % sentinel
            try:
                fuzz.send(data + json.dumps({"jsonrpc": "2.0", "id": tag, "method": "api.version"}).encode() + b"\n")
                while True:
                    m = fuzz.line()
                    if isinstance(m, dict) and m.get("id") == tag:
                        break
                    for r in (m if isinstance(m, list) else [m]):
                        if "method" in r:  # an event notification
                            continue
                        if "result" in r:
                            succeeded = True
                        elif "error" in r:
                            code = r["error"]["code"]
                            stats["errors"][code] = stats["errors"].get(code, 0) + 1
            except (ConnectionError, OSError, ValueError):
                stats["reconnects"] += 1
                fuzz.close()
                fuzz = Conn()
                succeeded = True  # unknown: a request before the failure may have succeeded
        now = oracle.call("state.get")["result"]
        if succeeded or silent:
            if now != last:
                stats["accepted"] += 1
            last = now
            GEN[0] = now["generation"]
        elif now != last:
            print("FAIL: state changed although no request succeeded (seed %d)\npayload: %r\nbefore: %s\nafter: %s"
                  % (SEED, data[:500], json.dumps(last), json.dumps(now)))
            return 1
    fuzz.close()
    final = Conn()
    version = final.call("api.version")
    state = final.call("state.get")["result"]
    ok = version.get("result", {}).get("api") == "1.0" and state == last
    print("%s: %d payloads in %.0f s (seed %d): %d accepted changes, final generation %d, errors by code %s, "
          "%d reconnects, %d oversized, %d half-written"
          % ("ok" if ok else "FAIL", stats["payloads"], SECONDS, SEED, stats["accepted"], state["generation"],
             dict(sorted(stats["errors"].items())), stats["reconnects"], stats["oversized"], stats["half"]))
    if state != last:
        print("final state differs from the last accepted one:\n%s\n%s" % (json.dumps(state), json.dumps(last)))
    return 0 if ok else 1


sys.exit(main())
