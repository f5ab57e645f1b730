//! Whether the program `purple run` starts can load in the sandbox: a
//! dynamic ELF program whose interpreter (`/lib64/ld-linux-x86-64.so.2`) is
//! not in the sandbox, or a script whose `#!` interpreter is not, fails in
//! execve with ENOENT, and libcontainer's init exits 255 without a word.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};
use purple_policy::schema::Policy;

/// Symbolic links followed before giving up (as the kernel's ELOOP).
const MAX_LINKS: u32 = 40;
/// Scripts whose interpreter is itself a script are followed this deep.
const MAX_DEPTH: u32 = 4;

/// Fails naming the missing interpreter of `program` (a sandbox path) and
/// the bind that provides it.
pub fn check(policy: &Policy, rootfs: &Path, program: &str) -> Result<()> {
    let mut program = PathBuf::from(program);
    for _ in 0..MAX_DEPTH {
        let Some(host) = resolve(policy, rootfs, &program) else {
            // The program itself: resolve_command already looked for it.
            return Ok(());
        };
        let Some(interp) = interpreter(&host) else {
            return Ok(());
        };
        if resolve(policy, rootfs, &interp).is_none() {
            let top = interp
                .components()
                .find_map(|c| match c {
                    Component::Normal(n) => Some(Path::new("/").join(n)),
                    _ => None,
                })
                .unwrap_or_else(|| interp.clone());
            bail!(
                "{}: its interpreter {} is not in the sandbox, so it cannot start; \
                 bind it, e.g. `-v {top}:{top}:ro` or the policy's filesystem.immutable_paths \
                 entry {{ host_path: {top}, sandbox_path: {top} }} (on a merged-/usr host, binding \
                 all of /usr makes the sandbox's {top} a link into it)",
                program.display(),
                interp.display(),
                top = top.display()
            );
        }
        program = interp;
    }
    Ok(())
}

/// Where sandbox path `path` is on the host, following symbolic links as
/// the sandbox will see them (through the policy's binds and the links in
/// the root); None if it is not there.
fn resolve(policy: &Policy, rootfs: &Path, path: &Path) -> Option<PathBuf> {
    let mut done = PathBuf::from("/");
    let mut rest: VecDeque<OsString> = VecDeque::new();
    push_front(&mut rest, path);
    let mut links = 0;
    while let Some(part) = rest.pop_front() {
        if part == ".." {
            done.pop();
            continue;
        }
        let cand = done.join(&part);
        let host = super::run::host_view(policy, rootfs, &cand.to_string_lossy());
        let bind_point = binds(policy).any(|b| Path::new(&b.sandbox_path) == cand);
        let meta = fs::symlink_metadata(&host).ok()?;
        // The kernel follows a bind's source link when it mounts it.
        if meta.file_type().is_symlink() && !bind_point {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            if target.is_absolute() {
                done = PathBuf::from("/");
            }
            push_front(&mut rest, &target);
        } else {
            done = cand;
        }
    }
    let host = super::run::host_view(policy, rootfs, &done.to_string_lossy());
    host.exists().then_some(host)
}

fn binds(policy: &Policy) -> impl Iterator<Item = &purple_policy::schema::Bind> {
    policy
        .filesystem
        .immutable_paths
        .iter()
        .chain(&policy.filesystem.output_paths)
}

fn push_front(rest: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => rest.push_front(n.to_owned()),
            Component::ParentDir => rest.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// The interpreter a file asks for: PT_INTERP of an ELF program, the `#!`
/// line of a script; None for a static program or anything unreadable.
fn interpreter(file: &Path) -> Option<PathBuf> {
    let mut head = Vec::new();
    fs::File::open(file)
        .ok()?
        .take(256 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next()?;
        let text = std::str::from_utf8(line).ok()?;
        let first = text.split_whitespace().next()?;
        return Some(PathBuf::from(first)).filter(|p| p.is_absolute());
    }
    elf_interp(&head)
}

/// PT_INTERP of a 32- or 64-bit little-endian ELF file (its first bytes).
fn elf_interp(b: &[u8]) -> Option<PathBuf> {
    if b.get(..4)? != b"\x7fELF" || *b.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64_at =
        |o: usize| usize::try_from(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)).ok();
    // (phoff, phentsize, phnum), then per header (offset, filesz) readers.
    let (phoff, phentsize, phnum, wide) = match b.get(4)? {
        1 => (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?, false),
        2 => (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?, true),
        _ => return None,
    };
    for i in 0..phnum {
        let h = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(h)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if wide {
            (u64_at(h + 8)?, u64_at(h + 32)?)
        } else {
            (u32_at(h + 4)?, u32_at(h + 16)?)
        };
        let raw = b.get(off..off.checked_add(size)?)?;
        let raw = raw.split(|&c| c == 0).next()?;
        return Some(PathBuf::from(std::str::from_utf8(raw).ok()?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_of_a_host_program_is_read() {
        let interp = interpreter(Path::new("/usr/bin/python3")).expect("python3 is dynamic");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert_eq!(
            interpreter(Path::new("/bin/busybox")),
            None,
            "busybox-static"
        );
    }

    #[test]
    fn truncated_or_hostile_elf_headers_are_no_interpreter() {
        let real = fs::read("/usr/bin/python3").unwrap();
        for n in [0, 4, 16, 63, 64, 200] {
            let _ = elf_interp(&real[..n.min(real.len())]);
        }
        let mut bad = real[..4096.min(real.len())].to_vec();
        bad[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(elf_interp(&bad), None);
    }
}
