//! `purple run` end to end: the README example holds as an attack (in a
//! network namespace of the test's own), exit codes, signals, environment
//! and volumes pass, each limit of a policy takes effect, and the agent gets
//! a terminal when it has one.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use purple_integration::cli::{purple_cmd, purple_in, text};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::netns::TestNet;
use purple_integration::*;

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
        &oci,
        work.path(),
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
        &oci,
        work.path(),
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
    set_mode(sig_work.path(), 0o711);
    let mut child = purple_cmd(&oci, sig_work.path())
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
            &oci,
            work.path(),
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
