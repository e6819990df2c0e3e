//! A cap on the lines said about what strangers send (answers that do nothing, messages that
//! are no answers): whoever can publish to a reply topic must not grow the log in step with
//! what they send. Each is said, up to a number a minute; past it they are counted, and the
//! next one said after the minute says how many were not. Time is passed in.

use std::time::{Duration, Instant};

/// Lines about strangers' messages, per [`WINDOW`].
pub const PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct Quota {
    /// When the current window began.
    since: Option<Instant>,
    said: u32,
    /// Not said since the last line that was.
    held: u32,
}

/// Whether to say the line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// Say it, and that `held` more like it were not said before it.
    Yes {
        held: u32,
    },
    No,
}

impl Quota {
    pub fn take(&mut self, now: Instant) -> Say {
        if self.since.is_none_or(|s| now >= s + WINDOW) {
            self.since = Some(now);
            self.said = 0;
        }
        if self.said < PER_WINDOW {
            self.said += 1;
            Say::Yes {
                held: std::mem::take(&mut self.held),
            }
        } else {
            self.held = self.held.saturating_add(1);
            Say::No
        }
    }
}

/// The note a line gets when others like it were not said: ` (and 12 more like it were not
/// logged)`, or nothing.
pub fn held_note(held: u32) -> String {
    match held {
        0 => String::new(),
        n => format!(" ({n} more like it were not logged)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_a_few_a_minute_then_how_many_were_not() {
        let t0 = Instant::now();
        let mut q = Quota::default();
        let said = (0..100)
            .filter(|_| matches!(q.take(t0), Say::Yes { .. }))
            .count();
        assert_eq!(said, PER_WINDOW as usize);
        assert_eq!(q.take(t0 + Duration::from_secs(59)), Say::No);
        assert_eq!(q.take(t0 + WINDOW), Say::Yes { held: 91 });
        assert_eq!(q.take(t0 + WINDOW), Say::Yes { held: 0 });
        assert_eq!(held_note(91), " (91 more like it were not logged)");
        assert_eq!(held_note(0), "");
    }
}
