//! Sizes the kernel side holds: the BPF maps and rule values are built with
//! these (passed to clang as -D by ebpf/build.rs), and the loader refuses a
//! policy that would not fit before anything reaches the kernel.

/// Capacity of each LPM trie (rules per address family).
pub const MAX_RULES: usize = 65536;
/// Port ranges one rule can hold.
pub const MAX_PORT_RANGES: usize = 8;
/// Bytes of each traced container's activity ring (a power of two pages).
pub const TRAIL_RING_BYTES: usize = 1 << 20;
/// Containers the host's activity trail can follow at once.
pub const TRAIL_CONTAINERS: usize = 4096;
/// Syscall numbers counted per entry point (`trace_syscalls`): above
/// x86_64's and i386's tables (both end below 470 in Linux 6.18).
pub const TRAIL_SYSCALL_NRS: usize = 512;
