//! Where settings come from besides the flags: the variables that stand for them, and the
//! `.env` file (or `--env-file`), read into a map, never into the process environment. A
//! misspelt `HEALTH_*` key of the file is named with the closest known one.

use std::collections::HashMap;
use std::path::Path;

use super::{Args, ConfigError};
use crate::notify;

const DEFAULT_ENV_FILE: &str = ".env";

/// Every setting read from the environment: (clap's argument id, variable).
pub(super) fn env_vars() -> Vec<(String, String)> {
    let command = <Args as clap::CommandFactory>::command();
    command
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_str()?.to_string();
            Some((a.get_id().to_string(), var))
        })
        .collect()
}

/// The settings of `.env` (or `--env-file`), the first of a key winning as dotenvy does.
pub(super) fn read_env_file(
    explicit: Option<&Path>,
) -> Result<HashMap<String, String>, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_ENV_FILE));
    let fail = |reason: String| ConfigError::EnvFile {
        path: path.display().to_string(),
        reason,
    };
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HashMap::new())
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    // No environment variable can hold a NUL byte; say where it is instead of failing later.
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(fail(format!("line {line}: contains a NUL byte; remove it")));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut map = HashMap::new();
    for item in dotenvy::Iter::new(bytes.as_slice()) {
        match item {
            Ok((key, value)) => drop(map.entry(key).or_insert(value)),
            Err(dotenvy::Error::LineParse(bad, at)) => {
                let line = text
                    .lines()
                    .position(|l| l.contains(bad.trim()))
                    .map(|i| format!("line {}: ", i + 1))
                    .unwrap_or_default();
                return Err(fail(format!(
                    "{line}cannot parse {:?} (at character {}); quote values that contain \
                     spaces",
                    redact_urls(&bad),
                    at + 1
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(map)
}

/// `text` with every word that holds a URL redacted (`HEALTH_NOTIFY`'s tokens and passwords,
/// `DOCKER_HOST`'s), as a notification URL is wherever it is shown.
fn redact_urls(text: &str) -> String {
    text.split(char::is_whitespace)
        .map(|word| match word.find("://") {
            None => word.to_string(),
            Some(at) => {
                // What precedes the URL (`KEY=`, a quote) is kept as written.
                let start = word[..at]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                    .map_or(0, |i| i + 1);
                format!(
                    "{}{}",
                    &word[..start],
                    notify::channel::redact(&word[start..])
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One warning per `HEALTH_*` key of the file that is no setting, naming the closest one.
pub(super) fn unknown_keys(file: &HashMap<String, String>, known: &[&str]) -> Vec<String> {
    let mut keys: Vec<&String> = file
        .keys()
        .filter(|k| k.starts_with("HEALTH_") && !known.contains(&k.as_str()))
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|key| match closest(key, known) {
            Some(known) => {
                format!(
                    "{key} in the env file is not a setting and is ignored; did you mean {known}?"
                )
            }
            None => format!(
                "{key} in the env file is not a setting and is ignored; see healthther --help"
            ),
        })
        .collect()
}

/// The known variable nearest to `key` by edit distance, if near enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_that_hold_urls_are_redacted_in_a_line_shown_in_an_error() {
        let line = "HEALTH_NOTIFY=telegram://1:TgSeCrEt@telegram?chats=1\t\
                    \"generic://u:PwSeCrEt@h/x?token=TokSeCrEt plain words";
        let shown = redact_urls(line);
        assert!(!shown.contains("SeCrEt"), "{shown}");
        assert!(
            shown.starts_with("HEALTH_NOTIFY=telegram://***:***@telegram")
                && shown.contains("\"generic://u:***@h/x?token=***")
                && shown.ends_with("plain words"),
            "{shown}"
        );
    }

    #[test]
    fn closest_known_key() {
        let vars = env_vars();
        let known: Vec<&str> = vars.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            closest("HEALTH_STOP_TIMOUT", &known),
            Some("HEALTH_STOP_TIMEOUT")
        );
        assert_eq!(closest("HEALTH_TARGET", &known), Some("HEALTH_TARGETS"));
        assert_eq!(closest("HEALTH_XYZZY_PLUGH_FOO", &known), None);
    }
}
