//! This machine, as notifications and metrics name it.

/// The name of this machine: `/proc/sys/kernel/hostname` (the container's name in a sidecar
/// whose compose file gives it a `hostname`, else its short id).
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}
