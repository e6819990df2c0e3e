//! Which containers are targets: the names in `HEALTH_TARGETS`, matched exactly on our side.
//!
//! Docker's own `name=` filter is an unanchored regex and its events filter matches by prefix,
//! so neither is used to decide what we may touch: `nodo_1` must never match `nodo_10`.

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

/// A validated target name from `HEALTH_TARGETS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetName(String);

impl TargetName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container as far as matching needs it: its id, its name (without Docker's leading `/`) and
/// its compose service label, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub service: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error(
        "HEALTH_TARGETS is empty: set it to the comma-separated names of the containers to watch, \
         e.g. HEALTH_TARGETS=nodo_1,nodo_2"
    )]
    Empty,
    #[error(
        "HEALTH_TARGETS: {0:?} is not a valid container name: a name starts with a letter or digit \
         and continues with letters, digits, '_', '.' or '-' (at least 2 characters)"
    )]
    InvalidName(String),
}

/// The set of targets, in the order the user gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<TargetName>);

/// The names of all containers, to tell whether a target name is taken by a container.
type Names<'c> = HashSet<&'c str>;

impl Targets {
    /// Parses `HEALTH_TARGETS`: comma-separated, spaces around names ignored, duplicates dropped,
    /// empty items (a trailing comma) ignored. Every name must be one Docker would accept.
    pub fn parse(raw: &str) -> Result<Targets, TargetError> {
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // Docker shows names with a leading '/', and users copy them from `docker inspect`.
            let name = item.strip_prefix('/').unwrap_or(item);
            if !is_valid_container_name(name) {
                return Err(TargetError::InvalidName(item.to_string()));
            }
            if seen.insert(name.to_string()) {
                names.push(TargetName(name.to_string()));
            }
        }
        if names.is_empty() {
            return Err(TargetError::Empty);
        }
        Ok(Targets(names))
    }

    pub fn iter(&self) -> impl Iterator<Item = &TargetName> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Option<&TargetName> {
        self.0.iter().find(|t| t.0 == name)
    }

    /// The target `container` belongs to, given every container the engine has (`all`, which
    /// may include `container` itself).
    ///
    /// A name matches the container with exactly that name. Only if no container has that name
    /// does it match the containers whose compose service label equals it, so `nodo_1` finds
    /// `myproject-nodo_1-1` and every replica of a scaled service.
    pub fn target_of<'a, 'c>(
        &'a self,
        container: &ContainerRef,
        all: impl IntoIterator<Item = &'c ContainerRef>,
    ) -> Option<&'a TargetName> {
        let names: Names = all.into_iter().map(|c| c.name.as_str()).collect();
        self.matching(container, &names)
    }

    fn matching(&self, container: &ContainerRef, names: &Names) -> Option<&TargetName> {
        if let Some(t) = self.find(&container.name) {
            return Some(t);
        }
        // The container does not have the name itself, so if any has, another one does.
        let target = self.find(container.service.as_deref()?)?;
        (!names.contains(target.as_str())).then_some(target)
    }

    /// Every target with the containers it matches among `all`; a target with none is listed
    /// with an empty vector, so the caller can report it missing.
    pub fn resolve<'a, 'c>(
        &'a self,
        all: &'c [ContainerRef],
    ) -> Vec<(&'a TargetName, Vec<&'c ContainerRef>)> {
        let names: Names = all.iter().map(|c| c.name.as_str()).collect();
        let mut matched: Vec<(&TargetName, Vec<&ContainerRef>)> =
            self.0.iter().map(|t| (t, Vec::new())).collect();
        for c in all {
            if let Some(t) = self.matching(c, &names) {
                if let Some((_, list)) = matched.iter_mut().find(|(m, _)| *m == t) {
                    list.push(c);
                }
            }
        }
        matched
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, service: Option<&str>) -> ContainerRef {
        ContainerRef {
            id: id.into(),
            name: name.into(),
            service: service.map(Into::into),
        }
    }

    fn names(t: &Targets) -> Vec<&str> {
        t.iter().map(TargetName::as_str).collect()
    }

    #[test]
    fn parses_target_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("nodo_1", &["nodo_1"]),
            ("nodo_1,nodo_2", &["nodo_1", "nodo_2"]),
            (" nodo_1 ,  nodo_2 ", &["nodo_1", "nodo_2"]),
            ("nodo_1,nodo_1,nodo_2,nodo_1", &["nodo_1", "nodo_2"]),
            ("nodo_1,", &["nodo_1"]),
            ("/nodo_1", &["nodo_1"]),
            ("a.b-c_d,9x", &["a.b-c_d", "9x"]),
        ];
        for (raw, want) in cases {
            let got = Targets::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(names(&got), *want, "{raw:?}");
        }
    }

    #[test]
    fn rejects_bad_target_lists() {
        let cases: &[(&str, TargetError)] = &[
            ("", TargetError::Empty),
            (" , ,", TargetError::Empty),
            ("nodo 1", TargetError::InvalidName("nodo 1".into())),
            ("nodo_1,-x", TargetError::InvalidName("-x".into())),
            ("x", TargetError::InvalidName("x".into())),
            ("nodo_1;rm", TargetError::InvalidName("nodo_1;rm".into())),
            ("nodo.*", TargetError::InvalidName("nodo.*".into())),
            ("nödo", TargetError::InvalidName("nödo".into())),
        ];
        for (raw, want) in cases {
            assert_eq!(Targets::parse(raw).as_ref(), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn error_names_the_variable_and_value() {
        let msg = Targets::parse("ok_1,bad name").unwrap_err().to_string();
        assert!(
            msg.contains("HEALTH_TARGETS") && msg.contains("\"bad name\""),
            "{msg}"
        );
    }

    #[test]
    fn matches_exactly_never_by_prefix_or_regex() {
        let targets = Targets::parse("nodo_1").unwrap();
        let all = [
            c("1", "nodo_1", None),
            c("2", "nodo_10", None),
            c("3", "xnodo_1", None),
            c("4", "nodo_1x", None),
            c("5", "nodo-1", None),
        ];
        let resolved = targets.resolve(&all);
        assert_eq!(resolved.len(), 1);
        let ids: Vec<_> = resolved[0].1.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["1"]);
    }

    #[test]
    fn matches_compose_service_only_when_no_container_has_the_name() {
        let targets = Targets::parse("nodo_1").unwrap();
        let replicas = [
            c("a", "proj-nodo_1-1", Some("nodo_1")),
            c("b", "proj-nodo_1-2", Some("nodo_1")),
            c("c", "proj-nodo_10-1", Some("nodo_10")),
        ];
        let ids = |all: &[ContainerRef]| -> Vec<String> {
            targets.resolve(all)[0]
                .1
                .iter()
                .map(|c| c.id.clone())
                .collect()
        };
        assert_eq!(ids(&replicas), ["a", "b"]);

        let mut with_exact = replicas.to_vec();
        with_exact.push(c("d", "nodo_1", None));
        assert_eq!(ids(&with_exact), ["d"]);
    }

    #[test]
    fn target_of_single_container() {
        let targets = Targets::parse("nodo_1,web").unwrap();
        let cases: &[(ContainerRef, Option<&str>)] = &[
            (c("1", "nodo_1", None), Some("nodo_1")),
            (c("1", "nodo_1", Some("other")), Some("nodo_1")),
            (c("1", "nodo_10", None), None),
            (c("1", "p-web-1", Some("web")), Some("web")),
            (c("1", "p-web-1", Some("webx")), None),
            (c("1", "p-x-1", None), None),
        ];
        for (container, want) in cases {
            let got = targets.target_of(container, [container]);
            assert_eq!(got.map(TargetName::as_str), *want, "{container:?}");
        }
    }

    #[test]
    fn missing_target_resolves_to_nothing() {
        let targets = Targets::parse("ghost_1").unwrap();
        let all = [c("1", "ghost_10", None)];
        assert!(targets.resolve(&all)[0].1.is_empty());
    }
}
