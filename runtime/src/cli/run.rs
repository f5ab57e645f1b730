//! `purple run --profile NAME -- CMD ARGS...`: one command from policy to
//! exit code. The bundle lives in a private directory under the state root and
//! is removed with the container, whatever happens.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use purple_policy::load::{cli_bind, Context};
use purple_policy::schema::{Bind, Policy};
use purple_policy::translate::{self, Process, DEFAULT_PATH};

use crate::audit;
use crate::console::{self, ConsoleSocket, RawTerminal};
use crate::container::{CreateOptions, Launch, Runtime};
use crate::foreground::Run;
use crate::id::ContainerId;

/// Where the agent's current directory appears, read-only.
const WORKDIR: &str = "/work";

/// The most output a detached sandbox keeps for `purple logs`.
const DETACHED_OUTPUT_LIMIT: u64 = 16 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Profile name (`purple profiles`) or policy file.
    #[arg(short, long, value_name = "NAME|FILE")]
    pub profile: String,
    /// Root filesystem; default: an empty one that the policy's binds fill
    /// with the host's programs.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Bind a host path: HOST:SANDBOX (writable) or HOST:SANDBOX:ro.
    #[arg(short = 'v', long = "volume", value_name = "HOST:SANDBOX[:ro]")]
    pub volumes: Vec<String>,
    /// Set an environment variable in the sandbox; `-e KEY` takes the value
    /// from purple's own environment (for secrets: every local user can read
    /// a command line).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Container ID (default: generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Do not bind the current directory read-only at /work.
    #[arg(long)]
    pub no_workdir: bool,
    /// Do not print the summary line when the agent exits.
    #[arg(short, long)]
    pub quiet: bool,
    /// Start the sandbox and return, printing its ID; it runs on after this
    /// command ends, its output kept for `purple logs` (up to 16 MiB), until
    /// `purple stop`.
    #[arg(short, long)]
    pub detach: bool,
    /// Learn mode: record every allowed connection and syscall of the run,
    /// then write a least-privilege policy for it to FILE (`purple policy
    /// learn`).
    #[arg(long, value_name = "FILE", conflicts_with = "detach")]
    pub learn: Option<PathBuf>,
    /// Replace the --learn FILE if it exists.
    #[arg(long, requires = "learn")]
    pub force: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Removes the private bundle however `run` ends.
struct BundleDir(PathBuf);

impl BundleDir {
    /// Leaves it to the container (a detached run): delete removes it.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for BundleDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            // delete removes it with the container.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", self.0.display())
            }
            _ => {}
        }
    }
}

fn add_binds(policy: &mut Policy, args: &Args, ctx: &Context) -> Result<()> {
    let taken = |p: &Policy, path: &str| {
        p.filesystem
            .immutable_paths
            .iter()
            .chain(&p.filesystem.output_paths)
            .any(|b| b.sandbox_path == path)
            || p.filesystem.scratch_paths.iter().any(|s| s.path == path)
    };
    for v in &args.volumes {
        let (bind, ro) = cli_bind(v, ctx).map_err(anyhow::Error::msg)?;
        if taken(policy, &bind.sandbox_path) {
            bail!(
                "--volume {v}: {} is already mounted by the policy; bind elsewhere, or drop the policy's entry",
                bind.sandbox_path
            );
        }
        if ro {
            policy.filesystem.immutable_paths.push(bind);
        } else {
            policy.filesystem.output_paths.push(bind);
        }
    }
    if !args.no_workdir && !taken(policy, WORKDIR) {
        let (bind, _) = cli_bind(&format!(".:{WORKDIR}:ro"), ctx).map_err(|e| {
            anyhow::anyhow!("cannot share the current directory at {WORKDIR}: {e}; run from a project directory or pass --no-workdir")
        })?;
        policy.filesystem.immutable_paths.push(bind);
    }
    Ok(())
}

/// Where a sandbox directory comes from on the host: the longest bind that
/// covers it, else the root filesystem.
pub(super) fn host_view(policy: &Policy, rootfs: &Path, dir: &str) -> PathBuf {
    let binds: Vec<&Bind> = policy
        .filesystem
        .immutable_paths
        .iter()
        .chain(&policy.filesystem.output_paths)
        .collect();
    let best = binds
        .iter()
        .filter(|b| Path::new(dir).starts_with(&b.sandbox_path))
        .max_by_key(|b| b.sandbox_path.len());
    match best {
        Some(b) => {
            let rest = Path::new(dir)
                .strip_prefix(&b.sandbox_path)
                .unwrap_or(Path::new(""));
            b.host_path.join(rest)
        }
        None => rootfs.join(dir.trim_start_matches('/')),
    }
}

/// Finds `cmd` on the sandbox's PATH, as the sandbox will see it.
fn resolve_command(policy: &Policy, env: &[String], rootfs: &Path, cmd: &str) -> Result<String> {
    if cmd.contains('/') {
        return Ok(cmd.to_owned());
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .or_else(|| policy.environment.get("PATH").map(String::as_str))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let host = host_view(policy, rootfs, dir).join(cmd);
        let executable = std::fs::metadata(&host)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if executable {
            return Ok(format!("{}/{cmd}", dir.trim_end_matches('/')));
        }
    }
    bail!("{cmd}: command not found in the sandbox (PATH={path}); the policy must bind the directory that holds it")
}

/// `KEY=VALUE` for each `-e`, a bare `KEY` filled from this process's
/// environment.
fn environment(env: &[String]) -> Result<Vec<String>> {
    env.iter()
        .map(|kv| {
            if kv.contains('=') {
                return Ok(kv.clone());
            }
            match std::env::var(kv) {
                Ok(v) => Ok(format!("{kv}={v}")),
                Err(_) => bail!("-e {kv}: {kv} is not set in purple's environment; export it or give {kv}=VALUE"),
            }
        })
        .collect()
}

fn peak_memory(rt: &Runtime, id: &ContainerId) -> Option<u64> {
    let stats = rt.stats(id).ok()?;
    Some(stats.memory.memory.max_usage).filter(|m| *m > 0)
}

fn summary(code: i32, started: Instant, peak: Option<u64>, log: Option<&Path>) -> String {
    let mut s = format!(
        "purple: exit {code} in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(p) = peak {
        s.push_str(&format!(
            ", peak memory {:.1} MiB",
            p as f64 / (1 << 20) as f64
        ));
    }
    if let Some(log) = log {
        match audit::summary(log) {
            Ok(sum) => {
                let n = sum.violations();
                s.push_str(&format!(", {n} violation{}", if n == 1 { "" } else { "s" }));
                if n > 0 {
                    let list: Vec<String> = sum
                        .kinds
                        .iter()
                        .filter(|(k, _)| audit::is_violation(k))
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect();
                    s.push_str(&format!(" ({})", list.join(", ")));
                }
                if let Some(lost) = sum.kinds.get(audit::Kind::AuditLost.as_str()) {
                    s.push_str(&format!(
                        "; {lost} event{} NOT RECORDED (audit.lost)",
                        if *lost == 1 { "" } else { "s" }
                    ));
                }
                let l = &sum.llm;
                if l.requests > 0 {
                    s.push_str(&format!(
                        ", llm {} request{}, {} tokens, ${:.4}",
                        l.requests,
                        if l.requests == 1 { "" } else { "s" },
                        l.tokens_in + l.tokens_out,
                        l.cost_nanousd as f64 / 1e9
                    ));
                    if l.unknown_cost > 0 {
                        s.push_str(&format!(" (+{} of unknown cost)", l.unknown_cost));
                    }
                }
            }
            Err(e) => s.push_str(&format!(", audit log unreadable: {e}")),
        }
        s.push_str(&format!("; audit log {}", log.display()));
    }
    s
}

pub fn run(args: Args, root: &Path) -> Result<i32> {
    // Not blocking signals here: the container's process inherits this
    // thread's mask. The console threads block their own.
    let loaded = super::policy::load(&args.profile)?;
    let mut policy = loaded.policy;
    let ctx = Context::default();
    add_binds(&mut policy, &args, &ctx)?;
    let base = policy.clone();
    if args.learn.is_some() {
        // What learning needs to see: every connection the rules let
        // through, and every syscall made.
        if !policy.audit.record.iter().any(|k| k == "network.allowed") {
            policy.audit.record.push("network.allowed".into());
        }
        policy.audit.trace_syscalls = true;
    }
    let id = match &args.id {
        Some(raw) => ContainerId::parse(raw)?,
        None => ContainerId::generate("run"),
    };
    // The bundle is written here, from the person's policy, into a directory
    // only root writes: its alert targets are the host's configuration.
    let rt = Runtime::new(root, false)
        .with_annotation_alerts(true)
        .with_node(purple_policy::node::Node::host());
    if rt.exists(&id) {
        bail!("container \"{id}\" already exists: choose another --id");
    }
    let mut undertaker = super::undertaker::Undertaker::spawn(root, &id)?;
    let dir = rt.run_bundle(&id);
    rt.make_root()
        .with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::create_dir_all(root.join("bundles"))
        .with_context(|| format!("cannot create {}", root.join("bundles").display()))?;
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    undertaker.bundle_made();
    let bundle = BundleDir(dir.clone());
    // Others may pass (the sandbox's user namespace mounts the root from
    // inside) but not list.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    let rootfs = match &args.rootfs {
        Some(r) => r
            .canonicalize()
            .with_context(|| format!("--rootfs {}", r.display()))?,
        None => PathBuf::from("rootfs"),
    };
    let host_rootfs = dir.join(&rootfs);
    let mut command = args.command.clone();
    let env = environment(&args.env)?;
    command[0] = resolve_command(&policy, &env, &host_rootfs, &command[0])?;
    let terminal =
        !args.detach && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let process = Process {
        args: command,
        env,
        terminal,
    };
    let spec = translate::spec(&policy, &process, &rootfs)?;
    super::bundle_dir::write_bundle(&policy, &spec, &dir)?;
    super::interp::check(&policy, &host_rootfs, &process.args[0])?;

    let console = if terminal {
        Some(ConsoleSocket::listen(&dir.join("console.sock"))?)
    } else {
        None
    };
    if terminal {
        // libcontainer hands a terminal only to detached containers; as
        // subreaper this process still becomes the init's parent and reaps it.
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            bail!(
                "cannot become a subreaper: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let opts = CreateOptions {
        bundle: dir.clone(),
        console_socket: console.as_ref().map(|_| dir.join("console.sock")),
        detach: terminal || args.detach,
        tied_to_caller: !args.detach,
        launch: Some(Launch {
            profile: args.profile.clone(),
            command: process.args.clone(),
            output_limit: args.detach.then_some(DETACHED_OUTPUT_LIMIT),
            caller_pid: std::process::id(),
        }),
        ..CreateOptions::default()
    };
    let started = Instant::now();
    let run = Run::create(&rt, &id, &opts)?;
    if !args.detach {
        // Its supervisor watches this process now.
        undertaker.done();
    }
    // The effective copy under the state directory is the one that stays:
    // one file with the caller's environment values, not two.
    let config = dir.join("config.json");
    if let Err(e) = std::fs::remove_file(&config) {
        bail!("cannot remove {}: {e}", config.display());
    }
    let log = rt.record(&id).and_then(|r| r.audit_log);
    let io = match console {
        Some(c) => {
            let master = c.master().context("no terminal from the container")?;
            Some((RawTerminal::enter()?, console::proxy(master)?))
        }
        None => None,
    };
    run.start()?;
    if args.detach {
        // Started, it outlives this process by design.
        undertaker.done();
        run.detach();
        bundle.keep();
        println!("{id}");
        return Ok(0);
    }
    let code = run.wait();
    if let Some((raw, output)) = io {
        let _ = output.join();
        drop(raw);
    }
    let peak = peak_memory(&rt, &id);
    run.delete()?;
    let code = code?;
    if !args.quiet {
        let line = summary(code, started, peak, log.as_deref());
        eprintln!("{}", crate::escape::for_terminal(&line));
    }
    if let (Some(out), Some(log)) = (&args.learn, &log) {
        let measured = crate::learn::Measured {
            memory_peak: peak,
            wall_seconds: Some(started.elapsed().as_secs()),
        };
        let name = out
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| purple_policy::load::is_policy_name(s))
            .unwrap_or("learned");
        super::policy::learn_from(log, &base, &args.profile, name, measured, out, args.force)?;
    }
    Ok(code)
}
