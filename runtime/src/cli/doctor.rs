//! `purple doctor`: can Purple run on this host, and what will it enforce
//! here? Each check reads what the kernel says (or tries the real thing: the
//! egress programs are attached to a scratch cgroup and removed again), so a
//! missing piece is named with its consequence and fix before the first
//! sandbox fails with libcontainer's words.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::cgroup2::{self, Layout};
use crate::egress::SLIRP4NETNS;
use crate::scope;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object (`verdict`, `checks`) instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Degraded,
    Missing,
}

/// How much a check's failure costs: an optional one (an engine that is not
/// installed) changes neither the verdict nor the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Weight {
    Essential,
    Feature,
    Optional,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    weight: Weight,
    found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    consequence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    /// Something a sandbox cannot do without.
    fn missing(
        name: &'static str,
        found: impl Into<String>,
        consequence: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::not_ok(
            name,
            Status::Missing,
            Weight::Essential,
            found,
            consequence,
            fix,
        )
    }

    fn ok(name: &'static str, weight: Weight, found: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            weight,
            found: found.into(),
            consequence: None,
            fix: None,
        }
    }

    fn not_ok(
        name: &'static str,
        status: Status,
        weight: Weight,
        found: impl Into<String>,
        consequence: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status,
            weight,
            found: found.into(),
            consequence: Some(consequence.into()),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Verdict {
    Ok,
    Degraded,
    CannotRun,
}

impl Verdict {
    fn of(checks: &[Check]) -> Verdict {
        let failing = || {
            checks
                .iter()
                .filter(|c| c.status != Status::Ok && c.weight != Weight::Optional)
        };
        if failing().any(|c| c.weight == Weight::Essential) {
            Verdict::CannotRun
        } else if failing().next().is_some() {
            Verdict::Degraded
        } else {
            Verdict::Ok
        }
    }

    fn exit_code(self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::Degraded => 1,
            Verdict::CannotRun => 2,
        }
    }
}

pub fn doctor(args: Args) -> Result<i32> {
    let checks = vec![
        kernel(),
        cgroups(),
        bpffs(),
        egress_programs(),
        btf(),
        bpf_lsm(),
        landlock(),
        seccomp(),
        user_namespaces(),
        network_helper(),
        io_uring(),
        podman(),
        containerd(),
    ];
    let verdict = Verdict::of(&checks);
    if args.json {
        let out = serde_json::json!({ "verdict": verdict, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_lines(&checks, verdict);
    }
    Ok(verdict.exit_code())
}

fn print_lines(checks: &[Check], verdict: Verdict) {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in checks {
        let status = match (c.status, c.weight) {
            (Status::Ok, _) => "ok",
            (Status::Degraded, _) => "degraded",
            (Status::Missing, Weight::Optional) => "absent",
            (Status::Missing, _) => "missing",
        };
        println!("{status:9} {:width$}  {}", c.name, c.found);
        let indent = " ".repeat(10 + width + 2);
        if let Some(why) = &c.consequence {
            println!("{indent}{why}");
        }
        if let Some(fix) = &c.fix {
            println!("{indent}fix: {fix}");
        }
    }
    println!();
    println!(
        "{}",
        match verdict {
            Verdict::Ok => "Purple can run here and enforce everything above.",
            Verdict::Degraded =>
                "Purple can run here; the lines marked degraded or missing are not enforced.",
            Verdict::CannotRun =>
                "Purple cannot run sandboxes here until the missing essentials are fixed.",
        }
    );
}

/// `(major, minor)` of a release string such as `6.18.44-fc-v1045`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel() -> Check {
    // bpf_link cgroup attachment, the BPF ring buffer and seccomp's addfd
    // all arrived by 5.9; Purple is developed on 6.x.
    const NEEDED: (u32, u32) = (5, 10);
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    match kernel_version(&release) {
        Some(v) if v >= NEEDED => Check::ok("kernel", Weight::Essential, release),
        _ => Check::missing(
            "kernel",
            format!("{release:?}"),
            "the egress programs need bpf_link cgroup hooks and the BPF ring buffer",
            "boot Linux 5.10 or newer (6.12+ for every feature)",
        ),
    }
}

fn cgroups() -> Check {
    const NAME: &str = "cgroups";
    if cgroup2::hidden() {
        return Check::missing(
            NAME,
            "this process is in cgroups but no cgroup filesystem is mounted here",
            "`ip netns exec` remounts /sys without the cgroup mounts; containers cannot be placed",
            "enter the namespace with `nsenter --net=/run/netns/NAME` instead of `ip netns exec`",
        );
    }
    let layout = cgroup2::detect();
    let shape = match &layout {
        Layout::V1 => {
            return Check::missing(
                NAME,
                "cgroup v1 only: no cgroup2 mount",
                "the eBPF egress programs attach to a cgroup2 directory; without one no network rule is enforced",
                "mount cgroup2 (`mount -t cgroup2 none /sys/fs/cgroup/unified`) or boot with systemd.unified_cgroup_hierarchy=1",
            )
        }
        Layout::Hybrid { unified } => format!(
            "hybrid: v1 controllers, cgroup2 at {}",
            unified.display()
        ),
        Layout::V2 => "cgroup v2 (unified)".to_owned(),
    };
    let unified = layout
        .unified()
        .expect("hybrid and v2 have a cgroup2 mount");
    match Scratch::cgroup(unified) {
        Ok(scratch) => {
            drop(scratch);
            Check::ok(NAME, Weight::Essential, format!("{shape}, writable"))
        }
        Err(e) => Check::missing(
            NAME,
            format!("{shape}, not writable: {e}"),
            "Purple cannot give a sandbox its own cgroup2 directory",
            "run as root on a read-write cgroup2 mount",
        ),
    }
}

/// A directory Purple made for the check, removed when dropped (with the
/// `purple` parent too when this check created it).
struct Scratch {
    dir: PathBuf,
    made_parent: Option<PathBuf>,
}

impl Scratch {
    fn cgroup(unified: &Path) -> std::io::Result<Scratch> {
        let parent = unified.join("purple");
        let made_parent = (!parent.exists()).then(|| parent.clone());
        let dir = parent.join(format!("doctor-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        Ok(Scratch { dir, made_parent })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
        if let Some(p) = &self.made_parent {
            let _ = fs::remove_dir(p);
        }
    }
}

fn bpffs() -> Check {
    use nix::sys::statfs::{statfs, BPF_FS_MAGIC};
    let mounted = statfs(purple_ebpf::BPFFS).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC);
    if !mounted {
        // Checking changes nothing on the host: create mounts it when needed.
        return Check::ok(
            "bpffs",
            Weight::Essential,
            format!(
                "not mounted; the first create mounts it on {} (mode 0700)",
                purple_ebpf::BPFFS
            ),
        );
    }
    // The check create runs: a pin directory someone else made is refused.
    match purple_ebpf::pin_root() {
        Ok(_) => Check::ok(
            "bpffs",
            Weight::Essential,
            format!(
                "{}, pin directory {} is root's",
                purple_ebpf::BPFFS,
                purple_ebpf::PIN_ROOT
            ),
        ),
        Err(e) => Check::missing(
            "bpffs",
            e.to_string(),
            "eBPF programs cannot stay attached after create without pins",
            "run as root; remove a pin directory Purple did not make",
        ),
    }
}

/// Attaches Purple's real egress programs to a scratch cgroup and removes
/// them: what every sandbox with a network needs.
fn egress_programs() -> Check {
    const NAME: &str = "bpf cgroup hooks";
    let Some(unified) = cgroup2::detect().unified().map(Path::to_owned) else {
        return Check::missing(
            NAME,
            "no cgroup2 mount to attach to",
            "no network rule can be enforced",
            "see the cgroups line",
        );
    };
    let scratch = match Scratch::cgroup(&unified) {
        Ok(s) => s,
        Err(e) => {
            return Check::missing(
                NAME,
                format!("no scratch cgroup: {e}"),
                "no network rule can be enforced",
                "see the cgroups line",
            )
        }
    };
    let pins = Path::new(purple_ebpf::PIN_ROOT).join(format!("doctor-{}", std::process::id()));
    let attached = purple_ebpf::attach(
        &scratch.dir,
        &pins,
        purple_ebpf::maps::Config::default(),
        &[],
    );
    let detached = purple_ebpf::detach(&pins);
    drop(scratch);
    match attached.and(detached) {
        Ok(()) => Check::ok(
            NAME,
            Weight::Essential,
            "connect4/6, sendmsg4/6, recvmsg4/6 and skb egress load and attach",
        ),
        Err(e) => Check::missing(
            NAME,
            e.to_string(),
            "no network rule can be enforced; sandboxes with a network policy fail to create",
            "a kernel with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF, run as root",
        ),
    }
}

fn btf() -> Check {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    if Path::new(VMLINUX).exists() {
        Check::ok("btf", Weight::Feature, VMLINUX)
    } else {
        Check::not_ok(
            "btf",
            Status::Degraded,
            Weight::Feature,
            format!("{VMLINUX} missing"),
            "the egress programs load without it; BPF LSM programs (the activity trail) need it",
            "a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
    }
}

/// `LSM_ID_*` from include/uapi/linux/lsm.h.
const LSM_ID_BPF: u64 = 109;
const LSM_ID_LANDLOCK: u64 = 110;

/// The active LSMs by id, from `lsm_list_modules(2)` (Linux 6.8): no
/// securityfs mount needed.
fn active_lsms() -> Option<Vec<u64>> {
    const SYS_LSM_LIST_MODULES: libc::c_long = 461;
    let mut ids = [0u64; 32];
    let mut size = std::mem::size_of_val(&ids) as u32;
    // SAFETY: the kernel writes at most `size` bytes into `ids`.
    let n = unsafe { libc::syscall(SYS_LSM_LIST_MODULES, ids.as_mut_ptr(), &mut size, 0u32) };
    let n = usize::try_from(n).ok()?;
    Some(ids[..n.min(ids.len())].to_vec())
}

fn bpf_lsm() -> Check {
    match active_lsms() {
        Some(ids) if ids.contains(&LSM_ID_BPF) => Check::ok("bpf lsm", Weight::Feature, "active"),
        Some(_) => Check::not_ok(
            "bpf lsm",
            Status::Degraded,
            Weight::Feature,
            "not in the kernel's active LSMs",
            "BPF LSM hooks (the activity trail's file records) cannot attach",
            "boot with lsm=...,bpf (CONFIG_BPF_LSM=y)",
        ),
        None => Check::not_ok(
            "bpf lsm",
            Status::Degraded,
            Weight::Feature,
            "unknown: lsm_list_modules(2) needs Linux 6.8",
            "BPF LSM hooks may not attach",
            "a kernel 6.8+ booted with lsm=...,bpf",
        ),
    }
}

fn landlock() -> Check {
    let active = active_lsms().is_none_or(|ids| ids.contains(&LSM_ID_LANDLOCK));
    match scope::abi() {
        Ok(v) if active && v >= scope::SCOPE_ABI => {
            Check::ok("landlock", Weight::Feature, format!("ABI {v}"))
        }
        Ok(v) => Check::not_ok(
            "landlock",
            Status::Degraded,
            Weight::Feature,
            format!("ABI {v}; abstract unix socket scoping needs ABI {}", scope::SCOPE_ABI),
            "sandboxes sharing the host's network namespace (network.namespace: host, an engine's --network host) are refused",
            "Linux 6.12+ with Landlock enabled",
        ),
        Err(_) => Check::not_ok(
            "landlock",
            Status::Degraded,
            Weight::Feature,
            "not enabled",
            "sandboxes sharing the host's network namespace are refused",
            "boot with lsm=...,landlock (CONFIG_SECURITY_LANDLOCK=y)",
        ),
    }
}

fn seccomp() -> Check {
    let actions = fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let have: Vec<&str> = actions.split_whitespace().collect();
    let lacking: Vec<&str> = ["errno", "kill_process", "user_notif"]
        .into_iter()
        .filter(|a| !have.contains(a))
        .collect();
    if lacking.is_empty() {
        Check::ok(
            "seccomp",
            Weight::Essential,
            "filters and user notification",
        )
    } else {
        Check::missing(
            "seccomp",
            format!("actions missing: {}", lacking.join(", ")),
            "syscall rules cannot be enforced and recorded",
            "a kernel with CONFIG_SECCOMP_FILTER (5.0+ for user notification)",
        )
    }
}

fn user_namespaces() -> Check {
    let max: u64 = fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if max == 0 {
        return Check::not_ok(
            "user namespaces",
            Status::Degraded,
            Weight::Feature,
            "disabled (user.max_user_namespaces = 0)",
            "policies with a user namespace (sandbox root is not host root) fail to create",
            "sysctl user.max_user_namespaces=15000",
        );
    }
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    let root_range = subuid.lines().find(|l| l.starts_with("root:")).map_or(
        "no root range in /etc/subuid (Purple's policies name their own host ids)".to_owned(),
        |l| format!("root's range {l} in /etc/subuid"),
    );
    Check::ok(
        "user namespaces",
        Weight::Feature,
        format!("up to {max}; {root_range}"),
    )
}

/// `name` in one of the directories of `$PATH`.
fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn network_helper() -> Check {
    match in_path(SLIRP4NETNS) {
        Some(p) => Check::ok("network helper", Weight::Feature, p.display().to_string()),
        None => Check::not_ok(
            "network helper",
            Status::Missing,
            Weight::Feature,
            format!("{SLIRP4NETNS} not found in PATH"),
            "sandboxes with network access (network.isolated: false) cannot start",
            "apt-get install slirp4netns",
        ),
    }
}

fn io_uring() -> Check {
    let found = match fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_owned())
        .as_deref()
    {
        Ok("2") => "disabled by the host".to_owned(),
        Ok(v) => format!(
            "enabled in the kernel (io_uring_disabled = {v}); sandboxes get it only when a policy sets syscalls.allow_io_uring"
        ),
        Err(_) => "no io_uring_disabled switch; sandboxes get it only when a policy allows it".to_owned(),
    };
    Check::ok("io_uring", Weight::Feature, found)
}

/// Every string under a `key` anywhere in a TOML tree, with its table path
/// (kept as parts: containerd's plugin names contain dots).
fn strings_named<'a>(
    value: &'a toml::Value,
    key: &str,
    at: &mut Vec<&'a str>,
    out: &mut Vec<(Vec<&'a str>, &'a str)>,
) {
    let toml::Value::Table(t) = value else { return };
    for (k, v) in t {
        match v {
            toml::Value::String(s) if k == key => out.push((at.clone(), s)),
            _ => {
                at.push(k);
                strings_named(v, key, at, out);
                at.pop();
            }
        }
    }
}

fn read_toml(path: &Path) -> Option<Result<toml::Value, String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.parse::<toml::Value>()
            .map_err(|e| format!("{}: {e}", path.display())),
    )
}

fn names_purple(s: &str) -> bool {
    Path::new(s)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("purple-oci"))
}

fn podman() -> Check {
    const NAME: &str = "podman";
    if in_path("podman").is_none() {
        return Check::not_ok(
            NAME,
            Status::Missing,
            Weight::Optional,
            "not installed",
            "only needed to run containers with `podman --runtime purple`",
            "apt-get install podman",
        );
    }
    let mut files = vec![PathBuf::from("/etc/containers/containers.conf")];
    if let Ok(dir) = fs::read_dir("/etc/containers/containers.conf.d") {
        let mut extra: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        extra.sort();
        files.extend(extra);
    }
    let mut named = Vec::new();
    for file in &files {
        match read_toml(file) {
            None => {}
            Some(Err(e)) => {
                return Check::not_ok(
                    NAME,
                    Status::Degraded,
                    Weight::Optional,
                    format!("unreadable configuration {e}"),
                    "podman refuses to start with it",
                    "fix the file",
                )
            }
            Some(Ok(v)) => {
                let runtimes = v.get("engine").and_then(|e| e.get("runtimes"));
                if let Some(toml::Value::Table(t)) = runtimes {
                    for (name, paths) in t {
                        let paths = paths.as_array().into_iter().flatten();
                        if paths.filter_map(|p| p.as_str()).any(names_purple) {
                            named.push(format!("{name} ({})", file.display()));
                        }
                    }
                }
            }
        }
    }
    if named.is_empty() {
        Check::not_ok(
            NAME,
            Status::Missing,
            Weight::Optional,
            "installed; no [engine.runtimes] entry names purple-oci",
            "`podman --runtime purple` is not available by name",
            "see docs/podman.md: add purple = [\"/usr/local/bin/purple-oci\"] under [engine.runtimes]",
        )
    } else {
        Check::ok(
            NAME,
            Weight::Optional,
            format!("runtime {}", named.join(", ")),
        )
    }
}

fn containerd() -> Check {
    const NAME: &str = "containerd";
    const CONFIG: &str = "/etc/containerd/config.toml";
    if in_path("containerd").is_none() {
        return Check::not_ok(
            NAME,
            Status::Missing,
            Weight::Optional,
            "not installed",
            "only needed for containerd and Kubernetes (RuntimeClass)",
            "apt-get install containerd",
        );
    }
    let handlers = match read_toml(Path::new(CONFIG)) {
        None => Vec::new(),
        Some(Err(e)) => {
            return Check::not_ok(
                NAME,
                Status::Degraded,
                Weight::Optional,
                format!("unreadable configuration {e}"),
                "containerd refuses to start with it",
                "fix the file",
            )
        }
        Some(Ok(v)) => {
            let mut binaries = Vec::new();
            strings_named(&v, "BinaryName", &mut Vec::new(), &mut binaries);
            binaries
                .into_iter()
                .filter(|(_, b)| names_purple(b))
                .map(|(at, _)| runtime_handler(&at))
                .collect()
        }
    };
    if handlers.is_empty() {
        Check::not_ok(
            NAME,
            Status::Missing,
            Weight::Optional,
            format!("installed; no runtime in {CONFIG} has a BinaryName of purple-oci"),
            "containerd and Kubernetes pods cannot select Purple",
            "see docs/containerd.md for the runtimes entry and the RuntimeClass",
        )
    } else {
        Check::ok(
            NAME,
            Weight::Optional,
            format!("runtime handler {}", handlers.join(", ")),
        )
    }
}

/// The handler name in a table path such as
/// `plugins / io.containerd.grpc.v1.cri / containerd / runtimes / purple / options`.
fn runtime_handler(at: &[&str]) -> String {
    at.iter()
        .position(|p| *p == "runtimes")
        .and_then(|i| at.get(i + 1))
        .map_or_else(|| at.join("."), |h| (*h).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(kernel_version("5.10.0-27-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn containerd_handlers_are_found_under_any_plugin_layout() {
        let v2: toml::Value = r#"
            version = 2
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.purple-secure]
            runtime_type = "io.containerd.runc.v2"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.purple-secure.options]
            BinaryName = "/usr/local/bin/purple-oci"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = "/usr/sbin/runc"
        "#
        .parse()
        .unwrap();
        let mut found = Vec::new();
        strings_named(&v2, "BinaryName", &mut Vec::new(), &mut found);
        let handlers: Vec<String> = found
            .into_iter()
            .filter(|(_, b)| names_purple(b))
            .map(|(at, _)| runtime_handler(&at))
            .collect();
        assert_eq!(handlers, ["purple-secure"]);
    }

    #[test]
    fn optional_checks_do_not_change_the_verdict() {
        let absent = Check::not_ok("podman", Status::Missing, Weight::Optional, "", "", "");
        assert_eq!(Verdict::of(&[absent]), Verdict::Ok);
        let lsm = Check::not_ok("bpf lsm", Status::Degraded, Weight::Feature, "", "", "");
        assert_eq!(Verdict::of(&[lsm]), Verdict::Degraded);
        let cg = Check::not_ok("cgroups", Status::Missing, Weight::Essential, "", "", "");
        assert_eq!(Verdict::of(&[cg]).exit_code(), 2);
    }
}
