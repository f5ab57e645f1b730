//! Output binds with a size (`output_paths[].max_size`) and the per-file cap
//! (`filesystem.max_file_size`), as attacks: an agent writing as fast as it
//! can into its output bind is stopped at the limit and recorded on the
//! host's root filesystem (supervisor) and refused with EDQUOT on a
//! filesystem with project quotas (a loop-mounted ext4 made here; where the
//! kernel cannot mount its quotas, the same filesystem proves the
//! supervisor's watch); a file
//! past the per-file cap fails with EFBIG; bad limits are refused by name;
//! nothing is left after, the quota's project id and limit included.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use purple_integration::*;
use purple_runtime::{audit, diskwatch};
use serde_json::Value;

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

/// A work directory a sandbox's ids may pass through (tempdir makes 0700).
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o711)).unwrap();
    d
}

/// `purple run --profile policy.yaml` of `script` in a busybox root; returns
/// (exit code, stdout, stderr, the run's records of `kind`) after checking
/// nothing of the run is left.
fn run(
    work: &Path,
    oci: &Oci,
    rootfs: &Path,
    id: &str,
    script: &str,
    kind: &str,
) -> (Option<i32>, String, String, Vec<Value>) {
    let out = purple_in(
        work,
        oci,
        &[
            "run",
            "--profile",
            "policy.yaml",
            "--id",
            id,
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--no-workdir",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_no_leftovers(oci, id);
    assert!(
        !oci.root.path().join("bundles").join(id).exists(),
        "bundle of {id} left behind"
    );
    let records = audit::verify(&audit::default_path(id))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.details)
        .collect();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        records,
    )
}

const MIB: u64 = 1 << 20;

#[test]
fn writer_filling_an_output_bind_on_the_root_fs_is_stopped_and_recorded() {
    let work = workdir();
    let b = TestBundle::new(&["true"]);
    let oci = Oci::new();
    fs::write(
        work.path().join("policy.yaml"),
        "name: outlimit\nfilesystem:\n  output_paths:\n    \
         - { host_path: ./out, sandbox_path: /out, max_size: 16M }\n",
    )
    .unwrap();
    let id = unique_id("outfill");
    // As fast as dd goes, 4 GiB asked: far past the limit if nothing stops it.
    let (code, stdout, stderr, disk) = run(
        work.path(),
        &oci,
        &b.path().join("rootfs"),
        &id,
        "dd if=/dev/zero of=/out/fill bs=1M count=4096 2>&1; echo finished",
        "resource.disk",
    );
    assert!(
        !stdout.contains("finished"),
        "the writer was not stopped: {stdout}{stderr}"
    );
    assert_eq!(code, Some(137), "not killed: {stdout}{stderr}");
    assert_eq!(disk.len(), 1, "{disk:#?}");
    let d = &disk[0];
    assert_eq!(d["path"], "/out");
    assert_eq!(d["limit_bytes"], 16 * MIB);
    assert_eq!(d["enforced_by"], "supervisor");
    assert!(d["used_bytes"].as_u64().unwrap() >= 16 * MIB, "{d}");
    let written = fs::metadata(work.path().join("out/fill")).unwrap().len();
    // The overshoot docs/policy.md quotes: what dd wrote past the limit
    // before the kill landed.
    eprintln!(
        "overshoot: {} MiB written for a 16 MiB limit (record saw {} bytes)",
        written / MIB,
        d["used_bytes"]
    );
    assert!(
        written < 1024 * MIB,
        "{written} bytes written: not stopped near the limit"
    );
}

/// A loop-mounted ext4 with the `project` feature, mounted `prjquota` where
/// the kernel can (CONFIG_QFMT_V2), else without quotas; unmounted (its loop
/// device freed) on drop.
struct LoopExt4 {
    dir: tempfile::TempDir,
    quotas: bool,
}

impl LoopExt4 {
    fn new() -> Self {
        let dir = workdir();
        let img = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let sh = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(Command::new("truncate").arg("-s").arg("128M").arg(&img));
        sh(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "256", "-O", "project,quota"])
            .arg(&img));
        let mount = |opts: &str| {
            Command::new("mount")
                .args(["-o", opts])
                .arg(&img)
                .arg(&mnt)
                .output()
                .unwrap()
                .status
                .success()
        };
        let quotas = mount("loop,prjquota");
        if !quotas {
            // A kernel without CONFIG_QFMT_V2 (this test machine's) cannot
            // mount quotas: the same filesystem without them then proves the
            // supervisor's watch on a filesystem of its own.
            sh(Command::new("tune2fs").args(["-O", "^quota"]).arg(&img));
            assert!(mount("loop"), "cannot mount {}", img.display());
            eprintln!("no ext4 project quotas on this kernel: testing the supervisor's watch");
        }
        fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir, quotas }
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
    }
}

/// On a filesystem with project quotas the writer gets EDQUOT, appending to
/// a file of an earlier run too, and delete removes the project; without
/// them, the supervisor stops it. Either way it is recorded and the tree is
/// in no project after.
#[test]
fn writer_past_the_limit_on_an_ext4_of_its_own_is_refused_or_stopped() {
    let ext4 = LoopExt4::new();
    let out_dir = ext4.mnt().join("out");
    // A file of an earlier run: counted against the limit too.
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("old"), vec![1u8; 2 * MIB as usize]).unwrap();
    let work = workdir();
    let b = TestBundle::new(&["true"]);
    let oci = Oci::new();
    fs::write(
        work.path().join("policy.yaml"),
        format!(
            "name: quota\nfilesystem:\n  output_paths:\n    \
             - {{ host_path: {}, sandbox_path: /out, max_size: 8M }}\n",
            out_dir.display()
        ),
    )
    .unwrap();
    let id = unique_id("outquota");
    let (code, stdout, stderr, disk) = run(
        work.path(),
        &oci,
        &b.path().join("rootfs"),
        &id,
        "dd if=/dev/zero of=/out/fill bs=1M count=64 2>&1; echo rc=$?; \
         cat /out/old >> /out/old 2>&1; echo append=$?; sleep 2",
        "resource.disk",
    );
    assert_eq!(disk.len(), 1, "{disk:#?}\n{stdout}{stderr}");
    assert_eq!(disk[0]["path"], "/out");
    assert_eq!(disk[0]["limit_bytes"], 8 * MIB);
    if ext4.quotas {
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(stdout.contains("Disk quota exceeded"), "{stdout}{stderr}");
        assert!(stdout.contains("rc=1"), "{stdout}");
        assert!(
            stdout.contains("append=1"),
            "the old file escaped the quota: {stdout}"
        );
        let total: u64 = ["fill", "old"]
            .iter()
            .map(|f| fs::metadata(out_dir.join(f)).unwrap().len())
            .sum();
        assert!(
            total <= 8 * MIB,
            "{total} bytes in a directory limited to 8 MiB"
        );
        assert_eq!(disk[0]["enforced_by"], "project quota");
        let project = disk[0]["project"].as_u64().unwrap() as u32;
        assert_eq!(diskwatch::project_limit(&out_dir, project).unwrap(), 0);
    } else {
        assert_eq!(code, Some(137), "not killed: {stdout}{stderr}");
        assert!(
            !stdout.contains("rc="),
            "the writer was not stopped: {stdout}"
        );
        assert_eq!(disk[0]["enforced_by"], "supervisor");
        assert!(disk[0]["used_bytes"].as_u64().unwrap() >= 8 * MIB);
    }
    // Nothing of a project is left on the tree.
    for p in [&out_dir, &out_dir.join("fill"), &out_dir.join("old")] {
        assert_eq!(
            diskwatch::project_of(p).unwrap(),
            None,
            "{} still in a project",
            p.display()
        );
    }
}

#[test]
fn file_past_the_per_file_cap_fails_with_efbig() {
    let work = workdir();
    let b = TestBundle::new(&["true"]);
    let oci = Oci::new();
    fs::write(
        work.path().join("policy.yaml"),
        "name: fsize\nfilesystem:\n  scratch_paths: [/tmp]\n  max_file_size: 1M\n",
    )
    .unwrap();
    let id = unique_id("fsize");
    // SIGXFSZ ignored, so the write itself fails (EFBIG) and dd says so.
    let (code, stdout, stderr, _) = run(
        work.path(),
        &oci,
        &b.path().join("rootfs"),
        &id,
        "trap '' XFSZ; dd if=/dev/zero of=/tmp/big bs=64k count=64 2>&1; echo rc=$?; \
         wc -c < /tmp/big; dd if=/dev/zero of=/tmp/small bs=64k count=8 2>/dev/null; echo small=$?",
        "lifecycle",
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("File too large"), "{stdout}");
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}\n", MIB)),
        "not cut at 1 MiB: {stdout}"
    );
    assert!(
        stdout.contains("small=0"),
        "a file under the cap failed: {stdout}"
    );
}

#[test]
fn bad_limits_are_refused_by_name_and_leave_nothing() {
    let work = workdir();
    let oci = Oci::new();
    for (yaml, field, says) in [
        (
            "output_paths:\n    - { host_path: ./o, sandbox_path: /o, max_size: 0 }",
            "output_paths[0].max_size",
            "0",
        ),
        (
            "output_paths:\n    - { host_path: ./o, sandbox_path: /o, max_size: lots }",
            "output_paths[0].max_size",
            "lots",
        ),
        (
            "immutable_paths:\n    - { host_path: /usr, sandbox_path: /usr, max_size: 1G }",
            "max_size",
            "unknown field",
        ),
        ("max_file_size: -1", "max_file_size", "-1"),
    ] {
        fs::write(
            work.path().join("policy.yaml"),
            format!("name: bad\nfilesystem:\n  {yaml}\n"),
        )
        .unwrap();
        let id = unique_id("badlimit");
        let out = purple_in(
            work.path(),
            &oci,
            &["run", "--profile", "policy.yaml", "--id", &id, "--", "true"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {stderr}");
        assert!(
            stderr.contains(field) && stderr.contains(says),
            "{yaml}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "{yaml}: {stderr}");
        assert_no_leftovers(&oci, &id);
        assert!(
            !work.path().join("o").exists(),
            "{yaml}: output dir created"
        );
    }

    // Under purple-oci a bundle author's annotation may only limit a bind of
    // the bundle's own spec: anything else fails the create, leaving nothing.
    let b = TestBundle::new(&["true"]);
    b.edit(|c| {
        c["annotations"]["io.purple.session"] =
            Value::from(r#"{"output_limits":[{"path":"/etc","max_bytes":1024}]}"#);
    });
    let id = unique_id("badann");
    let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("output_limits names /etc"), "{stderr}");
    assert_no_leftovers(&oci, &id);
}
