//! Signed checkpoints: the host's ed25519 key signs the chain's head, so a
//! log rewritten with a recomputed chain, cut short or moved onto another
//! run is told apart from an intact one by anyone holding the public key.
//!
//! ed25519 rather than an HMAC with a host secret: checking an HMAC needs
//! the secret, so whoever can check a log could also forge one, and a log
//! could only be checked on the host that wrote it. A signature is checked
//! with the public half alone (`purple audit key`), elsewhere and by anyone.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use purple_policy::hostfs::{self, Scope};

/// The host's signing key (the 32-byte seed, hex): root's, 0600, in a 0700
/// directory.
pub const KEY_DIR: &str = "/var/lib/purple";
pub const KEY_FILE: &str = "audit-key";

/// A checkpoint is due after this many records past the last one...
pub const CHECKPOINT_RECORDS: u64 = 1000;
/// ...or this many seconds after the first record it would cover.
pub const CHECKPOINT_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit key {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("public key {0:?}: not 64 hex digits of an ed25519 public key")]
    Public(String),
}

fn key_path() -> String {
    format!("{KEY_DIR}/{KEY_FILE}")
}

fn io(source: std::io::Error) -> KeyError {
    KeyError::Io {
        path: key_path(),
        source,
    }
}

fn refused(reason: impl Into<String>) -> KeyError {
    KeyError::Refused {
        path: key_path(),
        reason: reason.into(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The directory of the key: made 0700 if missing; one that is not root's
/// is refused (its owner could swap the key).
fn key_dir() -> Result<File, KeyError> {
    let dir = hostfs::mkdirs(Path::new(KEY_DIR), 0o700).map_err(io)?;
    let meta = dir.metadata().map_err(io)?;
    if meta.uid() != 0 {
        return Err(refused(format!(
            "{KEY_DIR} is owned by uid {}, not root: remove it and let Purple create it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        dir.set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(io)?;
    }
    Ok(dir)
}

/// Reads the key file at `name` below `dir`; None when it does not exist.
/// A link, a non-regular file, a file not root's or readable by others is
/// refused: a key anyone else could have read or chosen signs nothing.
fn read_key(dir: &File, name: &Path) -> Result<Option<SigningKey>, KeyError> {
    let fd = match hostfs::openat2(
        dir.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
        Scope::Beneath,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused("is a symbolic link: remove it"))
        }
        Err(e) => return Err(io(hostfs::explain(e))),
    };
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(refused("is not a regular file: remove it"));
    }
    if meta.uid() != 0 {
        return Err(refused(format!(
            "is owned by uid {}, not root: remove it (a new key is made at first use)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refused(format!(
            "has mode {:o}: others may have read it; remove it (a new key is made at first use)",
            meta.mode() & 0o777
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let seed = unhex::<32>(&text).ok_or_else(|| refused("is not 64 hex digits"))?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// The host's signing key, created at first use.
pub fn host_key() -> Result<SigningKey, KeyError> {
    let dir = key_dir()?;
    if let Some(key) = read_key(&dir, Path::new(KEY_FILE))? {
        return Ok(key);
    }
    let mut seed = [0u8; 32];
    // SAFETY: getrandom writes at most `len` bytes into our buffer.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != seed.len() as isize {
        return Err(io(std::io::Error::last_os_error()));
    }
    // Written whole under a private name, then linked into place without
    // replacing: two first uses at once end with one key, never a half one.
    let tmp = format!(".{KEY_FILE}.{}", std::process::id());
    let fd = hostfs::openat2(
        dir.as_raw_fd(),
        Path::new(&tmp),
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
        Scope::Beneath,
    )
    .map_err(|e| io(hostfs::explain(e)))?;
    let mut f = File::from(fd);
    let written = f
        .write_all(hex(&seed).as_bytes())
        .and_then(|()| f.sync_all());
    let linked = written.and_then(|()| {
        let (from, to) = (
            std::ffi::CString::new(tmp.as_str()).expect("no NUL"),
            std::ffi::CString::new(KEY_FILE).expect("no NUL"),
        );
        // SAFETY: linkat on our directory fd with valid C strings.
        match unsafe {
            libc::linkat(
                dir.as_raw_fd(),
                from.as_ptr(),
                dir.as_raw_fd(),
                to.as_ptr(),
                0,
            )
        } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    let tmp_c = std::ffi::CString::new(tmp.as_str()).expect("no NUL");
    // SAFETY: unlinkat on our directory fd with a valid C string.
    unsafe { libc::unlinkat(dir.as_raw_fd(), tmp_c.as_ptr(), 0) };
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    read_key(&dir, Path::new(KEY_FILE))?.ok_or_else(|| refused("vanished while being created"))
}

/// A public key from its hex form (as `purple audit key` prints it).
pub fn public_key(hex_key: &str) -> Result<VerifyingKey, KeyError> {
    unhex::<32>(hex_key)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| KeyError::Public(hex_key.to_owned()))
}

pub fn public_hex(key: &VerifyingKey) -> String {
    hex(key.as_bytes())
}

/// What a checkpoint signs: which log (container), where in it (its own
/// sequence number and time) and the chain's head before it (`prev`, the
/// hash that links back to the first record and its run binding), and
/// whether it closes the log.
fn message(container_id: &str, seq: u64, time: &str, prev: &str, seal: bool) -> Vec<u8> {
    format!("purple-audit-checkpoint/1\n{container_id}\n{seq}\n{time}\n{prev}\n{seal}\n")
        .into_bytes()
}

/// The `details` of a checkpoint record.
pub(crate) fn sign(
    key: &SigningKey,
    container_id: &str,
    seq: u64,
    time: &str,
    prev: &str,
    seal: bool,
) -> serde_json::Value {
    let sig = key.sign(&message(container_id, seq, time, prev, seal));
    serde_json::json!({
        "seal": seal,
        "key": public_hex(&key.verifying_key()),
        "signature": hex(&sig.to_bytes()),
    })
}

/// Checks the checkpoint `rec` against `trusted`; the reason it fails.
pub(crate) fn check(rec: &crate::Record, trusted: &VerifyingKey) -> Result<bool, String> {
    let d = &rec.details;
    let seal = d["seal"]
        .as_bool()
        .ok_or("checkpoint without its seal flag")?;
    let signer = d["key"].as_str().ok_or("checkpoint without its key")?;
    let sig = d["signature"]
        .as_str()
        .and_then(unhex::<64>)
        .map(|b| Signature::from_bytes(&b))
        .ok_or("checkpoint without a well-formed signature")?;
    let msg = message(&rec.container_id, rec.seq, &rec.time, &rec.prev, seal);
    if trusted.verify(&msg, &sig).is_ok() {
        return Ok(seal);
    }
    let other = public_key(signer).ok();
    if signer != public_hex(trusted) && other.is_some_and(|k| k.verify(&msg, &sig).is_ok()) {
        return Err(format!(
            "re-signed with another key ({signer}), not the trusted one ({})",
            public_hex(trusted)
        ));
    }
    Err("signature mismatch: the chain before this checkpoint was rewritten".into())
}
