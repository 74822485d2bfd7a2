//! Latency samples and what the benchmark reads from `/proc`.
//!
//! Why exact samples: a run is bounded in calls ([`SAMPLES_MAX`]), so keeping every sample
//! (8 bytes each) costs at most a few tens of MiB and gives exact percentiles.

use std::time::Duration;

/// The most samples one series keeps; beyond it samples are counted but not kept.
pub const SAMPLES_MAX: usize = 4_000_000;

/// One series of durations, in microseconds.
#[derive(Default)]
pub struct Samples {
    /// Kept samples, in microseconds.
    us: Vec<u64>,
    /// Samples offered beyond [`SAMPLES_MAX`].
    dropped: u64,
}

/// Percentiles of a series, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Samples in the series.
    pub count: usize,
    /// Median, in ms.
    pub p50_ms: f64,
    /// 90th percentile, in ms.
    pub p90_ms: f64,
    /// 99th percentile, in ms.
    pub p99_ms: f64,
    /// Largest, in ms.
    pub max_ms: f64,
}

impl Samples {
    /// Keep one sample.
    pub fn push(&mut self, us: u64) {
        if self.us.len() < SAMPLES_MAX {
            self.us.push(us);
        } else {
            self.dropped += 1;
        }
    }

    /// Take in another series.
    pub fn extend(&mut self, other: Samples) {
        for us in other.us {
            self.push(us);
        }
        self.dropped += other.dropped;
    }

    /// Samples not kept because the series was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sort and summarise.
    pub fn summary(&mut self) -> Summary {
        self.us.sort_unstable();
        let n = self.us.len();
        if n == 0 {
            return Summary::default();
        }
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            self.us[rank] as f64 / 1000.0
        };
        Summary {
            count: n,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: self.us[n - 1] as f64 / 1000.0,
        }
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// `VmHWM` (peak resident), in KiB.
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> std::io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// Clock ticks per second of `/proc` CPU times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime from the text of a `stat` file (process or thread).
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_sec(),
    ))
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu(pid: u32) -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time used so far by this process's threads whose name starts with `prefix`.
pub fn own_threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        if let Some(cpu) = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|s| stat_cpu(&s))
        {
            total += cpu;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact() {
        let mut samples = Samples::default();
        for us in 1..=100 {
            samples.push(us * 1000);
        }
        let s = samples.summary();
        assert_eq!(
            (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "12 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        let ticks = ticks_per_sec();
        assert_eq!(stat_cpu(line), Some(Duration::from_secs_f64(300.0 / ticks)));
    }
}
