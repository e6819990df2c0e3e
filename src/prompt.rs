//! Manual mode's words, as plain data: the operator's answers and how a prompt reads. The queue
//! of open prompts and the standing choices live with each container in the watch core.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::policy::Verdict;
use crate::targets::{ContainerRef, TargetName};

/// What an operator can answer to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Revive it this once.
    Yes,
    /// Leave it; ask again only on its next failure.
    No,
    /// Revive it now and from then on without asking, until `healthther forget`.
    Always,
    /// Never act on or ask about this target again, until `healthther forget`.
    Never,
}

impl Answer {
    pub fn word(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Always => "always",
            Answer::Never => "never",
        }
    }
}

pub const CHOICES: &str = "[y]es / [n]o / [a]lways / ne[v]er";

/// The one-line hint shown after an answer that is none of the choices.
pub fn hint(target: &str) -> String {
    format!(
        "Please answer y (revive {target} now), n (leave it), a (revive it now and always, \
         without asking) or v (never ask about {target} again)."
    )
}

/// Parses an answer: the letter or the whole word, in any case, spaces around ignored.
pub fn parse_answer(input: &str) -> Option<Answer> {
    match input.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Yes),
        "n" | "no" => Some(Answer::No),
        "a" | "always" => Some(Answer::Always),
        "v" | "never" => Some(Answer::Never),
        _ => None,
    }
}

/// What a prompt's answer buttons carry (a chat's inline keyboard, ntfy's actions): it binds
/// an answer to that prompt alone, while it is open, on the host that asked. A tag of the host
/// comes first, so a fleet sharing one reply topic tells its own from another host's; then
/// 128 bits from the kernel's random source, in hex.
///
/// It is a secret of sorts (whoever has it answers the prompt): its `Debug` hides it, and it
/// never reaches the human log, `status`, metrics or the audit file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.…)", self.tag())
    }
}

/// The longest token that can be one of ours: a tag of 8 and 32 hex digits, and the dot.
const TOKEN_LEN: usize = 41;

impl Token {
    /// A fresh token of the host tagged `tag`; `None` if the kernel gave no random bytes.
    pub fn random(tag: &str) -> Option<Token> {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).ok()?;
        Some(Token::of(tag, u128::from_be_bytes(bytes)))
    }

    /// The token of host `tag` with these 128 bits (tests make theirs so).
    pub fn of(tag: &str, bits: u128) -> Token {
        Token(format!("{tag}.{bits:032x}"))
    }

    /// Reads a token as a chat or a topic carries it back: `None` if it cannot be one.
    pub fn parse(text: &str) -> Option<Token> {
        let text = text.trim();
        let (tag, bits) = text.split_once('.')?;
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        (text.len() == TOKEN_LEN && tag.len() == 8 && bits.len() == 32 && hex(tag) && hex(bits))
            .then(|| Token(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag of the host that made it.
    pub fn tag(&self) -> &str {
        self.0.split_once('.').map_or("", |(tag, _)| tag)
    }
}

/// The tag a host's tokens begin with: 8 hex digits of a hash of its name (`HEALTH_NOTIFY_HOST`).
pub fn host_tag(host: &str) -> String {
    // FNV-1a: the same on every run and platform, unlike the std hasher.
    let h = host.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{h:08x}")
}

/// A failure waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub target: TargetName,
    pub container: ContainerRef,
    /// What was seen, e.g. `exited (code 137)`.
    pub seen: String,
    pub verdict: Verdict,
    /// When the failure was seen.
    pub since: SystemTime,
    /// Identifies the failure: the start time of the run that failed. A container that runs
    /// again and fails again has a new one, and so is a new failure.
    pub run: String,
    /// Revivals of this container that failed again soon, lately.
    pub failed_revivals: usize,
    /// Targets that share its network and are restarted after it: the answer covers them.
    pub dependents: Vec<String>,
    /// What its answer buttons carry; `None` if no random bytes could be had (then it is
    /// answered at the terminal or the control socket only).
    pub token: Option<Token>,
}

impl Pending {
    /// `nodo_2` or, for a compose replica, `web (proj-web-2)`.
    pub fn who(&self) -> String {
        if self.container.name == self.target.as_str() {
            self.target.to_string()
        } else {
            format!("{} ({})", self.target, self.container.name)
        }
    }
}

/// The prompt for a pending failure, e.g.
/// `nodo_2 exited (code 137) 3s ago. Revive it? [y]es / [n]o / [a]lways / ne[v]er > `.
pub fn render(p: &Pending, now: SystemTime) -> String {
    let history = match p.failed_revivals {
        0 => String::new(),
        1 => " (1 revival failed lately)".to_string(),
        n => format!(" ({n} revivals failed lately)"),
    };
    let dependents = match p.dependents.as_slice() {
        [] => String::new(),
        [one] => format!(" (and then {one}, which shares its network)"),
        many => format!(" (and then {}, which share its network)", many.join(", ")),
    };
    format!(
        "{} {} {} ago{history}. {} it{dependents}? {CHOICES} > ",
        p.who(),
        p.seen,
        ago(now.duration_since(p.since).unwrap_or_default()),
        if p.verdict == Verdict::Restart {
            "Restart"
        } else {
            "Revive"
        },
    )
}

/// A short age: `3s`, `2m05s`, `1h02m`.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Targets;

    fn target(name: &str) -> TargetName {
        Targets::parse(name).unwrap().iter().next().unwrap().clone()
    }

    fn pending(t: &str, id: &str, run: &str) -> Pending {
        Pending {
            target: target(t),
            container: ContainerRef {
                id: id.into(),
                name: t.into(),
                ..ContainerRef::default()
            },
            seen: "exited (code 137)".into(),
            verdict: Verdict::Start,
            since: SystemTime::UNIX_EPOCH,
            run: run.into(),
            failed_revivals: 0,
            dependents: Vec::new(),
            token: None,
        }
    }

    #[test]
    fn tokens_are_random_tagged_with_the_host_and_read_back_only_whole() {
        let tag = host_tag("web-01");
        assert_eq!(tag, host_tag("web-01"));
        assert_ne!(tag, host_tag("web-02"));
        let a = Token::random(&tag).expect("random bytes");
        let b = Token::random(&tag).expect("random bytes");
        assert_ne!(a, b);
        assert_eq!(a.tag(), tag);
        assert_eq!(Token::parse(a.as_str()), Some(a.clone()));
        assert_eq!(Token::parse(&format!(" {}\n", a.as_str())), Some(a.clone()));
        assert!(!format!("{a:?}").contains(&a.as_str()[9..]), "{a:?}");
        for bad in [
            "",
            "12345678",
            &a.as_str()[..40],
            &format!("{}0", a.as_str()),
            &a.as_str().to_uppercase(),
            "1234567.0123456789abcdef0123456789abcdef0",
            "12345678.0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_answers() {
        let cases = [
            ("y", Some(Answer::Yes)),
            ("YES", Some(Answer::Yes)),
            ("  Yes \n", Some(Answer::Yes)),
            ("n", Some(Answer::No)),
            ("No", Some(Answer::No)),
            ("a", Some(Answer::Always)),
            ("ALWAYS", Some(Answer::Always)),
            ("v", Some(Answer::Never)),
            ("never", Some(Answer::Never)),
            ("", None),
            ("yess", None),
            ("ye", None),
            ("q", None),
            ("y n", None),
            ("\u{1b}[A", None),
            ("ｙ", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_answer(input), want, "{input:?}");
        }
    }

    #[test]
    fn renders_the_prompt() {
        let mut p = pending("nodo_2", "id2", "r1");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(3);
        assert_eq!(
            render(&p, now),
            "nodo_2 exited (code 137) 3s ago. Revive it? [y]es / [n]o / [a]lways / ne[v]er > "
        );
        p.container.name = "proj-nodo_2-1".into();
        p.verdict = Verdict::Restart;
        p.seen = "running (unhealthy)".into();
        p.failed_revivals = 3;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(125);
        assert_eq!(
            render(&p, now),
            "nodo_2 (proj-nodo_2-1) running (unhealthy) 2m05s ago (3 revivals failed lately). \
             Restart it? [y]es / [n]o / [a]lways / ne[v]er > "
        );
    }

    #[test]
    fn ages() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (3599, "59m59s"),
            (3720, "1h02m"),
        ];
        for (s, want) in cases {
            assert_eq!(ago(Duration::from_secs(s)), want);
        }
    }
}

/// Fuzzing what an operator may type: every input is an answer or `None`, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn answers(raw in "\\PC{0,12}|\\s*(y|yes|n|no|a|always|v|never)\\s*|[\\x00-\\x1f]{0,4}") {
            if let Some(answer) = parse_answer(&raw) {
                let word = raw.trim().to_ascii_lowercase();
                let expected = match answer {
                    Answer::Yes => ["y", "yes"],
                    Answer::No => ["n", "no"],
                    Answer::Always => ["a", "always"],
                    Answer::Never => ["v", "never"],
                };
                prop_assert!(expected.contains(&word.as_str()));
            }
        }
    }
}
