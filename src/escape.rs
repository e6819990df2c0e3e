//! Text from a container (its name, labels, health check output, the engine's words about it)
//! or from a chat answer is written by whoever controls the container. Shown raw, a newline
//! starts a forged log line and an escape sequence drives the operator's terminal (colours, the
//! window title, a cleared screen). These functions make it inert where it is shown; each
//! chat's markup is escaped in `notify::request`, next to the request it goes into.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal or a log line as itself: the C0 controls (newline and
/// tab too), DEL, the C1 controls (some terminals take U+009B as ESC [), and the marks and
/// overrides that reorder text (a "Trojan Source" line reads differently than it is), and the
/// Unicode line and paragraph separators.
fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character written out: `\n`, `\r`, `\t`, `\x1b` (the other C0
/// controls and DEL), `\u{9b}` (C1, bidirectional marks and overrides, line separators).
/// Everything else, backslashes too, is left as it is: escaping twice changes nothing, and a
/// literal `\n` a container writes stays on its line.
pub fn control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text for a reply of the control socket, which keeps its own lines and tab-separated
/// columns: every other control character as a JSON escape (`\u001b`), so that the same
/// escape serves `status --json` (where such characters can only be inside strings) and the
/// rows for people.
pub fn reply(text: &str) -> Cow<'_, str> {
    let hostile = |c: char| c != '\n' && c != '\t' && is_hostile(c);
    if !text.chars().any(hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that passes everything on through [`control`]: for text that is wholly one
/// value, such as the fields of a log line.
pub struct Escaping<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(&control(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        let cases = [
            ("db unreachable", "db unreachable"),
            ("", ""),
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\r\\nb"),
            ("col\tumn", "col\\tumn"),
            ("\u{1b}[31mred\u{1b}[0m", "\\x1b[31mred\\x1b[0m"),
            ("\u{1b}]0;pwned\u{7}", "\\x1b]0;pwned\\x07"),
            ("nul\0", "nul\\x00"),
            ("del\u{7f}", "del\\x7f"),
            ("csi\u{9b}2J", "csi\\u{9b}2J"),
            ("next\u{85}line", "next\\u{85}line"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}x\u{2067}y\u{2068}z\u{2069}",
                "\\u{2066}x\\u{2067}y\\u{2068}z\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            // Left alone: backslashes (escaping twice changes nothing), other scripts, emoji.
            ("a\\nb", "a\\nb"),
            ("ÿ é 日本 🚑", "ÿ é 日本 🚑"),
            (
                "\n2026-12-06T00:00:00Z  INFO healthther: revived",
                "\\n2026-12-06T00:00:00Z  INFO healthther: revived",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(control(raw), want, "{raw:?}");
            assert_eq!(control(&control(raw)), want, "twice: {raw:?}");
        }
        assert!(matches!(control("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn replies_keep_their_lines_and_columns_and_stay_json() {
        let cases = [
            ("a\tb\nc", "a\tb\nc"),
            ("\u{1b}]0;x\u{7}", "\\u001b]0;x\\u0007"),
            ("\r\u{9b}\u{202e}", "\\u000d\\u009b\\u202e"),
        ];
        for (raw, want) in cases {
            assert_eq!(reply(raw), want, "{raw:?}");
        }
        let json = serde_json::json!({ "seen": "x\u{7f}\u{9b}\u{2066}y" }).to_string();
        let back: serde_json::Value = serde_json::from_str(&reply(&json)).expect("still JSON");
        assert_eq!(back["seen"], "x\u{7f}\u{9b}\u{2066}y");
    }
}
