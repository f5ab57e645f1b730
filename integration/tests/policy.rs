//! Policies end to end: the shipped profiles validate and run the host's
//! python3, bad policies are refused with every error positioned, the README
//! example holds as an attack (in a network namespace of the test's own),
//! sandbox root is a stranger on the host, each limit takes effect,
//! `purple run` passes exit codes and signals, cleans up, and
//! `purple translate` writes bundles purple-oci runs as they are.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use purple_integration::netns::TestNet;
use purple_integration::*;

const PROFILES: &[&str] = &[
    "ai-dev-safe",
    "cicd-worker",
    "code-analyst",
    "data-retriever",
    "development",
    "honeypot",
    "production-secure",
    "secure-agent",
];

fn purple_in(dir: &Path, oci: &Oci, args: &[&str]) -> Output {
    Command::new(purple())
        .current_dir(dir)
        .arg("--root")
        .arg(oci.root.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Nothing `purple run` made survives it: container state, cgroups,
/// processes, BPF pins, its private bundle.
fn assert_run_left_nothing(oci: &Oci, id: &str) {
    assert_no_leftovers(oci, id);
    assert!(
        !oci.root.path().join("bundles").join(id).exists(),
        "bundle of {id} left behind"
    );
    assert!(
        !Path::new("/sys/fs/bpf/purple").join(id).exists(),
        "BPF pins of {id} left behind"
    );
}

#[test]
fn shipped_profiles_validate_and_run_host_python() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let files: Vec<String> = PROFILES
        .iter()
        .map(|p| {
            repo()
                .join(format!("policy-translator/profiles/{p}.yaml"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["policy", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = purple_in(work.path(), &oci, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.matches(": valid").count(),
        PROFILES.len(),
        "{stdout}"
    );
    assert!(
        !stderr.contains("warning"),
        "shipped profiles warn: {stderr}"
    );

    let listed = text(&purple_in(work.path(), &oci, &["profiles"])).0;
    for p in PROFILES {
        assert!(
            listed.lines().any(|l| l.starts_with(p)),
            "{p} not listed: {listed}"
        );
        let id = unique_id("prof");
        let out = purple_in(
            work.path(),
            &oci,
            &[
                "run",
                "--profile",
                p,
                "--id",
                &id,
                "--",
                "python3",
                "-c",
                "import os; print('ran', os.getcwd())",
            ],
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{p}: {stdout}{stderr}");
        assert_eq!(stdout, "ran /work\n", "{p}: {stderr}");
        assert!(
            stderr.contains("purple: exit 0"),
            "{p}: no summary: {stderr}"
        );
        assert_run_left_nothing(&oci, &id);
    }
}

#[test]
fn invalid_policy_reports_every_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // A symlink to a sensitive file must be judged by where it leads.
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("innocent")).unwrap();
    let policy = format!(
        "name: bad\n\
         descripton: typo\n\
         network:\n  blocked_ips_v4: [\"1.1.1.1\", \"300.1.1.1\"]\n\
         resources:\n  memory_limit_bytes: \"99999999999P\"\n  cpu_shares: 0\n\
         filesystem:\n  immutable_paths:\n    - {{ host_path: {}, sandbox_path: /data }}\n\
         syscalls:\n  advanced_rules:\n    - syscall: socket\n      action: deny\n      conditions: [{{arg: 6, op: masked_neq, value: 1}}]\n\
         user:\n  uid: 70000\n  namespace: {{ host_id: 0 }}\n",
        dir.path().join("innocent").display()
    );
    let file = dir.path().join("bad.yaml");
    fs::write(&file, policy).unwrap();
    let oci = Oci::new();
    let out = purple_in(dir.path(), &oci, &["policy", "validate", "bad.yaml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "bad.yaml:2:1: error: descripton: unknown field `descripton`",
        "did you mean `description`?",
        "bad.yaml:4:3: warning: network.blocked_ips_v4: `blocked_ips_v4` is a deprecated name",
        "rename it to `blocked_ips`",
        "bad.yaml:4:31: error: network.blocked_ips[1]: invalid CIDR \"300.1.1.1\"",
        "bad.yaml:6:23: error: resources.memory_limit_bytes:",
        "too large",
        "bad.yaml:7:15: error: resources.cpu_shares:",
        "resolves to /etc/shadow",
        "arg: 6 is out of range",
        "masked_neq needs a mask",
        "bad.yaml:17:8: error: user.uid: id 70000 is outside the sandbox's user namespace (ids 0 to 65535)",
        "bad.yaml:18:25: error: user.namespace.host_id: host id 0 makes root in the sandbox root on the host",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The same policy refused by `run` and `translate`, leaving nothing behind.
    let out = purple_in(
        dir.path(),
        &oci,
        &[
            "run",
            "--profile",
            "bad.yaml",
            "--id",
            "never",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("errors in policy"),
        "{}",
        text(&out).1
    );
    assert_run_left_nothing(&oci, "never");
    let out = purple_in(
        dir.path(),
        &oci,
        &["translate", "bad.yaml", "-o", "b", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !dir.path().join("b").exists(),
        "translate wrote a bundle for an invalid policy"
    );

    fs::write(&file, "name: [unclosed\n").unwrap();
    let out = purple_in(dir.path(), &oci, &["policy", "validate", "bad.yaml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.yaml:2:1: error: (top level): not valid YAML"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_bad_arguments_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--profile", "no-such-profile", "--", "true"],
            "no profile named \"no-such-profile\"",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "--id",
                "../x",
                "--",
                "true",
            ],
            "invalid container ID \"../x\"",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "-v",
                "/etc:/etc:ro",
                "--",
                "true",
            ],
            "sensitive host path",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "-v",
                "/tmp:relative",
                "--",
                "true",
            ],
            "must be an absolute path",
        ),
        (
            &["run", "--profile", "secure-agent", "--", "no-such-program"],
            "no-such-program: command not found in the sandbox",
        ),
    ];
    for (args, want) in cases {
        let out = purple_in(dir.path(), &oci, args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("purple:")).count(),
            1,
            "{stderr}"
        );
    }
    let bundles = oci.root.path().join("bundles");
    let left = fs::read_dir(&bundles).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "bundles left in {}", bundles.display());
}

/// The README example as an attack: the agent, run with `purple run
/// --profile secure-agent -- python3 agent.py` inside a client network
/// namespace whose only link leads to the test host, tries the blocked
/// destinations, writes where it may and where it may not.
#[test]
fn readme_example_secure_agent_holds() {
    let net = TestNet::new();
    let work = tempfile::tempdir().unwrap();
    fs::write(
        work.path().join("agent.py"),
        r#"
import errno, os, socket, time
def tcp(addr):
    s = socket.socket(socket.AF_INET)
    s.settimeout(5)
    t = time.time()
    try:
        s.connect((addr, 80))
        r = "connected"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    return r, time.time() - t
for name, addr in [("blocked", "1.1.1.1"), ("metadata", "169.254.169.254"), ("allowed", "10.99.0.1")]:
    r, took = tcp(addr)
    print(name, r, "fast" if took < 0.5 else "slow")
with open("/output/result.txt", "w") as f:
    f.write("written by the agent\n")
try:
    open("/usr/bin/planted", "w")
    print("usr-bin writable")
except OSError as e:
    print("usr-bin", errno.errorcode[e.errno])
with open("/tmp/scratch", "w") as f:
    f.write("x")
print("tmp ok")
for p in ["/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"]:
    if os.path.exists(p):
        print("memory", open(p).read().strip())
for p in ["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"]:
    if os.path.exists(p):
        print("cpu", open(p).read().split()[0])
        break
"#,
    )
    .unwrap();
    let oci = Oci::new();
    let id = unique_id("readme");
    // nsenter, not `ip netns exec`: that one remounts /sys without cgroups.
    let out = Command::new("nsenter")
        .arg(format!("--net={}", net.client_path()))
        .arg(purple())
        .arg("--root")
        .arg(oci.root.path())
        .args([
            "run",
            "--profile",
            "secure-agent",
            "--id",
            &id,
            "--",
            "python3",
            "agent.py",
        ])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"blocked EPERM fast"), "{stdout}");
    assert!(lines.contains(&"metadata EPERM fast"), "{stdout}");
    assert!(lines.contains(&"allowed connected fast"), "{stdout}");
    assert!(lines.contains(&"usr-bin EROFS"), "{stdout}");
    assert!(lines.contains(&"tmp ok"), "{stdout}");
    assert!(lines.contains(&"memory 536870912"), "{stdout}");
    assert!(lines.contains(&"cpu 50000"), "{stdout}");
    assert_eq!(
        fs::read_to_string(work.path().join("output/result.txt")).unwrap(),
        "written by the agent\n"
    );
    let received = net.received();
    assert!(
        !received.contains("1.1.1.1"),
        "a blocked connect arrived: {received}"
    );
    assert!(
        !received.contains("169.254.169.254"),
        "metadata reached: {received}"
    );
    assert!(
        received.contains("10.99.0.1"),
        "allowed connect missing: {received}"
    );
    // The summary names the violations; the log holds them with their rule.
    assert!(stderr.contains("purple: exit 0"), "{stderr}");
    assert!(
        stderr.contains("2 violations (network.blocked 2)"),
        "{stderr}"
    );
    let log = stderr.rsplit("audit log ").next().unwrap().trim();
    let records = fs::read_to_string(log).unwrap();
    let blocked: Vec<&str> = records
        .lines()
        .filter(|l| l.contains("\"network.blocked\""))
        .collect();
    assert_eq!(blocked.len(), 2, "{records}");
    assert!(blocked.iter().any(|l| l.contains("1.1.1.1")), "{records}");
    assert!(records.contains("\"policy\":\"secure-agent\""), "{records}");
    assert_run_left_nothing(&oci, &id);
}

#[test]
fn run_passes_exit_codes_signals_env_and_volumes() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    fs::write(data.path().join("in.txt"), "input").unwrap();
    let oci = Oci::new();
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "run",
            "-q",
            "--profile",
            "development",
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out).1, "", "--quiet printed something");

    // A busybox root filesystem, a read-only and a writable volume, env.
    let b = TestBundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    let ro = format!("{}:/in:ro", data.path().display());
    let rw = format!("{}:/out", work.path().display());
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "run", "--profile", "secure-agent", "--rootfs", rootfs.to_str().unwrap(), "--no-workdir",
            "-v", &ro, "-v", &rw, "-e", "GREETING=hello",
            "--", "sh", "-c", "cat /in/in.txt; echo \" $GREETING\"; echo made > /out/made.txt; echo x > /in/nope 2>/dev/null || echo ro-refused",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "input hello\nro-refused\n");
    assert_eq!(
        fs::read_to_string(work.path().join("made.txt")).unwrap(),
        "made\n"
    );

    // SIGTERM to `purple run` reaches the agent, whose exit code comes back.
    let id = unique_id("sig");
    // A directory of its own: `work` was handed to the sandbox above, and a
    // sandbox-owned entry of /tmp is refused as a bind source (hostile.rs).
    let sig_work = tempfile::tempdir().unwrap();
    mode(sig_work.path(), 0o711);
    let mut child = Command::new(purple())
        .current_dir(sig_work.path())
        .arg("--root")
        .arg(oci.root.path())
        .args([
            "run",
            "--profile",
            "development",
            "--id",
            &id,
            "--",
            "python3",
            "-u",
            "-c",
            "import signal, sys, time\n\
             signal.signal(signal.SIGTERM, lambda *a: (print('got TERM'), sys.exit(42)))\n\
             print('ready')\n\
             time.sleep(60)",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Only once the handler is installed: pid 1 ignores signals it does not handle.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert_eq!(first, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGTERM was not forwarded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42), "{rest}{}", text(&out).1);
    assert_eq!(rest, "got TERM\n");
    assert_run_left_nothing(&oci, &id);
}

fn mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Root in the sandbox is a stranger on the host (the default user
/// namespace): it cannot read host root's private file or change host root's
/// file bound into it, what it writes is owned by its mapped ids, a bind the
/// namespace cannot reach is refused before anything starts, and turning the
/// namespace off is warned about.
#[test]
fn sandbox_root_is_a_stranger_on_the_host() {
    use std::os::unix::fs::MetadataExt;
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    mode(data.path(), 0o755);
    fs::write(data.path().join("secret"), "s3cret").unwrap();
    mode(&data.path().join("secret"), 0o600);
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("keep.txt"), "host\n").unwrap();
    let oci = Oci::new();
    let id = unique_id("userns");
    let ro = format!("{}:/data:ro", data.path().display());
    let rw = format!("{}:/out", out_dir.display());
    let script = "cat /proc/self/uid_map; id -u; \
        cat /data/secret || echo read-refused; \
        echo agent >> /out/keep.txt || echo write-refused; \
        echo new > /out/new.txt";
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "run",
            "-q",
            "--profile",
            "secure-agent",
            "--id",
            &id,
            "--no-workdir",
            "-v",
            &ro,
            "-v",
            &rw,
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "read-refused", "write-refused"],
        "{stderr}"
    );
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{stderr}");
    assert_eq!(
        fs::read_to_string(out_dir.join("keep.txt")).unwrap(),
        "host\n"
    );
    let made = fs::metadata(out_dir.join("new.txt")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100000, 100000));
    assert_eq!(fs::metadata(&out_dir).unwrap().uid(), 100000);
    assert_run_left_nothing(&oci, &id);

    // A bind source behind a directory only host root may enter: refused
    // with the directory and the fix named, nothing created.
    let closed = tempfile::tempdir().unwrap();
    fs::create_dir(closed.path().join("inner")).unwrap();
    mode(closed.path(), 0o700);
    let id = unique_id("closed");
    let bind = format!("{}:/x:ro", closed.path().join("inner").display());
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "run",
            "--profile",
            "secure-agent",
            "--id",
            &id,
            "-v",
            &bind,
            "--",
            "true",
        ],
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "the sandbox cannot reach {}/inner: {} (owner 0, mode 0700) does not let host uid 100000 pass",
        closed.path().display(),
        closed.path().display()
    );
    assert!(stderr.contains(&want), "want {want:?} in {stderr}");
    assert!(stderr.contains(&format!("chmod o+x {}", closed.path().display())));
    assert_run_left_nothing(&oci, &id);

    // Opting out gives the sandbox the host's ids, with a warning.
    let b = TestBundle::new(&["true"]);
    fs::write(
        work.path().join("hostids.yaml"),
        "name: hostids\nuser:\n  namespace:\n    enabled: false\n",
    )
    .unwrap();
    let rootfs = b.path().join("rootfs");
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "run",
            "-q",
            "--profile",
            "hostids.yaml",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--no-workdir",
            "--",
            "cat",
            "/proc/self/uid_map",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    assert!(
        stderr.contains("user.namespace.enabled: without a user namespace, root in the sandbox is root on the host"),
        "{stderr}"
    );
}

/// `exec` enters the sandbox's user namespace too (libcontainer 0.7's
/// tenants skip it): an exec'd process would otherwise be host root.
#[test]
fn exec_enters_the_sandbox_user_namespace() {
    let work = tempfile::tempdir().unwrap();
    mode(work.path(), 0o711);
    let b = TestBundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    fs::write(work.path().join("sleepy.yaml"), "name: sleepy\n").unwrap();
    let oci = Oci::new();
    let out = purple_in(
        work.path(),
        &oci,
        &[
            "translate",
            "sleepy.yaml",
            "-o",
            "bundle",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let id = unique_id("exec-userns");
    let bundle = work.path().join("bundle");
    oci.create(&id, &bundle, &[]);
    oci.ok(&["start", &id]);
    let init = oci.state(&id)["pid"].as_u64().unwrap();
    let init_ns = fs::read_link(format!("/proc/{init}/ns/user")).unwrap();
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", id.as_str()];
        all.extend(args);
        oci.ok(&all)
    };
    assert_eq!(
        exec(&["readlink", "/proc/self/ns/user"]).trim(),
        init_ns.to_str().unwrap()
    );
    assert_eq!(
        exec(&["cat", "/proc/self/uid_map"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

/// Each limit a policy sets has its effect under `purple run`, and the
/// summary line names the violation: a scratch tmpfs fills at its size, a
/// denied system call fails with EPERM, a dropped capability is unusable, a
/// fork bomb stops at the pids limit, a memory hog is OOM-killed at the memory
/// limit, and the session timeout ends a sleeping agent.
#[test]
fn policy_limits_take_effect_under_run() {
    let work = tempfile::tempdir().unwrap();
    let b = TestBundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    let oci = Oci::new();
    fs::write(
        work.path().join("limits.yaml"),
        "name: limits\n\
         filesystem:\n  scratch_paths: [{ path: /scratch, size: 1M }]\n\
         resources:\n  memory_limit_bytes: 64M\n  pids_limit: 16\n\
         capabilities:\n  default_drop: true\n\
         syscalls:\n  deny: [mkdir, mkdirat]\n",
    )
    .unwrap();
    fs::write(
        work.path().join("slow.yaml"),
        "name: slow\nresources:\n  session_timeout_seconds: 1\n",
    )
    .unwrap();
    let run = |policy: &str, script: &str| {
        let id = unique_id(policy);
        let out = purple_in(
            work.path(),
            &oci,
            &[
                "run",
                "--profile",
                &format!("{policy}.yaml"),
                "--id",
                &id,
                "--rootfs",
                rootfs.to_str().unwrap(),
                "--no-workdir",
                "--",
                "sh",
                "-c",
                script,
            ],
        );
        assert_run_left_nothing(&oci, &id);
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = run(
        "limits",
        "dd if=/dev/zero of=/scratch/fill bs=1M count=4 2>&1 | grep -o 'No space left on device'; \
         mkdir /scratch/d || echo mkdir-denied; \
         chown 1 /scratch/fill || echo chown-denied; \
         while :; do sleep 5 & done",
    );
    assert_eq!(
        stdout, "No space left on device\nmkdir-denied\nchown-denied\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("mkdir: can't create directory '/scratch/d': Operation not permitted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chown: /scratch/fill: Operation not permitted"),
        "{stderr}"
    );
    assert!(stderr.contains("can't fork"), "{stderr}");
    assert_eq!(
        code,
        Some(2),
        "the shell gives up when fork fails: {stderr}"
    );
    assert!(stderr.contains("purple: exit 2"), "{stderr}");
    assert!(stderr.contains("resource.pids"), "{stderr}");
    assert!(stderr.contains("syscall.denied 1"), "{stderr}");

    let (code, _, stderr) = run(
        "limits",
        "x=$(head -c 300000000 /dev/zero | tr '\\0' x); echo survived",
    );
    assert_eq!(code, Some(137), "{stderr}");
    assert!(stderr.contains("purple: exit 137"), "{stderr}");
    assert!(stderr.contains("(resource.oom 1)"), "{stderr}");

    let (code, _, stderr) = run("slow", "sleep 30");
    assert_eq!(
        code,
        Some(137),
        "pid 1 ignores SIGTERM; SIGKILL follows: {stderr}"
    );
    assert!(stderr.contains("(resource.timeout 1)"), "{stderr}");
}

#[test]
fn translated_bundle_runs_under_purple_oci() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let out = purple_in(
        work.path(),
        &oci,
        &["translate", "code-analyst", "-o", "bundle", "--", "python3", "-c", "import socket\ntry:\n socket.socket()\nexcept OSError as e:\n print('socket', e.errno)"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let bundle = work.path().join("bundle");
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["annotations"]["io.purple.policy.name"],
        "code-analyst"
    );
    assert!(config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "network"));
    // code-analyst has no /work bind of its own: give the process a cwd that exists.
    let id = unique_id("tr");
    let out = oci.run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "socket 1\n", "socket() must fail with EPERM");
    assert_no_leftovers(&oci, &id);
}

/// With a terminal on stdin, the agent gets a pty of its own.
#[test]
fn run_gives_the_agent_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let cmd = format!(
        "{} --root {} run --profile development -- sh -c 'tty; exit 3'",
        purple().display(),
        oci.root.path().display()
    );
    // script(1) puts the command on a pty and passes its exit code back.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(work.path())
        .output()
        .expect("script (util-linux) is installed");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("/dev/pts/"), "no pty inside: {stdout}");
    assert!(stdout.contains("purple: exit 3"), "{stdout}");
}
