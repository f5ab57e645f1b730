//! Names that stand for several system calls. The kernel offers most
//! operations through more than one call (`mkdir` and `mkdirat`, `open`,
//! `openat` and `openat2`, the new mount API beside `mount`), so a deny list
//! naming one of them covers them all; `docs/policy.md` lists the families.

/// Each family: the name a policy writes, then every call it covers.
pub const FAMILIES: &[&[&str]] = &[
    &["open", "open", "openat", "openat2", "creat"],
    &["mkdir", "mkdir", "mkdirat"],
    &["mknod", "mknod", "mknodat"],
    &["rename", "rename", "renameat", "renameat2"],
    &["stat", "stat", "fstat", "lstat", "newfstatat", "statx"],
    &["chown", "chown", "fchown", "lchown", "fchownat"],
    &["chmod", "chmod", "fchmod", "fchmodat", "fchmodat2"],
    &["link", "link", "linkat"],
    &["unlink", "unlink", "unlinkat"],
    &["symlink", "symlink", "symlinkat"],
    &["readlink", "readlink", "readlinkat"],
    &["access", "access", "faccessat", "faccessat2"],
    &["utimes", "utime", "utimes", "futimesat", "utimensat"],
    &["truncate", "truncate", "ftruncate"],
    &["execve", "execve", "execveat"],
    &["clone", "clone", "clone3"],
    &["fork", "fork", "vfork"],
    &[
        "kill",
        "kill",
        "tkill",
        "tgkill",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "pidfd_send_signal",
    ],
    &["dup", "dup", "dup2", "dup3"],
    &["pipe", "pipe", "pipe2"],
    &["chdir", "chdir", "fchdir"],
    &["setuid", "setuid", "setreuid", "setresuid"],
    &["setgid", "setgid", "setregid", "setresgid"],
    &["setxattr", "setxattr", "lsetxattr", "fsetxattr"],
    &["removexattr", "removexattr", "lremovexattr", "fremovexattr"],
    &[
        "mount",
        "mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
    ],
    &["umount", "umount", "umount2"],
    &["kexec_load", "kexec_load", "kexec_file_load"],
    &["init_module", "init_module", "finit_module"],
    &["process_vm_readv", "process_vm_readv", "process_vm_writev"],
    &[
        "io_uring_setup",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ],
    &["inotify_init", "inotify_init", "inotify_init1"],
    &["eventfd", "eventfd", "eventfd2"],
    &["signalfd", "signalfd", "signalfd4"],
    &["epoll_create", "epoll_create", "epoll_create1"],
    &["getdents", "getdents", "getdents64"],
];

/// The io_uring calls: its operations (openat, mkdirat, connect, …) run in
/// the kernel without passing the seccomp filter.
pub const IO_URING: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// Every call `name` covers: its family when it heads one, else itself.
pub fn members(name: &str) -> Vec<&str> {
    match FAMILIES.iter().find(|f| f[0] == name) {
        Some(f) => f[1..].to_vec(),
        None => vec![name],
    }
}
