//! Errors told as text: one line for an error and all its causes.

/// `a: b: c` for an error and its sources, skipping repeats (hyper repeats its cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot reach the engine: {0}")]
        struct Wrapped(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert_eq!(error_chain(&io), "denied");
        let wrapped = Wrapped(std::io::Error::other("reset"));
        assert_eq!(error_chain(&wrapped), "cannot reach the engine: reset");
    }
}
