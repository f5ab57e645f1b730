#!/usr/bin/env python3
"""Helpers for Purple's benchmarks (bench/*.sh): bundle edits, generated
network plans and seccomp profiles, step timing, statistics, tables, plots.
Standard library only, except `plot`, which needs matplotlib.

    benchlib.py plan N [SEED]                  network plan JSON, N deny rules (random /32 and /24)
    benchlib.py config CONFIG [--plan FILE] [--record-allowed] [--trace-exec] [--trace-syscalls] [--seccomp] [--netns PATH] [--args A ...]
    benchlib.py steps OUT.json N LABEL RUNTIME ROOT BUNDLE [LABEL RUNTIME ROOT BUNDLE ...]
    benchlib.py scale OUT.json N LABEL RUNTIME ROOT BUNDLE PREFIX
    benchlib.py hyperfine-table OUT.md BASELINE_NAME FILE.json ...
    benchlib.py steps-table OUT.md BASELINE_LABEL FILE.json
    benchlib.py plot OUT.png RESULTS_DIR
    benchlib.py phases N RUNTIME ROOT BUNDLE   where `purple-oci run` spends its time (needs strace), median ms
    benchlib.py supervisor-memory ROOT ID      the supervisor's RSS by mapping kind, and PSS (KiB)
"""

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

# Syscalls a busybox agent has no business calling; the rest is allowed. 60
# names, so libseccomp builds a filter of realistic size (Docker's default
# profile is the inverse: an allow list of ~350).
SECCOMP_DENY = """
acct add_key bpf clock_adjtime clock_settime create_module delete_module
fanotify_init finit_module get_kernel_syms get_mempolicy init_module ioperm iopl
kcmp kexec_file_load kexec_load keyctl lookup_dcookie mbind mount move_mount
move_pages name_to_handle_at nfsservctl open_by_handle_at open_tree
perf_event_open personality pivot_root process_vm_readv process_vm_writev
ptrace query_module quotactl reboot request_key set_mempolicy setns settimeofday
stime swapoff swapon sysfs _sysctl umount umount2 unshare uselib userfaultfd
ustat vm86 vm86old fsopen fsconfig fsmount fspick syslog vhangup
""".split()


def plan(n, seed=42):
    """Deny-list plan with n distinct rules, none covering 10.0.0.0/8 (the
    benchmark namespaces use 10.201.0.0/24)."""
    rng = random.Random(seed)
    seen, rules = set(), []
    while len(rules) < n:
        a = rng.randrange(11, 224)
        if a in (127, 169, 172, 192, 100):
            continue
        b, c, d = rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)
        cidr = f"{a}.{b}.{c}.{d}/32" if rng.random() < 0.5 else f"{a}.{b}.{c}.0/24"
        if cidr in seen:
            continue
        seen.add(cidr)
        rules.append({"cidr": cidr, "action": "deny"})
    return {"mode": "deny-list", "rules": rules}


def seccomp():
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": SECCOMP_DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


def config(argv):
    path, rest = argv[0], argv[1:]
    with open(path) as f:
        cfg = json.load(f)
    i = 0
    while i < len(rest):
        opt = rest[i]
        if opt == "--plan":
            with open(rest[i + 1]) as f:
                cfg.setdefault("annotations", {})["io.purple.network"] = json.dumps(
                    json.load(f), separators=(",", ":"))
            i += 2
        elif opt == "--record-allowed":
            cfg.setdefault("annotations", {})["io.purple.audit"] = json.dumps(
                {"record_allowed": True}, separators=(",", ":"))
            i += 1
        elif opt == "--trace-exec":
            cfg.setdefault("annotations", {})["io.purple.audit"] = json.dumps(
                {"trace_exec": True}, separators=(",", ":"))
            i += 1
        elif opt == "--trace-syscalls":
            cfg.setdefault("annotations", {})["io.purple.audit"] = json.dumps(
                {"trace_syscalls": True}, separators=(",", ":"))
            i += 1
        elif opt == "--seccomp":
            cfg["linux"]["seccomp"] = seccomp()
            i += 1
        elif opt == "--netns":
            for ns in cfg["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = rest[i + 1]
            i += 2
        elif opt == "--args":
            cfg["process"]["args"] = rest[i + 1:]
            i = len(rest)
        else:
            sys.exit(f"benchlib config: unknown option {opt}")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def sh(cmd):
    # stderr to a file, never a pipe: the container's init inherits it and
    # would hold a pipe open until `start`, so reading it to EOF would hang.
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if r.returncode != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip()
            raise SystemExit(f"benchlib: {' '.join(cmd)}: exit {r.returncode}: {msg}")


def timed(cmd):
    t = time.perf_counter()
    sh(cmd)
    return (time.perf_counter() - t) * 1000.0


def wait_stopped(runtime, root, cid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run([runtime, "--root", root, "state", cid], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode == 0 and json.loads(r.stdout).get("status") == "stopped":
            return
        time.sleep(0.002)
    raise SystemExit(f"benchlib: {cid} did not stop within {timeout}s")


def summary(xs):
    xs = sorted(xs)
    return {
        "n": len(xs),
        "mean": statistics.mean(xs),
        "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "median": statistics.median(xs),
        "min": xs[0],
        "max": xs[-1],
        "p99": xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))],
    }


def steps(argv):
    """create, start, (wait until stopped, untimed), delete: each timed, N times,
    the runtimes interleaved so that drift and noise hit all of them alike."""
    out, n, rest = argv[0], int(argv[1]), argv[2:]
    runtimes = [rest[i:i + 4] for i in range(0, len(rest), 4)]
    times = {label: {"create": [], "start": [], "delete": [], "total": []} for label, *_ in runtimes}
    for it in range(n):
        for label, runtime, root, bundle in runtimes:
            cid = f"{os.environ.get('BENCH_TAG', 'st')}-{re.sub('[^A-Za-z0-9]', '-', label)}-{it}"
            c = timed([runtime, "--root", root, "create", "--bundle", bundle, cid])
            s = timed([runtime, "--root", root, "start", cid])
            wait_stopped(runtime, root, cid)
            d = timed([runtime, "--root", root, "delete", cid])
            for k, v in (("create", c), ("start", s), ("delete", d), ("total", c + s + d)):
                times[label][k].append(v)
    res = {label: {k: summary(v) for k, v in t.items()} for label, t in times.items()}
    with open(out, "w") as f:
        json.dump({"unit": "ms", "runs": n, "results": res}, f, indent=1)


def scale(argv):
    """Create and start N sleeping containers; record per-container latency and
    the memory the machine lost (MemAvailable)."""
    out, n, label, runtime, root, bundle, prefix = argv[0], int(argv[1]), *argv[2:7]

    def avail():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    subprocess.run(["sync"])
    before = avail()
    creates, starts = [], []
    t0 = time.perf_counter()
    for i in range(n):
        cid = f"{prefix}{i}"
        creates.append(timed([runtime, "--root", root, "create", "--bundle", bundle, cid]))
        starts.append(timed([runtime, "--root", root, "start", cid]))
    total = time.perf_counter() - t0
    time.sleep(1)
    after = avail()
    res = {
        "label": label, "n": n, "total_s": total,
        "create_ms": summary(creates), "start_ms": summary(starts),
        "mem_available_drop_bytes": before - after,
        "mem_per_container_bytes": (before - after) / n,
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def fmt(m, sd=None):
    return f"{m:.1f} ± {sd:.1f}" if sd is not None else f"{m:.1f}"


def hyperfine_table(argv):
    """One markdown table from hyperfine --export-json files; ratio against the
    command named BASELINE_NAME (found in any of the files)."""
    out, base_name, files = argv[0], argv[1], argv[2:]
    rows = []
    for path in files:
        with open(path) as f:
            rows += json.load(f)["results"]
    base = next(r for r in rows if r["command"] == base_name)
    lines = ["| runtime | mean ± sd (ms) | median (ms) | min…max (ms) | user (ms) | system (ms) | ratio vs runc |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = [t * 1000 for t in r["times"]]
        lines.append(
            f"| {r['command']} | {fmt(r['mean'] * 1000, r['stddev'] * 1000 if r['stddev'] else 0)} | "
            f"{r['median'] * 1000:.1f} | {min(ms):.1f}…{max(ms):.1f} | {r['user'] * 1000:.1f} | "
            f"{r['system'] * 1000:.1f} | {r['mean'] / base['mean']:.2f}× |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def steps_table(argv):
    out, base, path = argv[0], argv[1], argv[2]
    with open(path) as f:
        res = json.load(f)["results"]
    lines = ["| runtime | create (ms) | start (ms) | delete (ms) | sum (ms) | ratio vs runc (sum) |",
             "|---|---|---|---|---|---|"]
    for label, r in res.items():
        cells = [fmt(r[k]["mean"], r[k]["sd"]) for k in ("create", "start", "delete", "total")]
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {r['total']['mean'] / res[base]['total']['mean']:.2f}× |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(argv):
    out, results = argv[0], argv[1]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    with open(os.path.join(results, "lifecycle-run.json")) as f:
        run = json.load(f)["results"]
    names = [r["command"] for r in run]
    axes[0].barh(names, [r["mean"] * 1000 for r in run],
                 xerr=[(r["stddev"] or 0) * 1000 for r in run], color="#7b4fa0", capsize=3)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("ms (mean ± sd)")
    axes[0].set_title("run busybox `true` to exit and delete")
    with open(os.path.join(results, "lifecycle-steps.json")) as f:
        st = json.load(f)["results"]
    labels = list(st)
    left = [0.0] * len(labels)
    for step, color in (("create", "#7b4fa0"), ("start", "#c9a3e6"), ("delete", "#555555")):
        vals = [st[l][step]["mean"] for l in labels]
        axes[1].barh(labels, vals, left=left, color=color, label=step)
        left = [a + b for a, b in zip(left, vals)]
    axes[1].invert_yaxis()
    axes[1].set_xlabel("ms (mean per step)")
    axes[1].set_title("create / start / delete, separately")
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def phases(argv):
    """Times the phases of `RUNTIME --root ROOT run -b BUNDLE ID` (a purple-oci
    and a bundle whose program exits at once) N times and prints the median
    of each as a Markdown table. The phases are cut at system calls that strace
    records (it stops the process only at those, through a seccomp filter, so
    the run is slowed much less than by tracing every call): the sealed
    re-exec, libcontainer's first fork and its wait for it, the last BPF link,
    the supervisor's fork, the program's execve, init's reaping, the exit."""
    n, runtime, root, bundle = int(argv[0]), argv[1], argv[2], argv[3]
    traced = "trace=execve,memfd_create,clone3,clone,wait4,bpf,exit_group"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "strace")
        for i in range(n):
            sh(["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "signal=none", "-e", traced,
                "-o", out, runtime, "--root", root, "run", "-b", bundle,
                f"{os.environ.get('BENCH_TAG', 'pb')}-ph{i}"])
            with open(out) as f:
                lines = f.read().splitlines()
            main = lines[0].split()[0]
            at = lambda l: float(l.split()[1])
            mine = [l for l in lines if l.startswith(main + " ")]
            first = lambda ls, s: at(next(l for l in ls if s in l))
            waits = [l for l in mine if "wait4" in l and "WEXITSTATUS" in l]
            marks = [
                ("seal: memfd copy of the binary, re-exec", first(lines, 'execve("/proc/self/fd')),
                ("start-up, bundle, policy", first(mine, "clone3({flags=0,")),
                ("libcontainer build()", at(waits[0])),
                ("after build(): cgroup2 join, BPF load, verify, attach, pin",
                 at([l for l in lines if "BPF_LINK_CREATE" in l][-1])),
                ("supervisor fork, audit record, state", first(mine, "clone(")),
                ("start, until the program's execve", first(lines, 'execve("/bin/')),
                ("program exits, supervisor writes `exited`, init reaped", at(waits[-1])),
                ("delete", at(lines[-1])),
            ]
            prev, row = at(lines[0]), {}
            for label, t in marks:
                row[label] = (t - prev) * 1000
                prev = t
            row["total"] = (prev - at(lines[0])) * 1000
            rows.append(row)
    print("| phase | median (ms) |")
    print("|---|---|")
    for label in rows[0]:
        print(f"| {label} | {statistics.median(r[label] for r in rows):.1f} |")


def supervisor_memory(argv):
    """Prints `rss binary ringbuf libs anon pss` (KiB) of the supervisor of
    container ID under ROOT: its RSS split into the runtime binary's pages,
    the event ring buffer (a BPF map, mapped twice), shared libraries and
    anonymous memory, then its PSS. Nothing if there is no supervisor."""
    root, cid = argv
    try:
        with open(os.path.join(root, ".purple", cid, "record.json")) as f:
            pid = json.load(f).get("supervisor_pid")
        with open(f"/proc/{pid}/smaps") as f:
            lines = f.read().splitlines()
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
    except (OSError, ValueError, StopIteration):
        return
    kinds = {"binary": 0, "ringbuf": 0, "libs": 0, "anon": 0}
    name = ""
    for line in lines:
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:":
            if "purple" in name or "pentacle" in name:
                kind = "binary"
            elif name == "anon_inode:bpf-map":
                kind = "ringbuf"
            elif name.startswith("/"):
                kind = "libs"
            else:
                kind = "anon"
            kinds[kind] += int(fields[1])
    print(sum(kinds.values()), *kinds.values(), pss)


def main():
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == "plan":
        print(json.dumps(plan(int(argv[0]), int(argv[1]) if len(argv) > 1 else 42)))
    elif cmd == "config":
        config(argv)
    elif cmd == "steps":
        steps(argv)
    elif cmd == "scale":
        scale(argv)
    elif cmd == "hyperfine-table":
        hyperfine_table(argv)
    elif cmd == "steps-table":
        steps_table(argv)
    elif cmd == "plot":
        plot(argv)
    elif cmd == "phases":
        phases(argv)
    elif cmd == "supervisor-memory":
        supervisor_memory(argv)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
