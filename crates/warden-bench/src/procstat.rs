//! CPU and memory from /proc: of the cluster's members (the busiest is the leader under
//! load), of this process, and of everything else on the machine, so a run disturbed by
//! another process can be seen and repeated.

use std::time::Instant;

/// Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux everywhere).
const TICKS_PER_S: f64 = 100.0;

/// A process's CPU time (ticks) and resident memory (bytes), if it is alive.
fn process(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line, 12 and 13 here.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let rss_pages = fields.get(21)?.parse::<u64>().ok()?;
    Some((ticks, rss_pages * 4096))
}

/// The largest resident memory among `pids`, bytes.
pub(crate) fn busiest_rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| process(*p)).map(|(_, rss)| rss).max().unwrap_or(0)
}

/// Busy ticks of the whole machine (all CPUs).
fn machine() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some(total - idle)
}

/// A reading at the start of a window.
pub(crate) struct Sample {
    at: Instant,
    members: Vec<(u32, u64)>,
    own: u64,
    machine: u64,
}

/// CPU use over a window, in % of one core, and memory at its end.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Usage {
    /// The busiest member (the leader under load).
    pub(crate) busiest_member_cpu_percent: f64,
    /// Its resident memory at the end, MiB.
    pub(crate) busiest_member_rss_mib: f64,
    /// All members together.
    pub(crate) members_cpu_percent: f64,
    /// This load generator.
    pub(crate) driver_cpu_percent: f64,
    /// Everything else on the machine.
    pub(crate) other_cpu_percent: f64,
}

impl Sample {
    pub(crate) fn take(pids: &[u32]) -> Sample {
        Sample {
            at: Instant::now(),
            members: pids.iter().map(|p| (*p, process(*p).map_or(0, |x| x.0))).collect(),
            own: process(std::process::id()).map_or(0, |x| x.0),
            machine: machine().unwrap_or(0),
        }
    }

    /// The usage since this sample.
    pub(crate) fn usage(&self) -> Usage {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let percent = |ticks: u64| ticks as f64 / TICKS_PER_S / secs * 100.0;
        let mut busiest = (0u64, 0u64);
        let mut members = 0u64;
        for (pid, before) in &self.members {
            if let Some((now, rss)) = process(*pid) {
                let used = now.saturating_sub(*before);
                members += used;
                if used >= busiest.0 {
                    busiest = (used, rss);
                }
            }
        }
        let own = process(std::process::id()).map_or(0, |x| x.0).saturating_sub(self.own);
        let machine = machine().unwrap_or(0).saturating_sub(self.machine);
        Usage {
            busiest_member_cpu_percent: percent(busiest.0),
            busiest_member_rss_mib: busiest.1 as f64 / (1024.0 * 1024.0),
            members_cpu_percent: percent(members),
            driver_cpu_percent: percent(own),
            other_cpu_percent: percent(machine.saturating_sub(members + own)),
        }
    }
}
