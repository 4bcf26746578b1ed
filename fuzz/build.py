#!/usr/bin/env python3
"""Builds the libFuzzer binary for fuzz/FrameFuzzer.swift, module by module, without SwiftPM.

The modules to build are read from the manifest (`swift package dump-package`, which evaluates
Package.swift without resolving or fetching any dependency): the transitive closure of the
local target dependencies of SluiceCore and SluiceDataPlane. Each Swift target is compiled
with swiftc (-wmo, -O, -sanitize=fuzzer,address) into one object and a .swiftmodule, each C
target with clang (-fsanitize=fuzzer-no-link,address) plus a module map, in dependency order,
independent ones in parallel. The harness is then compiled as its own module against them and
linked with libFuzzer's main. -O, never -Ounchecked: preconditions are part of the check.

Target swiftSettings / cSettings (unsafeFlags such as -enforce-exclusivity=unchecked) are not
applied: the fuzz build keeps every runtime check on.

usage: build.py ROOT WORKDIR OUTPUT   (env SWIFTC: the compiler; default swiftc on PATH)
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time

ROOT_TARGETS = ["SluiceCore", "SluiceDataPlane"]
SWIFT_FLAGS = ["-O", "-g", "-swift-version", "6", "-parse-as-library", "-sanitize=fuzzer,address"]


def die(message):
    print("fuzz/build.py: " + message, file=sys.stderr)
    sys.exit(2)


def run(cmd, log):
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log) as f:
            lines = [l for l in f if "Cannot export local symbol" not in l]
        sys.stderr.write("".join(lines[-60:]))
        die("failed: see " + log)


def main():
    if len(sys.argv) != 4:
        die("usage: build.py ROOT WORKDIR OUTPUT")
    root, work, output = (os.path.abspath(a) for a in sys.argv[1:])
    swiftc = shutil.which(os.environ.get("SWIFTC", "swiftc")) or die("swiftc not found")
    toolchain_bin = os.path.dirname(os.path.realpath(swiftc))
    clang = os.path.join(toolchain_bin, "clang")
    if not os.path.exists(clang):
        clang = shutil.which("clang") or "clang"
    swift = os.path.join(toolchain_bin, "swift")
    if not os.path.exists(swift):
        swift = shutil.which("swift") or die("swift not found")

    dump = subprocess.run([swift, "package", "--package-path", root, "dump-package"],
                          capture_output=True, text=True)
    if dump.returncode != 0:
        sys.stderr.write(dump.stderr[-4000:])
        die("swift package dump-package failed")
    targets = {t["name"]: t for t in json.loads(dump.stdout)["targets"]}

    def local_deps(t):
        deps = []
        for d in t.get("dependencies", []):
            for kind in ("byName", "target"):
                if kind in d and d[kind] and d[kind][0] in targets:
                    deps.append(d[kind][0])
            if "product" in d:
                die("%s depends on a product of another package (%s); this build cannot link it"
                    % (t["name"], d["product"][0]))
        return deps

    closure, stack = [], list(ROOT_TARGETS)
    while stack:
        name = stack.pop()
        if name not in targets:
            die("no target %s in Package.swift" % name)
        if name not in closure:
            closure.append(name)
            stack.extend(local_deps(targets[name]))

    def target_files(t, extensions):
        base = os.path.join(root, t.get("path") or os.path.join("Sources", t["name"]))
        excluded = [os.path.normpath(os.path.join(base, e)) for e in t.get("exclude") or []]
        roots = [os.path.join(base, s) for s in t["sources"]] if t.get("sources") else [base]
        files = set()
        for r in roots:
            candidates = [r] if os.path.isfile(r) else \
                [os.path.join(d, f) for d, _, fs in os.walk(r) for f in fs]
            for p in map(os.path.normpath, candidates):
                if p.endswith(extensions) and not any(p == e or p.startswith(e + os.sep) for e in excluded):
                    files.add(p)
        return base, sorted(files)

    mods, objs, cmods, logs = (os.path.join(work, d) for d in ("modules", "objects", "cmodules", "logs"))
    for d in (mods, objs, cmods, logs):
        os.makedirs(d, exist_ok=True)

    c_include_flags = {}   # C target -> swiftc flags that make it importable

    def build(name):
        t = targets[name]
        base, swift_files = target_files(t, (".swift",))
        start = time.time()
        if swift_files:
            cmd = [swiftc] + SWIFT_FLAGS + ["-wmo", "-module-name", name, "-I", mods,
                                            "-emit-module", "-emit-module-path",
                                            os.path.join(mods, name + ".swiftmodule")]
            for dep in all_deps(name):
                cmd += c_include_flags.get(dep, [])
            cmd += ["-c"] + swift_files + ["-o", os.path.join(objs, name + ".o")]
            run(cmd, os.path.join(logs, name + ".log"))
            kind = "%d Swift files" % len(swift_files)
        else:
            _, c_files = target_files(t, (".c",))
            include = os.path.join(base, t.get("publicHeadersPath") or "include")
            for c in c_files:
                out = os.path.join(objs, "%s-%s.o" % (name, os.path.basename(c)))
                run([clang, "-O2", "-g", "-fsanitize=fuzzer-no-link,address", "-I", include,
                     "-c", c, "-o", out], os.path.join(logs, "%s-%s.log" % (name, os.path.basename(c))))
            if os.path.exists(os.path.join(include, "module.modulemap")):
                c_include_flags[name] = ["-I", include]
            else:   # what SwiftPM generates: an umbrella header if there is one, else the directory
                umbrella = os.path.join(include, name + ".h")
                body = ('umbrella header "%s"' % umbrella) if os.path.exists(umbrella) \
                    else ('umbrella "%s"' % include)
                mdir = os.path.join(cmods, name)
                os.makedirs(mdir, exist_ok=True)
                with open(os.path.join(mdir, "module.modulemap"), "w") as f:
                    f.write("module %s {\n    %s\n    export *\n}\n" % (name, body))
                c_include_flags[name] = ["-I", mdir, "-Xcc", "-I" + include]
            kind = "%d C files" % len(c_files)
        return name, kind, time.time() - start

    def all_deps(name):
        seen, stack = [], list(local_deps(targets[name]))
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.append(d)
                stack.extend(local_deps(targets[d]))
        return seen

    # Dependency order, independent targets in parallel.
    done, pending = set(), set(closure)
    workers = max(1, min(len(closure), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        running = {}
        while pending or running:
            for name in sorted(pending):
                if all(d in done for d in local_deps(targets[name])):
                    running[pool.submit(build, name)] = name
            pending -= set(running.values())
            if not running:
                die("dependency cycle among " + ", ".join(sorted(pending)))
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for f in finished:
                name, kind, seconds = f.result()
                print("fuzz:   %-20s %-16s %5.1fs" % (name, kind, seconds))
                done.add(running.pop(f))

    start = time.time()
    cmd = [swiftc] + SWIFT_FLAGS + ["-module-name", "FrameFuzzer", "-I", mods]
    for name in closure:
        cmd += c_include_flags.get(name, [])
    cmd += [os.path.join(root, "fuzz", "FrameFuzzer.swift")]
    cmd += sorted(os.path.join(objs, o) for o in os.listdir(objs) if o.endswith(".o"))
    cmd += ["-o", output]
    run(cmd, os.path.join(logs, "FrameFuzzer.log"))
    print("fuzz:   %-20s %-16s %5.1fs" % ("FrameFuzzer", "harness + link", time.time() - start))


if __name__ == "__main__":
    main()
