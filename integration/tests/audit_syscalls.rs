//! Seccomp decisions on real containers: a denied system call is answered
//! as the profile says and recorded once, for the init and for exec, and
//! the filter holds once the supervisor is gone.

use std::fs;

use purple_integration::audited::{
    delete_and_read, output_line, start_with, supervisor_pid, wait_gone,
};
use purple_integration::cli::{run_purple, stdout_ok};
use purple_integration::*;
use purple_runtime::audit;

#[test]
fn denied_syscall_is_recorded_once_and_answered_eperm() {
    let (oci, id, b) = start_with(
        &["sh", "-c", "mkdir /tmp/x; echo rc=$?; sleep 1000"],
        |_| {},
    );
    assert!(output_line(&b, "rc=").contains("rc=1"));
    assert!(read(b.path().join("stderr")).contains("Operation not permitted"));
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    let d = &denied[0];
    assert_eq!(d.comm.as_deref(), Some("mkdir"));
    assert!(d.pid.unwrap() > 1);
    assert!(d.details["syscall"] == "mkdir" || d.details["syscall"] == "mkdirat");
    assert_eq!(d.details["action"], "errno");
    assert_eq!(d.details["errno"], 1, "EPERM");
    assert_eq!(d.details["args"].as_array().unwrap().len(), 6);
    assert_eq!(d.rule.as_deref(), Some("seccomp #1 SCMP_ACT_ERRNO"));
    assert_eq!(d.policy.as_deref(), Some("test-policy"));
    let _ = fs::remove_file(audit::default_path(&id));
}

#[test]
fn kill_action_kills_the_caller() {
    let (oci, id, b) = start_with(
        &["sh", "-c", "hostname evil; echo rc=$?; sleep 1000"],
        |_| {},
    );
    assert!(output_line(&b, "rc=").contains("rc=137"));
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].details["syscall"], "sethostname");
    assert_eq!(denied[0].details["action"], "kill");
    assert_eq!(denied[0].comm.as_deref(), Some("hostname"));
    assert_eq!(
        denied[0].rule.as_deref(),
        Some("seccomp #2 SCMP_ACT_KILL_PROCESS")
    );
    let _ = fs::remove_file(audit::default_path(&id));
}

#[test]
fn exec_denials_are_recorded_like_inits() {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |_| {});
    // A connection that has not sent its fd yet (as an exec's, until its
    // executor runs) must not hold up the supervisor's other work.
    let socket = oci
        .root
        .path()
        .join(".purple")
        .join(&id)
        .join("seccomp.sock");
    let _idle = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let out = oci.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir /tmp/e; echo rc=$?; hostname evil; echo rc2=$?",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rc=1") && stdout.contains("rc2=137"),
        "{out:?}"
    );
    // The exec'd process holds neither the notify fd (it could answer its
    // own calls) nor the connection that carried it.
    let fds = oci.ok(&["exec", &id, "sh", "-c", "ls -l /proc/$$/fd"]);
    assert!(
        !fds.contains("seccomp") && !fds.contains("socket:"),
        "{fds}"
    );
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 2, "{denied:#?}");
    let mkdir = &denied[0];
    assert!(mkdir.details["syscall"] == "mkdir" || mkdir.details["syscall"] == "mkdirat");
    assert_eq!(mkdir.comm.as_deref(), Some("mkdir"));
    assert!(mkdir.pid.unwrap() > 1);
    assert_eq!(mkdir.details["action"], "errno");
    assert_eq!(mkdir.details["errno"], 1);
    assert_eq!(mkdir.rule.as_deref(), Some("seccomp #1 SCMP_ACT_ERRNO"));
    assert_eq!(mkdir.policy.as_deref(), Some("test-policy"));
    let kill = &denied[1];
    assert_eq!(kill.details["syscall"], "sethostname");
    assert_eq!(kill.details["action"], "kill");
    assert_eq!(kill.comm.as_deref(), Some("hostname"));
    assert_eq!(
        kill.rule.as_deref(),
        Some("seccomp #2 SCMP_ACT_KILL_PROCESS")
    );
    let log = audit::default_path(&id);
    assert!(stdout_ok(run_purple(
        &oci,
        &["audit", "verify", "--path", log.to_str().unwrap()]
    ))
    .contains("hash chain intact"));
    let _ = fs::remove_file(&log);
}

#[test]
fn exec_is_still_filtered_once_the_supervisor_is_gone() {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |_| {});
    let sup = supervisor_pid(&oci, &id);
    // SAFETY: kill(2) on the supervisor this test's container started.
    assert_eq!(unsafe { libc::kill(sup as i32, libc::SIGKILL) }, 0);
    wait_gone(sup);
    let out = oci.run(&["exec", &id, "sh", "-c", "mkdir /tmp/f; echo rc=$?"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=1"),
        "{out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
    let _ = fs::remove_file(audit::default_path(&id));
}
