//! The audit log as evidence, on logs of real sandboxes: `purple audit
//! verify` tells a closed log from an open one (its writer alive or dead,
//! the unsigned tail named), one cut short, and forgeries: a record changed
//! with the chain recomputed, a log re-signed with another key, a log moved
//! onto another run.

use std::fs;
use std::path::Path;
use std::process::Output;

use purple_integration::audited::{delete_and_wait, start_with, supervisor_pid, wait_gone};
use purple_integration::cli::{combined, run_purple, stdout_ok};
use purple_integration::*;
use purple_runtime::audit::{self, AuditLog, Record, SigningKey, GENESIS};
use serde_json::json;

/// `purple audit verify` of `args`: its exit code and what it said.
fn verify(oci: &Oci, args: &[&str]) -> (i32, String) {
    let mut full = vec!["audit", "verify"];
    full.extend_from_slice(args);
    let out: Output = run_purple(oci, &full);
    (out.status.code().unwrap(), combined(&out))
}

fn verify_path(oci: &Oci, log: &Path) -> (i32, String) {
    verify(oci, &["--path", log.to_str().unwrap()])
}

fn lines(log: &Path) -> Vec<String> {
    read(log).lines().map(str::to_owned).collect()
}

fn write_lines(log: &Path, lines: &[String]) {
    fs::write(log, lines.join("\n") + "\n").unwrap();
}

/// Rewrites the log as someone who can write the file, but has not the
/// host's key, would: `keep` chooses records, `edit` changes them, and the
/// chain is recomputed so that every `prev` matches again.
fn rechain(log: &Path, keep: impl Fn(&Record) -> bool, edit: impl Fn(&mut Record)) {
    let mut prev = GENESIS.to_owned();
    let mut seq = 0;
    let out: Vec<String> = lines(log)
        .iter()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .filter(|r| keep(r))
        .map(|mut r| {
            edit(&mut r);
            seq += 1;
            r.seq = seq;
            r.prev = prev.clone();
            let line = serde_json::to_string(&r).unwrap();
            prev = audit::digest(line.as_bytes());
            line
        })
        .collect();
    write_lines(log, &out);
}

/// A sandbox run to its end: created, started, deleted.
fn finished_log() -> (Oci, String, std::path::PathBuf) {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |_| {});
    delete_and_wait(&oci, &id);
    assert_no_leftovers(&oci, &id);
    let log = audit::default_path(&id);
    (oci, id, log)
}

#[test]
fn a_deleted_sandbox_log_is_closed_and_a_cut_one_truncated() {
    let (oci, id, log) = finished_log();
    let (code, said) = verify(&oci, &[&id]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("intact and closed"), "{said}");
    let recs = audit::verify(&log).unwrap();
    // The first record binds the run: a random id and the digests of the
    // policy and the bundle it ran.
    let created = &recs[0];
    assert_eq!(created.details["event"], "created");
    for field in ["run", "policy_digest", "bundle_digest"] {
        let v = created.details[field].as_str().unwrap_or_default();
        assert!(
            v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            "{field}: {created:?}"
        );
    }
    assert_eq!(recs.last().unwrap().kind, "audit.checkpoint");
    assert_eq!(recs.last().unwrap().details["seal"], true);

    // Checked elsewhere with the public key alone.
    let public = stdout_ok(run_purple(&oci, &["audit", "key"]));
    let public = public.trim();
    assert_eq!(public.len(), 64, "{public}");
    let (code, said) = verify(&oci, &["--path", log.to_str().unwrap(), "--key", public]);
    assert_eq!(code, 0, "{said}");
    // Not with another one.
    let other = audit::seal::public_hex(&SigningKey::from_bytes(&[9; 32]).verifying_key());
    let (code, said) = verify(&oci, &["--path", log.to_str().unwrap(), "--key", &other]);
    assert_eq!(code, 5, "{said}");

    let whole = lines(&log);
    // The seal cut off, then `deleted` too: the chain holds, the end is gone.
    for cut in [1, 2] {
        write_lines(&log, &whole[..whole.len() - cut]);
        let (code, said) = verify_path(&oci, &log);
        assert_eq!(code, 4, "{said}");
        assert!(
            said.contains("truncated") && said.contains("no longer exists"),
            "{said}"
        );
    }
    // Cut at an earlier checkpoint: nothing unsigned, but no seal either.
    let at = whole
        .iter()
        .rposition(|l| l.contains("\"audit.checkpoint\"") && l.contains("\"seal\":false"))
        .unwrap();
    write_lines(&log, &whole[..=at]);
    let (code, said) = verify_path(&oci, &log);
    assert_eq!(code, 4, "{said}");
    fs::remove_file(&log).unwrap();
}

#[test]
fn a_rewritten_log_is_forged_even_with_its_chain_recomputed() {
    let (oci, _id, log) = finished_log();
    let whole = lines(&log);
    // One record changed, every `prev` after it recomputed.
    rechain(
        &log,
        |_| true,
        |r| {
            if r.details["event"] == "started" {
                r.details["event"] = json!("nothing happened");
            }
        },
    );
    let (code, said) = verify_path(&oci, &log);
    assert_eq!(code, 5, "{said}");
    assert!(
        said.contains("forged") && said.contains("signature mismatch"),
        "{said}"
    );

    // The checkpoints removed, the chain recomputed and signed again with
    // a key of the forger's own.
    write_lines(&log, &whole);
    rechain(&log, |r| r.kind != "audit.checkpoint", |_| {});
    let (code, said) = verify_path(&oci, &log);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("no signed checkpoint"), "{said}");
    let id = serde_json::from_str::<Record>(&whole[0])
        .unwrap()
        .container_id;
    AuditLog::open(&log, &id, Some("test-policy"))
        .unwrap()
        .append_signed(&[], &SigningKey::from_bytes(&[7; 32]), true)
        .unwrap();
    let (code, said) = verify_path(&oci, &log);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("re-signed with another key"), "{said}");

    write_lines(&log, &whole);
    assert_eq!(verify_path(&oci, &log).0, 0);
    fs::remove_file(&log).unwrap();
}

#[test]
fn a_log_moved_onto_another_run_is_forged() {
    // Another container's intact log in this one's place.
    let (oci, a, log_a) = finished_log();
    let (oci_b, b, _bundle) = start_with(&["sleep", "1000"], |_| {});
    let log_b = audit::default_path(&b);
    let own = fs::read(&log_b).unwrap();
    fs::write(&log_b, fs::read(&log_a).unwrap()).unwrap();
    let (code, said) = verify(&oci_b, &[&b]);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("moved onto another run"), "{said}");
    fs::write(&log_b, own).unwrap();
    delete_and_wait(&oci_b, &b);
    assert_no_leftovers(&oci_b, &b);
    fs::remove_file(&log_b).unwrap();

    // The same ID run again: the first run's sealed log, shown for the
    // second run, is not the second run's.
    let bundle = TestBundle::new(&["sleep", "1000"]);
    bundle.edit(|c| c["annotations"] = json!({"io.purple.policy.name": "test-policy"}));
    let first = fs::read(&log_a).unwrap();
    oci.create(&a, &bundle, &[]);
    let (code, said) = verify(&oci, &[&a]);
    assert_eq!(code, 3, "the second run is open: {said}");
    fs::write(&log_a, &first).unwrap();
    let (code, said) = verify(&oci, &[&a]);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("moved onto another run"), "{said}");
    oci.ok(&["delete", "--force", &a]);
    assert_no_leftovers(&oci, &a);
    fs::remove_file(&log_a).unwrap();
}

#[test]
fn the_open_log_of_a_killed_supervisor_names_its_unsigned_tail() {
    let oci = Oci::new();
    let bundle = TestBundle::new(&["sleep", "1000"]);
    bundle.edit(|c| c["annotations"] = json!({"io.purple.policy.name": "test-policy"}));
    let id = unique_id("evidence");
    oci.create(&id, &bundle, &[]);
    let log = audit::default_path(&id);
    let (code, said) = verify(&oci, &[&id]);
    assert_eq!(code, 3, "{said}");
    assert!(
        said.contains("intact but open") && said.contains("is still running"),
        "{said}"
    );
    let sup = supervisor_pid(&oci, &id);
    // SAFETY: kill(2) on the supervisor this test's container started.
    unsafe { libc::kill(sup as i32, libc::SIGKILL) };
    wait_gone(sup);
    // `start` writes `started`; no supervisor is left to sign it.
    oci.ok(&["start", &id]);
    let started = audit::records(&log)
        .unwrap()
        .into_iter()
        .find(|r| r.details["event"] == "started")
        .unwrap();
    let (code, said) = verify(&oci, &[&id]);
    assert_eq!(code, 3, "{said}");
    assert!(
        said.contains(&format!(
            "record {} is after the last checkpoint",
            started.seq
        )) && said.contains(&format!("supervisor pid {sup}) died")),
        "{said}"
    );
    // `delete` seals it: closed again.
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
    let (code, said) = verify(&oci, &["--path", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{said}");
    fs::remove_file(&log).unwrap();
}

/// Retention through a real delete: a sealed log older than the host's
/// limit (Purple's default, 30 days) is gone; one without a seal stays
/// whatever its age (its container may still run, or its end was cut: both
/// evidence); a recent sealed one stays.
#[test]
fn delete_prunes_old_sealed_logs_and_never_an_open_one() {
    let dir = Path::new(audit::LOG_DIR).join(unique_id("retention"));
    fs::create_dir_all(&dir).unwrap();
    let (_oci, _id, sealed) = finished_log();
    let text = fs::read_to_string(&sealed).unwrap();
    let aged = |name: &str, text: &str, days: u64| {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
        p
    };
    let old = aged("old.jsonl", &text, 45);
    let recent = aged("recent.jsonl", &text, 2);
    // Without its last two lines (`deleted` and the seal): never pruned.
    let cut: Vec<&str> = text.lines().collect();
    let cut = cut[..cut.len() - 2].join("\n") + "\n";
    let open = aged("open.jsonl", &cut, 400);

    let (_oci, _id, log) = finished_log();
    assert!(!old.exists(), "a sealed log of 45 days survived a delete");
    assert!(open.exists() && recent.exists());
    assert!(log.exists() && sealed.exists());
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&log);
    let _ = fs::remove_file(&sealed);
}
