#!/usr/bin/env python3
"""Reference model of Sluice's Maglev table and flow hash, in plain Python 3 (standard library only).

Written from the papers, not from the Swift code, so that the two can check each other:

* Maglev hashing: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
  NSDI 2016, section 3.4 and Pseudocode 1:
      offset = h1(name) mod M
      skip   = h2(name) mod (M - 1) + 1
      permutation[i][j] = (offset + j * skip) mod M
  Backends take turns, each taking the next still-empty slot of its own permutation.
* Weights (the paper leaves them out): Katran's MaglevHashV2 credit scheme -- every round each
  backend adds its weight to a credit and takes a turn only when the credit reaches the largest
  weight, which is then subtracted. Weight 0 never takes a turn. Equal weights = Pseudocode 1.
* Fill order: backends sorted by identity bytes, so the input order does not matter. Entries are
  indices into the list as given.
* h1, h2: SipHash-2-4 of the identity bytes with the 16-byte ASCII keys "Sluice Maglev h1" and
  "Sluice Maglev h2" (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012).
* Flow hash: SipHash-1-3 under the 16-byte deployment seed, over
  IPv4: src(4) dst(4) sport(2) dport(2) proto(1)  = 13 bytes
  IPv6: src(16) dst(16) sport(2) dport(2) proto(1) = 37 bytes, all in network byte order.
* Slot of a flow: (hash >> 32) * M >> 32.

Usage:
  reference.py table --size 13 alpha beta:2 gamma:0      print a table (NAME[:WEIGHT])
  reference.py paper-example                              replay the paper's Table 1
  reference.py self-test                                  SipHash vectors, CPython cross-check
  reference.py fixture > Tests/Fixtures/maglev/reference.json
"""

import ipaddress
import json
import os
import subprocess
import sys

MASK64 = (1 << 64) - 1


# --- SipHash (paper section 2) ---------------------------------------------------------------

def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK64


def siphash(key16, message, c, d):
    """SipHash-c-d of `message` (bytes) under the 16-byte `key16`; returns an int < 2**64."""
    assert len(key16) == 16
    k0 = int.from_bytes(key16[0:8], "little")
    k1 = int.from_bytes(key16[8:16], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround():
        v[0] = (v[0] + v[1]) & MASK64; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & MASK64; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
        v[0] = (v[0] + v[3]) & MASK64; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
        v[2] = (v[2] + v[1]) & MASK64; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)

    # Pad: the tail bytes, zeros, and the length mod 256 as the last byte of the last word.
    padded = bytes(message) + bytes((7 - len(message)) % 8) + bytes([len(message) & 0xFF])
    for i in range(0, len(padded), 8):
        m = int.from_bytes(padded[i:i + 8], "little")
        v[3] ^= m
        for _ in range(c):
            sipround()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(d):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


H1_KEY = b"Sluice Maglev h1"
H2_KEY = b"Sluice Maglev h2"


def h1(identity):
    return siphash(H1_KEY, identity, 2, 4)


def h2(identity):
    return siphash(H2_KEY, identity, 2, 4)


# --- Maglev (paper section 3.4) --------------------------------------------------------------

def is_prime(n):
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def offset_skip(identity, m):
    return h1(identity) % m, h2(identity) % (m - 1) + 1


def permutation(offset, skip, m, j):
    """permutation[i][j] of the paper, computed on demand instead of stored."""
    return (offset + j * skip) % m


def populate_pairs(pairs, weights, m):
    """Pseudocode 1 over explicit (offset, skip) pairs in turn order, with weighted turns.
    Returns entry[] of turn-order indices, -1 where nothing was placed."""
    entry = [-1] * m
    if not any(w > 0 for w in weights):
        return entry
    n_backends = len(pairs)
    nxt = [0] * n_backends
    credit = [0] * n_backends
    max_weight = max(weights)
    n = 0
    while True:
        for i in range(n_backends):
            credit[i] += weights[i]
            if credit[i] < max_weight:
                continue
            credit[i] -= max_weight
            offset, skip = pairs[i]
            c = permutation(offset, skip, m, nxt[i])
            while entry[c] >= 0:
                nxt[i] += 1
                c = permutation(offset, skip, m, nxt[i])
            entry[c] = i
            nxt[i] += 1
            n += 1
            if n == m:
                return entry


def build_table(backends, m):
    """backends: list of (identity bytes, weight). Returns entries as indices into `backends`."""
    if not is_prime(m):
        raise ValueError("table size %d is not prime" % m)
    order = sorted(range(len(backends)), key=lambda i: backends[i][0])
    identities = [backends[i][0] for i in order]
    if len(set(identities)) != len(identities):
        raise ValueError("duplicate identity")
    pairs = [offset_skip(backends[i][0], m) for i in order]
    weights = [backends[i][1] for i in order]
    entry = populate_pairs(pairs, weights, m)
    return [order[e] if e >= 0 else -1 for e in entry]


def slot_for_hash(h, m):
    return ((h >> 32) * m) >> 32


# --- Identities and flow keys ----------------------------------------------------------------

def identity_for_address(address, port):
    """Address bytes then port, network byte order (6 bytes for IPv4, 18 for IPv6)."""
    return ipaddress.ip_address(address).packed + port.to_bytes(2, "big")


def flow_bytes(src, dst, sport, dport, proto):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    assert s.version == d.version
    return s.packed + d.packed + sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes([proto])


def flow_hash(seed16, src, dst, sport, dport, proto):
    return siphash(seed16, flow_bytes(src, dst, sport, dport, proto), 1, 3)


# --- Checks ----------------------------------------------------------------------------------

# SipHash-2-4, key 00..0f, message 00..(n-1): the reference implementation's vectors for these n.
SIPHASH24_VECTORS = {0: 0x726FDB47DD0E0E31, 1: 0x74F839C593DC67FD, 7: 0xAB0200F58B01D137,
                     8: 0x93F5F5799A932462, 15: 0xA129CA6149BE45E5, 16: 0x3F2ACC7F57C29BDB,
                     63: 0x958A324CEB064572}

CPYTHON_MESSAGES = [b"a", b"abc", bytes(range(7)), bytes(range(8)), bytes(range(13)),
                    bytes(range(37)), b"Sluice Maglev reference"]


def cpython_siphash13_key0(messages):
    """CPython >= 3.11 hashes bytes with SipHash-1-3; PYTHONHASHSEED=0 makes its key all zeros.
    Returns the values as unsigned 64-bit ints, or None when this interpreter differs."""
    if sys.hash_info.algorithm != "siphash13" or sys.hash_info.hash_bits != 64:
        return None
    code = "import sys; print(' '.join(str(hash(bytes.fromhex(a))) for a in sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code] + [m.hex() for m in messages],
                         env=dict(os.environ, PYTHONHASHSEED="0"), capture_output=True, text=True, check=True)
    return [int(x) & MASK64 for x in out.stdout.split()]


def self_test(out=sys.stdout):
    key = bytes(range(16))
    for n, want in SIPHASH24_VECTORS.items():
        got = siphash(key, bytes(range(n)), 2, 4)
        assert got == want, "SipHash-2-4 vector %d: %x != %x" % (n, got, want)
    cpy = cpython_siphash13_key0(CPYTHON_MESSAGES)
    if cpy is None:
        print("note: this Python does not hash with 64-bit siphash13; SipHash-1-3 cross-check skipped", file=out)
    else:
        for msg, want in zip(CPYTHON_MESSAGES, cpy):
            got = siphash(bytes(16), msg, 1, 3)
            # CPython maps a hash of -1 to -2; none of these messages hits that.
            assert got == want, "SipHash-1-3 vs CPython for %s: %x != %x" % (msg.hex(), got, want)
    paper = paper_example()
    assert paper["before"] == ["B1", "B0", "B1", "B0", "B2", "B2", "B0"], paper
    assert paper["after"] == ["B0", "B0", "B0", "B0", "B2", "B2", "B2"], paper
    print("self-test passed: SipHash-2-4 vectors, SipHash-1-3 against CPython, paper Table 1", file=out)


def paper_example():
    """Table 1 of the paper: M = 7, (offset, skip) = (3,4), (0,2), (3,1) for B0, B1, B2;
    then B1 removed. (The paper numbers rows and backends from 1; here from 0.)"""
    pairs = [(3, 4), (0, 2), (3, 1)]
    before = populate_pairs(pairs, [1, 1, 1], 7)
    after = populate_pairs([pairs[0], pairs[2]], [1, 1], 7)
    names_after = ["B0", "B2"]
    return {"permutations": [[permutation(o, s, 7, j) for j in range(7)] for o, s in pairs],
            "before": ["B%d" % e for e in before], "after": [names_after[e] for e in after]}


# --- Fixture ---------------------------------------------------------------------------------

def _backend(label, identity, weight):
    return {"label": label, "identity": identity.hex(), "weight": weight}


def fixture_cases():
    names3 = [_backend(n, n.encode(), 1) for n in ["gamma", "alpha", "beta"]]
    weighted3 = [_backend("a", b"a", 1), _backend("b", b"b", 2), _backend("c", b"c", 3)]
    ten = [_backend("198.51.100.%d:80" % i, identity_for_address("198.51.100.%d" % i, 80), 1)
           for i in range(10, 0, -1)]
    mixed = []
    for i, w in zip(range(1, 7), [1, 2, 3, 0, 5, 1]):
        if i % 2:
            mixed.append(_backend("192.0.2.%d:443" % i, identity_for_address("192.0.2.%d" % i, 443), w))
        else:
            mixed.append(_backend("[2001:db8::%x]:443" % i, identity_for_address("2001:db8::%x" % i, 443), w))
    big = []
    for i, w in zip(range(1, 11), [1, 2, 3, 4, 1, 2, 3, 4, 0, 2]):
        if i <= 6:
            big.append(_backend("203.0.113.%d:8080" % i, identity_for_address("203.0.113.%d" % i, 8080), w))
        else:
            big.append(_backend("[2001:db8:1::%x]:8080" % i, identity_for_address("2001:db8:1::%x" % i, 8080), w))
    return [
        ("m13-three-names", 13, names3),
        ("m13-weights-1-2-3", 13, weighted3),
        ("m13-empty", 13, []),
        ("m13-all-draining", 13, [_backend("x", b"x", 0), _backend("y", b"y", 0)]),
        ("m13-single", 13, [_backend("solo", b"solo", 7)]),
        ("m251-ipv4-10", 251, ten),
        ("m251-ipv4-10-without-.5", 251, [b for b in ten if b["label"] != "198.51.100.5:80"]),
        ("m251-mixed-weights-one-draining", 251, mixed),
        ("m65537-mixed-10-weighted", 65537, big),
        ("m65537-mixed-10-weighted-without-203.0.113.3", 65537,
         [b for b in big if b["label"] != "203.0.113.3:8080"]),
    ]


def fixture():
    tables = []
    for name, m, backends in fixture_cases():
        pairs = [(bytes.fromhex(b["identity"]), b["weight"]) for b in backends]
        entries = build_table(pairs, m)
        for b in backends:
            b["offset"], b["skip"] = offset_skip(bytes.fromhex(b["identity"]), m)
        tables.append({"name": name, "size": m, "backends": backends, "entries": entries})
    key = bytes(range(16))
    siphash_vectors = []
    for n in list(range(0, 17)) + [37, 63]:
        msg = bytes(range(n))
        siphash_vectors.append({"c": 1, "d": 3, "key": key.hex(), "message": msg.hex(),
                                "hash": "%016x" % siphash(key, msg, 1, 3)})
    for n in [0, 8, 15, 63]:
        msg = bytes(range(n))
        siphash_vectors.append({"c": 2, "d": 4, "key": key.hex(), "message": msg.hex(),
                                "hash": "%016x" % siphash(key, msg, 2, 4)})
    cpython = []
    cpy = cpython_siphash13_key0(CPYTHON_MESSAGES)
    if cpy is not None:
        cpython = [{"message": m.hex(), "hash": "%016x" % h} for m, h in zip(CPYTHON_MESSAGES, cpy)]
    flows = []
    for seed in [bytes(range(16)), bytes.fromhex("5a6c7569636520646f632073656564ff")]:
        for src, dst, sport, dport, proto in [
            ("192.0.2.1", "198.51.100.10", 49152, 80, 6),
            ("192.0.2.1", "198.51.100.10", 49153, 80, 6),
            ("192.0.2.2", "198.51.100.10", 49152, 80, 17),
            ("203.0.113.77", "198.51.100.10", 0, 0, 1),
            ("192.0.2.200", "198.51.100.11", 5000, 38412, 132),
            ("2001:db8::1", "2001:db8:ffff::10", 49152, 443, 6),
            ("2001:db8::2", "2001:db8:ffff::10", 40000, 53, 17),
            ("2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8::10", 0, 0, 58),
        ]:
            h = flow_hash(seed, src, dst, sport, dport, proto)
            flows.append({"seed": seed.hex(), "source": src, "destination": dst, "sourcePort": sport,
                          "destinationPort": dport, "proto": proto, "hash": "%016x" % h,
                          "slot65537": slot_for_hash(h, 65537)})
    return {
        "generator": "tools/maglev/reference.py fixture",
        "definition": "h1/h2 = SipHash-2-4 keys 'Sluice Maglev h1'/'Sluice Maglev h2'; offset = h1 mod M; "
                      "skip = h2 mod (M-1) + 1; fill order = identity bytes ascending; weighted turns = Katran "
                      "MaglevHashV2 credits; entries index the backends as listed, -1 = no backend; flow hash = "
                      "SipHash-1-3(seed, src|dst|sport|dport|proto); slot = (hash >> 32) * M >> 32",
        "paperTable1": paper_example(),
        "siphash": siphash_vectors,
        "cpythonSiphash13Key0": cpython,
        "flows": flows,
        "tables": tables,
    }


def dump(obj, indent=0):
    """JSON with one key per line, but flat objects and lists of numbers on one line (compact tables)."""
    pad = "  " * indent
    if isinstance(obj, dict) and all(isinstance(v, (int, str)) for v in obj.values()):
        return json.dumps(obj, separators=(", ", ": "))
    if isinstance(obj, dict):
        items = ['%s  %s: %s' % (pad, json.dumps(k), dump(v, indent + 1)) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and not all(isinstance(x, (int, str)) for x in obj):
        return "[\n" + ",\n".join(pad + "  " + dump(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj, separators=(",", ":"))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    command = argv[1]
    if command == "self-test":
        self_test()
    elif command == "paper-example":
        p = paper_example()
        for j in range(7):
            print("%d  %s  %s  %s   %-3s %-3s" % (j, *[perm[j] for perm in p["permutations"]],
                                                p["before"][j], p["after"][j]))
    elif command == "fixture":
        self_test(out=sys.stderr)
        sys.stdout.write(dump(fixture()) + "\n")
    elif command == "table":
        args = argv[2:]
        m = 65537
        if len(args) >= 2 and args[0] == "--size":
            m, args = int(args[1]), args[2:]
        backends = []
        for a in args:
            name, _, weight = a.partition(":")
            backends.append((name.encode(), int(weight) if weight else 1))
        entries = build_table(backends, m)
        for i, (name, w) in enumerate(backends):
            o, s = offset_skip(name, m)
            print("# %d %s weight=%d offset=%d skip=%d entries=%d" % (i, name.decode(), w, o, s, entries.count(i)))
        print(" ".join(str(e) for e in entries))
    else:
        print("unknown command %r" % command, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
