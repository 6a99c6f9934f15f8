//! Reading a process's CPU time and resident memory from /proc.

use std::fs;

/// Kernel clock ticks per second for /proc/PID/stat (`USER_HZ`). It is 100
/// on every Linux architecture this tool runs on; std offers no sysconf.
pub const CLK_TCK: u64 = 100;

/// A snapshot of a process's resource usage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// utime + stime over all threads, in microseconds.
    pub cpu_us: u64,
    /// utime alone (user space), in microseconds. The kernel samples the split at its clock
    /// ticks, so only the sum is exact; over a window of seconds the split is a fair estimate.
    pub user_us: u64,
    /// VmRSS in bytes.
    pub rss: u64,
}

/// Reads utime+stime and VmRSS of `pid` ("self" for this process).
pub fn usage(pid: &str) -> Result<Usage, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name may contain spaces or parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')').ok_or("malformed stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let tick = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed /proc/{pid}/stat"))
    };
    let user = tick(11)?;
    let ticks = user + tick(12)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Usage {
        cpu_us: ticks * 1_000_000 / CLK_TCK,
        user_us: user * 1_000_000 / CLK_TCK,
        rss: rss_kb * 1024,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_self() {
        let u = super::usage("self").unwrap();
        assert!(u.rss > 0);
    }
}
