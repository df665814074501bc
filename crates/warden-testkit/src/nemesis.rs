//! The nemesis: one fault at a time against real members (SIGKILL and restart, SIGSTOP and
//! SIGCONT, one direction of a link cut, a member cut off from all, every member killed and
//! restarted at once), each held for a while and then healed, chosen from a seeded stream.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::members::Members;
use crate::rng::Rng;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL one member, restart it after the hold.
    Kill,
    /// SIGSTOP one member, SIGCONT it after the hold.
    Pause,
    /// Cut one direction of one link.
    Cut,
    /// Cut every link to and from one member.
    Isolate,
    /// SIGKILL every member, restart them all.
    RestartAll,
}

impl FaultKind {
    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Cut => "cut",
            FaultKind::Isolate => "isolate",
            FaultKind::RestartAll => "restart_all",
        }
    }
}

/// Chooses and applies faults; counts them by kind.
pub struct Nemesis {
    rng: Rng,
    /// Faults applied so far, by kind.
    pub counts: BTreeMap<FaultKind, u64>,
}

impl Nemesis {
    /// A nemesis drawing from `seed`.
    pub fn new(seed: u64) -> Nemesis {
        Nemesis { rng: Rng::new(seed), counts: BTreeMap::new() }
    }

    /// How many faults so far.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    fn pick(&mut self) -> FaultKind {
        match self.rng.below(100) {
            0..25 => FaultKind::Kill,
            25..45 => FaultKind::Pause,
            45..65 => FaultKind::Cut,
            65..92 => FaultKind::Isolate,
            _ => FaultKind::RestartAll,
        }
    }

    /// A member to hit: the leader half of the time, if it is known.
    fn target(&mut self, n: usize, leader: Option<usize>) -> usize {
        match leader {
            Some(l) if self.rng.chance(50) => l,
            _ => 1 + self.rng.below(n as u64) as usize,
        }
    }

    /// Applies one fault, holds it for `hold`, and heals everything.
    pub async fn round(
        &mut self,
        members: &mut Members,
        leader: Option<usize>,
        hold: Duration,
    ) -> std::io::Result<FaultKind> {
        let n = members.len();
        let kind = self.pick();
        let id = self.target(n, leader);
        tracing::info!(fault = kind.name(), member = id, ?hold, "fault");
        match kind {
            FaultKind::Kill => {
                members.kill9(id);
                tokio::time::sleep(hold).await;
            }
            FaultKind::Pause => {
                members.pause(id);
                tokio::time::sleep(hold).await;
            }
            FaultKind::Cut => {
                let to = 1 + (id + self.rng.below(n as u64 - 1) as usize) % n;
                members.cut(id, to);
                tokio::time::sleep(hold).await;
            }
            FaultKind::Isolate => {
                members.isolate(id);
                tokio::time::sleep(hold).await;
            }
            FaultKind::RestartAll => {
                for m in 1..=n {
                    members.kill9(m);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        members.restore()?;
        *self.counts.entry(kind).or_default() += 1;
        Ok(kind)
    }

    /// The faults by kind, as `kill=3 pause=2 ...`.
    pub fn summary(&self) -> String {
        let kinds = [
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Cut,
            FaultKind::Isolate,
            FaultKind::RestartAll,
        ];
        kinds
            .iter()
            .map(|k| format!("{}={}", k.name(), self.counts.get(k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
