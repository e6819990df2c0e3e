//! Restart now, back off, or give up: the revival history of one container, as plain data with
//! time passed in.
//!
//! A revival *failed* when the run it started ended (or turned unhealthy) within `reset_after`
//! of starting. Consecutive failed revivals double the wait before the next one, from `initial`
//! up to `cap`; a run that lasts `reset_after` starts afresh, so a one-off crash, or a chaos test
//! that kills a node now and then, is revived at once every time. `quarantine_after` failed
//! revivals within `window` quarantine the container: no more automatic action until it is
//! seen running well again or an operator releases it.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Doubling waits from `first` up to `cap`: the one back-off for reconnecting to the engine,
/// asking for its event stream again, and reviving a target whose revivals keep failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait after `failures` consecutive failures: none after none, then `first`, twice
    /// that, and so on up to `cap`.
    pub fn after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - 1);
        self.first.saturating_mul(factor).min(self.cap)
    }
}

/// The restart policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub initial: Duration,
    pub cap: Duration,
    pub reset_after: Duration,
    pub quarantine_after: u32,
    pub window: Duration,
}

impl Limits {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.initial,
            cap: self.cap,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            initial: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(10),
            quarantine_after: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// What to do about a failure now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Revive,
    /// Not yet: look again after this long.
    Wait(Duration),
    /// Too many failed revivals: stop acting. `newly` the first time it is decided.
    Quarantine {
        newly: bool,
    },
}

/// After our own restart, the engine may still report the state from before it; an unhealthy
/// verdict this soon after is not acted on.
pub const GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct History {
    /// Consecutive failed revivals.
    streak: u32,
    /// When each failed revival within the window was seen.
    failures: VecDeque<Instant>,
    /// The run whose failure was counted last, so a failure seen again is not counted twice.
    counted_run: Option<String>,
    /// When the failure now being handled was first seen; the back-off counts from there.
    failure_seen: Option<Instant>,
    last_revival: Option<Instant>,
    /// The last revival undid a failure of the container's own (not a death someone caused
    /// through the API): only then is a failure soon after it a failed revival.
    last_revival_own: bool,
    /// The last revival was a restart (of a running, unhealthy container), after which the
    /// engine may still report the health from before it.
    last_revival_restart: bool,
    /// When the last failure was counted as a failed revival, so that it can be forgiven.
    last_counted: Option<Instant>,
    quarantined: bool,
}

impl History {
    /// A failure of `run` (the engine's start time of the run that failed) was seen at `now`,
    /// the run having lasted `ran_for`. Seeing the same failure again changes nothing.
    pub fn failure(&mut self, now: Instant, run: &str, ran_for: Duration, limits: &Limits) {
        if self.counted_run.as_deref() == Some(run) {
            return;
        }
        self.counted_run = Some(run.to_string());
        self.failure_seen = Some(now);
        let revived_this_run = self.last_revival.is_some() && self.last_revival_own;
        if revived_this_run && ran_for < limits.reset_after {
            self.streak += 1;
            self.failures.push_back(now);
            self.last_counted = Some(now);
        } else {
            self.streak = 0;
        }
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > limits.window)
        {
            self.failures.pop_front();
        }
    }

    /// An action meant to revive it was taken at `now` (whether or not it worked).
    pub fn revived(&mut self, now: Instant) {
        self.revived_from(now, true, true);
    }

    /// A revival at `now` of a failure that was the container's own (`own`) or not, by a
    /// restart or a start.
    pub fn revived_from(&mut self, now: Instant, own: bool, restart: bool) {
        self.last_revival = Some(now);
        self.last_revival_own = own;
        self.last_revival_restart = restart;
        self.failure_seen = None;
    }

    /// The death last handled, at `when`, turns out to have been someone else's doing: the
    /// engine told of the API kill only after the death. It counts for nothing, and neither
    /// does the revival of it.
    pub fn forgive(&mut self, when: Instant) {
        if self.last_counted == Some(when) {
            self.streak = self.streak.saturating_sub(1);
            self.failures.pop_back();
        }
        self.last_counted = None;
        self.last_revival_own = false;
    }

    /// A start or restart call failed: that counts as a failed revival of its own.
    pub fn revival_failed(&mut self, now: Instant) {
        self.streak += 1;
        self.failures.push_back(now);
        self.failure_seen = Some(now);
    }

    /// What to do about the failure last reported, at `now`.
    pub fn plan(&mut self, now: Instant, limits: &Limits) -> Plan {
        if self.quarantined {
            return Plan::Quarantine { newly: false };
        }
        let recent = self
            .failures
            .iter()
            .filter(|t| now.duration_since(**t) <= limits.window)
            .count();
        if u32::try_from(recent).unwrap_or(u32::MAX) >= limits.quarantine_after {
            self.quarantined = true;
            return Plan::Quarantine { newly: true };
        }
        let wait = limits.backoff().after(self.streak);
        let since = self.failure_seen.unwrap_or(now);
        match (since + wait).checked_duration_since(now) {
            Some(left) if !left.is_zero() => Plan::Wait(left),
            _ => Plan::Revive,
        }
    }

    /// Whether a start or restart call failed since the last revival: the next try waits out
    /// the back-off, whatever caused the death before it.
    pub fn call_refused(&self) -> bool {
        self.failure_seen.is_some() && self.last_revival.is_some()
    }

    /// Whether we revived it less than [`GRACE`] ago.
    pub fn in_grace(&self, now: Instant) -> bool {
        self.last_revival_restart
            && self
                .last_revival
                .is_some_and(|t| now.duration_since(t) < GRACE)
    }

    /// The container has been running well for `ran_for`: past `reset_after`, its troubles are
    /// over. Returns whether this lifted a quarantine.
    pub fn running(&mut self, ran_for: Duration, limits: &Limits) -> bool {
        if ran_for < limits.reset_after {
            return false;
        }
        let was = self.quarantined;
        *self = History::default();
        was
    }

    /// An operator released it: start afresh. Returns whether it was quarantined.
    pub fn release(&mut self) -> bool {
        let was = self.quarantined;
        *self = History::default();
        was
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Revivals that failed within the window, for the operator's prompt.
    pub fn recent_failures(&self) -> usize {
        self.failures.len()
    }

    /// The history with its moments as wall-clock times (`wall` turns an instant into one),
    /// to be written down and read back by another process.
    pub fn to_saved(&self, wall: impl Fn(Instant) -> SystemTime) -> SavedHistory {
        SavedHistory {
            streak: self.streak,
            failures: self.failures.iter().map(|t| wall(*t)).collect(),
            counted_run: self.counted_run.clone(),
            failure_seen: self.failure_seen.map(&wall),
            last_revival: self.last_revival.map(&wall),
            quarantined: self.quarantined,
        }
    }

    /// A history read back; `instant` turns a wall-clock time into an instant of this process.
    pub fn from_saved(saved: &SavedHistory, instant: impl Fn(SystemTime) -> Instant) -> History {
        History {
            streak: saved.streak,
            failures: saved.failures.iter().map(|t| instant(*t)).collect(),
            counted_run: saved.counted_run.clone(),
            failure_seen: saved.failure_seen.map(&instant),
            last_revival: saved.last_revival.map(&instant),
            // Not kept in the file: the cautious reading.
            last_revival_own: true,
            last_revival_restart: true,
            last_counted: None,
            quarantined: saved.quarantined,
        }
    }
}

/// A revival history as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedHistory {
    pub streak: u32,
    #[serde(with = "times")]
    pub failures: Vec<SystemTime>,
    pub counted_run: Option<String>,
    #[serde(with = "time")]
    pub failure_seen: Option<SystemTime>,
    #[serde(with = "time")]
    pub last_revival: Option<SystemTime>,
    pub quarantined: bool,
}

/// Moments as RFC 3339 text, which people can read in the file.
pub mod time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&humantime::format_rfc3339_millis(*t).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_rfc3339_weak(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod times {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(ts: &[SystemTime], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            ts.iter()
                .map(|t| humantime::format_rfc3339_millis(*t).to_string()),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SystemTime>, D::Error> {
        let texts: Vec<String> = Vec::deserialize(d)?;
        texts
            .iter()
            .map(|t| humantime::parse_rfc3339_weak(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let limits = Limits::default();
        let b = limits.backoff();
        let secs: Vec<u64> = (0..12).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.after(u32::MAX), limits.cap);
    }

    #[test]
    fn a_one_off_crash_is_revived_at_once() {
        let limits = Limits::default();
        let t0 = Instant::now();
        let mut h = History::default();
        h.failure(t0, "run1", 3600 * S, &limits);
        assert_eq!(h.plan(t0, &limits), Plan::Revive);
        h.revived(t0);
        // It ran a minute (past reset_after) before dying again: a new one-off.
        let t1 = t0 + 60 * S;
        h.failure(t1, "run2", 60 * S, &limits);
        assert_eq!(h.plan(t1, &limits), Plan::Revive);
    }

    #[test]
    fn a_crash_loop_backs_off_then_is_quarantined() {
        let limits = Limits::default();
        let mut now = Instant::now();
        let mut h = History::default();
        let mut waits = Vec::new();
        for run in 0..20 {
            h.failure(now, &format!("run{run}"), S / 2, &limits);
            match h.plan(now, &limits) {
                Plan::Revive => {}
                Plan::Wait(d) => {
                    waits.push(d.as_secs());
                    now += d;
                    assert_eq!(h.plan(now, &limits), Plan::Revive);
                }
                Plan::Quarantine { newly } => {
                    assert!(newly);
                    assert_eq!(h.plan(now, &limits), Plan::Quarantine { newly: false });
                    break;
                }
            }
            h.revived(now);
            now += S / 2;
        }
        assert_eq!(waits, [1, 2, 4, 8]);
        assert!(h.is_quarantined());
        assert_eq!(h.recent_failures(), 5);
    }

    #[test]
    fn the_same_failure_seen_twice_counts_once() {
        let limits = Limits::default();
        let now = Instant::now();
        let mut h = History::default();
        h.revived(now);
        h.failure(now, "run1", S, &limits);
        h.failure(now, "run1", S, &limits);
        assert_eq!(h.recent_failures(), 1);
    }

    #[test]
    fn a_refused_start_counts_once_when_the_same_failure_is_seen_again() {
        let limits = Limits::default();
        let now = Instant::now();
        let mut h = History::default();
        h.failure(now, "run1", 3600 * S, &limits);
        h.revived(now);
        h.revival_failed(now);
        // The look after the refusal finds the same run still down.
        h.failure(now, "run1", 3600 * S, &limits);
        assert_eq!(h.recent_failures(), 1);
        assert_eq!(h.plan(now, &limits), Plan::Wait(limits.initial));
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let limits = Limits {
            quarantine_after: 2,
            window: 60 * S,
            ..Limits::default()
        };
        let mut now = Instant::now();
        let mut h = History::default();
        h.revived(now);
        h.failure(now, "a", S, &limits);
        now += 120 * S;
        h.revived(now);
        h.failure(now, "b", S, &limits);
        assert!(matches!(h.plan(now, &limits), Plan::Wait(_)));
    }

    #[test]
    fn failed_calls_count_and_a_good_run_releases() {
        let limits = Limits {
            quarantine_after: 2,
            ..Limits::default()
        };
        let now = Instant::now();
        let mut h = History::default();
        h.revival_failed(now);
        h.revival_failed(now);
        assert_eq!(h.plan(now, &limits), Plan::Quarantine { newly: true });
        assert!(!h.running(S, &limits), "too short to count");
        assert!(h.running(limits.reset_after, &limits));
        assert_eq!(h.plan(now, &limits), Plan::Revive);
    }

    #[test]
    fn release_by_the_operator() {
        let limits = Limits {
            quarantine_after: 1,
            ..Limits::default()
        };
        let now = Instant::now();
        let mut h = History::default();
        h.revival_failed(now);
        assert_eq!(h.plan(now, &limits), Plan::Quarantine { newly: true });
        assert!(h.release());
        assert!(!h.release());
        assert_eq!(h.plan(now, &limits), Plan::Revive);
    }

    #[test]
    fn a_crash_soon_after_undoing_someone_elses_kill_is_no_failed_revival() {
        let limits = Limits::default();
        let now = Instant::now();
        let mut h = History::default();
        // A `docker kill` undone (not the container's failure), then it crashes 2 s later.
        h.revived_from(now, false, false);
        h.failure(now + 2 * S, "run1", 2 * S, &limits);
        assert_eq!(h.plan(now + 2 * S, &limits), Plan::Revive);
        assert_eq!(h.recent_failures(), 0);
        // Its own crash undone, then it crashes again 2 s later: that revival failed.
        h.revived_from(now + 2 * S, true, false);
        h.failure(now + 4 * S, "run2", 2 * S, &limits);
        assert_eq!(h.recent_failures(), 1);
        // And a start is no restart: no grace for a health report after it.
        assert!(!h.in_grace(now + 5 * S));
    }

    #[test]
    fn grace_after_our_own_revival() {
        let now = Instant::now();
        let mut h = History::default();
        assert!(!h.in_grace(now));
        h.revived(now);
        assert!(h.in_grace(now + S));
        assert!(!h.in_grace(now + GRACE));
    }
}
