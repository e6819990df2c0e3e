//! Per-container settings from the container's own labels (`healthther.mode` and friends).
//! They change how a target is treated, never whether a container is one (save
//! `healthther.enable=false`, which only takes it out): scope stays with `HEALTH_TARGETS`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Mode, OnStop};

/// The prefix of the labels healthther reads.
pub const PREFIX: &str = "healthther.";
/// autoheal's stop timeout label, read as `healthther.stop-timeout` (which wins when both are
/// there).
pub const AUTOHEAL_STOP_TIMEOUT: &str = "autoheal.stop.timeout";

/// What a container's labels override; `None` means the global setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub mode: Option<Mode>,
    pub stop_timeout: Option<Duration>,
    /// Act on `unhealthy` only once it has lasted this long.
    pub unhealthy_after: Option<Duration>,
    pub on_stop: Option<OnStop>,
    /// Recreate it, joined to its network's new parent, when that parent was replaced.
    pub recreate: Option<bool>,
}

impl Overrides {
    /// The mode in force for the container: its label's when that is narrower than the
    /// operator's `MODE` (observe is narrower than manual, manual than auto), else `MODE`. A
    /// container's author may ask for less than the operator allowed, never for more.
    pub fn mode(&self, global: Mode) -> Mode {
        match self.mode {
            Some(m) if reach(m) < reach(global) => m,
            _ => global,
        }
    }

    /// What a stop through the API means for the container: `hold` if either the operator or
    /// the label says so.
    pub fn on_stop(&self, global: OnStop) -> OnStop {
        match (global, self.on_stop) {
            (OnStop::Hold, _) | (_, Some(OnStop::Hold)) => OnStop::Hold,
            _ => OnStop::Revive,
        }
    }

    /// The labels that ask for more than the operator allowed, and are ignored: (label,
    /// value asked for, the operator's setting).
    pub fn widening(&self, mode: Mode, on_stop: OnStop) -> Vec<(&'static str, String, String)> {
        let mut found = Vec::new();
        if let Some(m) = self.mode.filter(|m| reach(*m) > reach(mode)) {
            found.push(("healthther.mode", m.to_string(), format!("MODE={mode}")));
        }
        if on_stop == OnStop::Hold && self.on_stop == Some(OnStop::Revive) {
            found.push((
                "healthther.on-stop",
                "revive".into(),
                "HEALTH_ON_STOP=hold".into(),
            ));
        }
        found
    }
}

/// How far a mode lets healthther go on its own.
fn reach(mode: Mode) -> u8 {
    match mode {
        Mode::Observe => 0,
        Mode::Manual => 1,
        Mode::Auto => 2,
    }
}

/// A label whose value is not understood: the global setting applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLabel {
    pub label: String,
    pub value: String,
    pub expected: &'static str,
}

/// Reads the `healthther.*` labels among `labels`.
pub fn parse(labels: &BTreeMap<String, String>) -> (Overrides, Vec<BadLabel>) {
    let mut o = Overrides::default();
    let mut bad = Vec::new();
    for (label, value) in labels {
        // autoheal's label, read as healthther.stop-timeout when that is not there.
        let key = if label == AUTOHEAL_STOP_TIMEOUT {
            if labels.contains_key("healthther.stop-timeout") {
                continue;
            }
            "stop-timeout"
        } else {
            let Some(key) = label.strip_prefix(PREFIX) else {
                continue;
            };
            key
        };
        let v = value.trim();
        let ok = match key {
            "mode" => Mode::parse(v).map(|m| o.mode = Some(m)),
            "stop-timeout" => duration(v).map(|d| o.stop_timeout = Some(d)),
            "unhealthy-after" => duration(v).map(|d| o.unhealthy_after = Some(d)),
            "on-stop" => OnStop::parse(v).map(|s| o.on_stop = Some(s)),
            "recreate" => match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
            .map(|b| o.recreate = Some(b)),
            // Read by `targets` (opting out), not here.
            "enable" => Some(()),
            // Another tool's label, or a later version's: not ours to judge.
            _ => Some(()),
        };
        if ok.is_none() {
            bad.push(BadLabel {
                label: label.clone(),
                value: value.clone(),
                expected: match key {
                    "mode" => "auto, manual or observe",
                    "on-stop" => "revive or hold",
                    "recreate" => "true or false",
                    _ => "a duration such as 30s, 500ms or 2m, at most a day",
                },
            });
        }
    }
    (o, bad)
}

/// A duration as the labels write it: whole seconds (`30`) or humantime (`30s`, `2m`), at most
/// a day.
pub(crate) fn duration(v: &str) -> Option<Duration> {
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse().ok()?)
    } else {
        humantime::parse_duration(v).ok()?
    };
    (d <= Duration::from_secs(24 * 3600)).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_label_narrows_and_never_widens() {
        use Mode::{Auto, Manual, Observe};
        // (global, label, in force, ignored)
        let cases = [
            (Auto, Some(Manual), Manual, false),
            (Auto, Some(Observe), Observe, false),
            (Manual, Some(Observe), Observe, false),
            (Manual, Some(Auto), Manual, true),
            (Observe, Some(Auto), Observe, true),
            (Observe, Some(Manual), Observe, true),
            (Manual, Some(Manual), Manual, false),
            (Auto, None, Auto, false),
        ];
        for (global, label, expected, ignored) in cases {
            let o = Overrides {
                mode: label,
                ..Overrides::default()
            };
            assert_eq!(o.mode(global), expected, "{global} with {label:?}");
            assert_eq!(
                !o.widening(global, OnStop::Revive).is_empty(),
                ignored,
                "{global} with {label:?}"
            );
        }
        for (global, label, expected) in [
            (OnStop::Hold, Some(OnStop::Revive), OnStop::Hold),
            (OnStop::Revive, Some(OnStop::Hold), OnStop::Hold),
            (OnStop::Revive, None, OnStop::Revive),
        ] {
            let o = Overrides {
                on_stop: label,
                ..Overrides::default()
            };
            assert_eq!(o.on_stop(global), expected);
        }
    }

    #[test]
    fn reads_every_label() {
        let (o, bad) = parse(&labels(&[
            ("healthther.mode", "observe"),
            ("healthther.stop-timeout", "3s"),
            ("healthther.unhealthy-after", "90"),
            ("healthther.on-stop", "hold"),
            ("healthther.recreate", "True"),
            ("com.docker.compose.service", "web"),
            ("healthther.future-thing", "x"),
        ]));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            o,
            Overrides {
                mode: Some(Mode::Observe),
                stop_timeout: Some(Duration::from_secs(3)),
                unhealthy_after: Some(Duration::from_secs(90)),
                on_stop: Some(OnStop::Hold),
                recreate: Some(true),
            }
        );
    }

    #[test]
    fn autoheals_stop_timeout_label_counts_unless_ours_is_there() {
        let (o, bad) = parse(&labels(&[("autoheal.stop.timeout", "20")]));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(o.stop_timeout, Some(Duration::from_secs(20)));
        let (o, _) = parse(&labels(&[
            ("autoheal.stop.timeout", "20"),
            ("healthther.stop-timeout", "3s"),
        ]));
        assert_eq!(o.stop_timeout, Some(Duration::from_secs(3)));
        let (o, bad) = parse(&labels(&[("autoheal.stop.timeout", "2d")]));
        assert_eq!((o.stop_timeout, bad.len()), (None, 1));
    }

    #[test]
    fn a_bad_value_is_named_and_ignored() {
        let (o, bad) = parse(&labels(&[
            ("healthther.mode", "sometimes"),
            ("healthther.unhealthy-after", "soon"),
            ("healthther.stop-timeout", "2d"),
            ("healthther.on-stop", "revive"),
        ]));
        assert_eq!(o.mode, None);
        assert_eq!(o.on_stop, Some(OnStop::Revive));
        let named: Vec<&str> = bad.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            named,
            [
                "healthther.mode",
                "healthther.stop-timeout",
                "healthther.unhealthy-after"
            ]
        );
    }
}
