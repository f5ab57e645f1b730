//! eBPF network enforcement for Purple containers.
