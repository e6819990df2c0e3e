//! Which containers are targets: the names in `HEALTH_TARGETS`, matched exactly on our side,
//! and the containers carrying a label that a selector there (`label:KEY[=VALUE]`) names.
//!
//! Docker's own `name=` filter is an unanchored regex and its events filter matches by prefix,
//! so neither is used to decide what we may touch: `nodo_1` must never match `nodo_10`.
//!
//! The rules, in order (docs/targets.md says the same):
//! 1. A container compose is replacing is no target: during a recreate compose renames a
//!    container to `<12 hex digits>_<name>` (v1 the old one, v2 the new one until it is ready).
//! 2. A bare target `nodo_1` matches the container named exactly `nodo_1`.
//! 3. A target `project/service` matches the containers of that compose project and service.
//! 4. If no container is named `nodo_1`, the bare target matches the containers of the compose
//!    service `nodo_1`: of healthther's own compose project when it has that service, else of
//!    the one project that has it. When several projects have it and none is ours it matches
//!    none of them ([`Resolution::Ambiguous`]), and `project/service` says which.
//! 5. Otherwise the first selector `label:KEY[=VALUE]` whose label it carries (`label:KEY` means
//!    the value `true`), unless it is a Swarm task or a compose one-off.
//!
//! A container labelled `healthther.enable=false` is no target, whatever chooses it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use thiserror::Error;

/// The label of a container that is a task of a Swarm service: never a target, even when
/// named, since Swarm replaces failed tasks itself.
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";
/// The label naming the Swarm service a task's container belongs to.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// Compose v2's record of a service's `depends_on`: `service:condition:restart`, by commas.
pub const COMPOSE_DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// The version of compose that made a container: `1.29.2` is the `docker-compose` program.
pub const COMPOSE_VERSION_LABEL: &str = "com.docker.compose.version";
/// Compose's mark on a one-off container (`docker compose run`): `True`.
pub const COMPOSE_ONEOFF_LABEL: &str = "com.docker.compose.oneoff";
/// The label by which a container opts out: `healthther.enable=false` makes it no target,
/// whatever selects it.
pub const ENABLE_LABEL: &str = "healthther.enable";
/// How a label selector is written in `HEALTH_TARGETS`: `label:KEY` or `label:KEY=VALUE`.
pub const SELECTOR_PREFIX: &str = "label:";

/// A validated target from `HEALTH_TARGETS`: a container or service name, `project/service`,
/// or a label selector `label:KEY[=VALUE]` (kept as written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetName(String);

impl TargetName {
    /// A name as written, unchecked: for tests of what reads targets.
    #[cfg(test)]
    pub fn unchecked(name: &str) -> TargetName {
        TargetName(name.to_string())
    }

    /// The key of a hold on one container a selector chose: its name.
    pub fn of_container(name: &str) -> TargetName {
        TargetName(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(project, service)` for a target written `project/service`.
    fn scoped(&self) -> Option<(&str, &str)> {
        if self.selector().is_some() {
            return None;
        }
        self.0.split_once('/')
    }

    /// `(key, value)` for a label selector: `label:KEY` means the value `true`.
    pub fn selector(&self) -> Option<(&str, &str)> {
        let rest = self.0.strip_prefix(SELECTOR_PREFIX)?;
        Some(rest.split_once('=').unwrap_or((rest, "true")))
    }

    /// Whether this target is a label selector, not a name.
    pub fn is_selector(&self) -> bool {
        self.selector().is_some()
    }

    /// What a selector asks for, for messages: `autoheal=true`.
    pub fn selector_text(&self) -> Option<String> {
        self.selector().map(|(k, v)| format!("{k}={v}"))
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container as far as matching needs it: its id, its name (without Docker's leading `/`) and
/// its compose project and service labels, if any; and its `healthther.*` labels, which adjust
/// how it is treated (never whether it is a target).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerRef {
    /// Whether compose is in the middle of replacing this container (see the module's rule 1).
    pub fn is_compose_transient(&self) -> bool {
        let b = self.name.as_bytes();
        self.service.is_some()
            && b.len() > 13
            && b[12] == b'_'
            && b[..12]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    }

    /// Whether it opted out with the label `healthther.enable=false`.
    pub fn opted_out(&self) -> bool {
        self.labels
            .get(ENABLE_LABEL)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    }

    /// The same container as far as being a target goes: name, project and service.
    pub fn same_identity(&self, other: &ContainerRef) -> bool {
        self.name == other.name && self.project == other.project && self.service == other.service
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error(
        "HEALTH_TARGETS is empty: set it to the comma-separated names of the containers to watch \
         or label selectors (HEALTH_TARGETS=nodo_1,label:autoheal), or set \
         AUTOHEAL_CONTAINER_LABEL as for autoheal to watch the containers carrying that label"
    )]
    Empty,
    #[error(
        "HEALTH_TARGETS: {0:?} is not a valid container name: a name starts with a letter or digit \
         and continues with letters, digits, '_', '.' or '-' (at least 2 characters); a compose \
         service of one project is written project/service"
    )]
    InvalidName(String),
    #[error(
        "HEALTH_TARGETS: {0:?} is not a valid project/service: the project is lowercase letters, \
         digits, '_' or '-', the service letters, digits, '_', '.' or '-', each starting with a \
         letter or digit"
    )]
    InvalidScoped(String),
    #[error(
        "HEALTH_TARGETS: {0:?} is not a valid label selector: write label:KEY or label:KEY=VALUE, \
         the key starting with a letter or digit and continuing with letters, digits, '.', '_', \
         '/' or '-', the value without commas, spaces or control characters"
    )]
    InvalidSelector(String),
}

/// The set of targets, in the order the user gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<TargetName>);

/// What a container is, as far as the targets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'t> {
    Target(&'t TargetName),
    /// Its compose service is a bare target that several projects have, none of them ours.
    Ambiguous(&'t TargetName),
    /// A name chooses it, but it opted out with `healthther.enable=false`: no target.
    OptedOut(&'t TargetName),
    None,
}

impl<'t> Resolution<'t> {
    pub fn target(self) -> Option<&'t TargetName> {
        match self {
            Resolution::Target(t) => Some(t),
            _ => None,
        }
    }
}

/// What matching needs to know about the rest of the engine's containers.
pub trait Neighbours {
    /// Whether some container has exactly this name.
    fn name_taken(&self, name: &str) -> bool;
    /// The compose projects (`""` for none) that have a container of `service` that compose is
    /// not in the middle of replacing.
    fn projects_with_service(&self, service: &str) -> BTreeSet<String>;
}

impl Targets {
    /// Parses `HEALTH_TARGETS`: comma-separated, spaces around names ignored, duplicates dropped,
    /// empty items (a trailing comma) ignored. Every name must be one Docker would accept, or
    /// `project/service`.
    pub fn parse(raw: &str) -> Result<Targets, TargetError> {
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(rest) = item.strip_prefix(SELECTOR_PREFIX) {
                if !is_valid_selector(rest) {
                    return Err(TargetError::InvalidSelector(item.to_string()));
                }
                if seen.insert(item.to_string()) {
                    names.push(TargetName(item.to_string()));
                }
                continue;
            }
            // Docker shows names with a leading '/', and users copy them from `docker inspect`.
            let name = item.strip_prefix('/').unwrap_or(item);
            if !is_valid_target(name) {
                return Err(if name.contains('/') {
                    TargetError::InvalidScoped(item.to_string())
                } else {
                    TargetError::InvalidName(item.to_string())
                });
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

    /// Whether any target is a label selector.
    pub fn has_selectors(&self) -> bool {
        self.0.iter().any(TargetName::is_selector)
    }

    /// The target written exactly `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TargetName> {
        self.0.iter().find(|t| t.0 == name)
    }

    /// When `c` is a task of a Swarm service (never a target) that a bare target names, by the
    /// container's name or by its service's: that target and the service's name.
    pub fn swarm_task_named<'t, 'c>(
        &'t self,
        c: &'c ContainerRef,
    ) -> Option<(&'t TargetName, &'c str)> {
        if !c.labels.contains_key(SWARM_TASK_LABEL) {
            return None;
        }
        let service = c.labels.get(SWARM_SERVICE_LABEL).map_or("", String::as_str);
        let t = self.0.iter().find(|t| {
            t.scoped().is_none()
                && !t.is_selector()
                && (t.0 == c.name || (!service.is_empty() && t.0 == service))
        })?;
        Some((t, service))
    }

    /// What `c` is, given its neighbours and healthther's own compose project (`own`): by its
    /// name or compose service first, else by the first label selector its labels match. A
    /// container labelled `healthther.enable=false` is no target whatever selects it.
    pub fn resolve<'t>(
        &'t self,
        c: &ContainerRef,
        others: &impl Neighbours,
        own: Option<&str>,
    ) -> Resolution<'t> {
        // Swarm replaces its failed tasks itself; and compose's replacements are compose's.
        if c.is_compose_transient() || c.labels.contains_key(SWARM_TASK_LABEL) {
            return Resolution::None;
        }
        let named = self.resolve_by_name(c, others, own);
        if c.opted_out() {
            return match named {
                Resolution::Target(t) => Resolution::OptedOut(t),
                _ => Resolution::None,
            };
        }
        if let Resolution::Target(_) = named {
            return named;
        }
        // A one-off (`docker compose run`) is never chosen by a label: only by its name.
        let oneoff = c
            .labels
            .get(COMPOSE_ONEOFF_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !oneoff {
            let by_label = self.0.iter().find(|t| {
                t.selector()
                    .is_some_and(|(k, v)| c.labels.get(k).is_some_and(|have| have == v))
            });
            if let Some(t) = by_label {
                return Resolution::Target(t);
            }
        }
        named
    }

    /// What `c` is by its name or compose service alone (rules 2 to 4).
    fn resolve_by_name<'t>(
        &'t self,
        c: &ContainerRef,
        others: &impl Neighbours,
        own: Option<&str>,
    ) -> Resolution<'t> {
        if let Some(t) = self
            .0
            .iter()
            .find(|t| t.scoped().is_none() && t.0 == c.name)
        {
            return Resolution::Target(t);
        }
        let Some(service) = c.service.as_deref() else {
            return Resolution::None;
        };
        let project = c.project.as_deref().unwrap_or("");
        let scoped = self
            .0
            .iter()
            .find(|t| t.scoped() == Some((project, service)));
        if let Some(t) = scoped {
            return Resolution::Target(t);
        }
        let Some(bare) = self.get(service) else {
            return Resolution::None;
        };
        // A container has that name, so the target means it, not this service.
        if others.name_taken(service) {
            return Resolution::None;
        }
        let projects = others.projects_with_service(service);
        match own {
            Some(own) if projects.contains(own) => {
                if project == own {
                    Resolution::Target(bare)
                } else {
                    Resolution::None
                }
            }
            _ if projects.len() > 1 => Resolution::Ambiguous(bare),
            _ => Resolution::Target(bare),
        }
    }
}

/// What follows `label:`: `KEY` or `KEY=VALUE`, a key `[A-Za-z0-9][A-Za-z0-9._/-]*` and a value
/// that is not empty and holds no commas, whitespace or control characters.
pub fn is_valid_selector(rest: &str) -> bool {
    let (key, value) = rest.split_once('=').unwrap_or((rest, "true"));
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !value.is_empty()
        && value
            .chars()
            .all(|c| c != ',' && !c.is_whitespace() && !c.is_control())
}

/// A container name, or `project/service`.
pub fn is_valid_target(name: &str) -> bool {
    match name.split_once('/') {
        Some((project, service)) => is_valid_project(project) && is_valid_service(service),
        None => is_valid_container_name(name),
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid_container_name(name: &str) -> bool {
    name.len() >= 2 && is_valid_service(name)
}

/// A compose service name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_valid_service(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A compose project name: `[a-z0-9][a-z0-9_-]*`.
fn is_valid_project(name: &str) -> bool {
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut chars = name.chars();
    chars.next().is_some_and(lower_or_digit)
        && chars.all(|c| lower_or_digit(c) || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, project: Option<&str>, service: Option<&str>) -> ContainerRef {
        ContainerRef {
            id: id.into(),
            name: name.into(),
            project: project.map(Into::into),
            service: service.map(Into::into),
            ..ContainerRef::default()
        }
    }

    /// The engine's containers, as matching sees them.
    struct All<'a>(&'a [ContainerRef]);

    impl Neighbours for All<'_> {
        fn name_taken(&self, name: &str) -> bool {
            self.0.iter().any(|c| c.name == name)
        }
        fn projects_with_service(&self, service: &str) -> BTreeSet<String> {
            self.0
                .iter()
                .filter(|c| c.service.as_deref() == Some(service) && !c.is_compose_transient())
                .map(|c| c.project.clone().unwrap_or_default())
                .collect()
        }
    }

    /// The ids among `all` that `target` matches, with healthther in project `own`.
    fn matched(raw: &str, all: &[ContainerRef], own: Option<&str>) -> Vec<String> {
        let targets = Targets::parse(raw).unwrap();
        all.iter()
            .filter(|x| targets.resolve(x, &All(all), own).target().is_some())
            .map(|x| x.id.clone())
            .collect()
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
            (
                "shop/web,shop-2/db.1,p/a",
                &["shop/web", "shop-2/db.1", "p/a"],
            ),
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
            ("Shop/web", TargetError::InvalidScoped("Shop/web".into())),
            ("shop/", TargetError::InvalidScoped("shop/".into())),
            ("a/b/c", TargetError::InvalidScoped("a/b/c".into())),
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
        let all = [
            c("1", "nodo_1", None, None),
            c("2", "nodo_10", None, None),
            c("3", "xnodo_1", None, None),
            c("4", "nodo_1x", None, None),
            c("5", "nodo-1", None, None),
        ];
        assert_eq!(matched("nodo_1", &all, None), ["1"]);
    }

    #[test]
    fn matches_compose_service_only_when_no_container_has_the_name() {
        let replicas = [
            c("a", "proj-nodo_1-1", Some("proj"), Some("nodo_1")),
            c("b", "proj-nodo_1-2", Some("proj"), Some("nodo_1")),
            c("c", "proj-nodo_10-1", Some("proj"), Some("nodo_10")),
        ];
        assert_eq!(matched("nodo_1", &replicas, None), ["a", "b"]);

        let mut with_exact = replicas.to_vec();
        with_exact.push(c("d", "nodo_1", None, None));
        assert_eq!(matched("nodo_1", &with_exact, None), ["d"]);
    }

    #[test]
    fn a_bare_service_of_several_projects_is_ambiguous_unless_one_is_ours() {
        let all = [
            c("1", "p1-svc-1", Some("p1"), Some("svc")),
            c("2", "p2-svc-1", Some("p2"), Some("svc")),
            c("3", "p2-svc-2", Some("p2"), Some("svc")),
        ];
        let targets = Targets::parse("svc").unwrap();
        let r = targets.resolve(&all[0], &All(&all), None);
        assert_eq!(r, Resolution::Ambiguous(targets.get("svc").unwrap()));
        assert!(matched("svc", &all, None).is_empty());
        assert!(matched("svc", &all, Some("p3")).is_empty());
        assert_eq!(matched("svc", &all, Some("p2")), ["2", "3"]);
        assert_eq!(matched("p1/svc", &all, None), ["1"]);
        assert_eq!(matched("p2/svc", &all, Some("p1")), ["2", "3"]);
        // One project only: that one, whichever is ours.
        assert_eq!(matched("svc", &all[..1], Some("mine")), ["1"]);
    }

    #[test]
    fn a_container_compose_is_replacing_is_no_target() {
        let all = [
            // v1: the old container, renamed; v2: the new one, under a temporary name.
            c("1", "21ba94b0f938_nodo_1", Some("p"), Some("nodo_1")),
            c("2", "21ba94b0f938_p-web-1", Some("p"), Some("web")),
            c("3", "p-web-1", Some("p"), Some("web")),
            // Not compose's: no labels.
            c("4", "21ba94b0f938_other", None, None),
        ];
        assert!(matched("nodo_1", &all, None).is_empty());
        assert!(matched("p/nodo_1", &all, None).is_empty());
        assert_eq!(matched("web", &all, None), ["3"]);
        assert_eq!(matched("21ba94b0f938_other", &all, None), ["4"]);
        assert!(!c("5", "21ba94b0f93_nodo_1", Some("p"), Some("s")).is_compose_transient());
        assert!(!c("6", "21BA94B0F938_nodo", Some("p"), Some("s")).is_compose_transient());
    }

    #[test]
    fn a_swarm_task_is_never_a_target_even_when_named() {
        let mut task = c("1", "nodo_1", Some("p"), Some("nodo_1"));
        task.labels.insert(SWARM_TASK_LABEL.into(), "xyz".into());
        assert!(matched("nodo_1", std::slice::from_ref(&task), None).is_empty());
        assert!(matched("p/nodo_1", std::slice::from_ref(&task), None).is_empty());
    }

    #[test]
    fn a_swarm_task_is_named_by_its_container_or_its_service() {
        let targets = Targets::parse("web,db.1.abc,other").unwrap();
        let mut task = c("1", "web.1.xyz", None, None);
        assert_eq!(targets.swarm_task_named(&task), None, "no task label");
        task.labels.insert(SWARM_TASK_LABEL.into(), "xyz".into());
        task.labels.insert(SWARM_SERVICE_LABEL.into(), "web".into());
        assert_eq!(
            targets.swarm_task_named(&task),
            Some((targets.get("web").unwrap(), "web"))
        );
        let mut db = c("2", "db.1.abc", None, None);
        db.labels.insert(SWARM_TASK_LABEL.into(), "abc".into());
        db.labels.insert(SWARM_SERVICE_LABEL.into(), "db".into());
        assert_eq!(
            targets.swarm_task_named(&db),
            Some((targets.get("db.1.abc").unwrap(), "db"))
        );
        let mut unnamed = c("3", "cache.1.def", None, None);
        unnamed.labels.insert(SWARM_TASK_LABEL.into(), "def".into());
        unnamed
            .labels
            .insert(SWARM_SERVICE_LABEL.into(), "cache".into());
        assert_eq!(targets.swarm_task_named(&unnamed), None);
    }

    #[test]
    fn scoped_targets_never_match_by_name() {
        let all = [
            c("1", "shop/web", None, None),
            c("2", "web", None, None),
            c("3", "x", Some("shop"), Some("web")),
        ];
        assert_eq!(matched("shop/web", &all, None), ["3"]);
    }

    #[test]
    fn labels_without_a_project_count_as_one_project() {
        let all = [
            c("a", "a-1", None, Some("web")),
            c("b", "a-2", None, Some("web")),
        ];
        assert_eq!(matched("web", &all, None), ["a", "b"]);
    }

    fn labelled(id: &str, name: &str, pairs: &[(&str, &str)]) -> ContainerRef {
        let mut x = c(id, name, None, None);
        for (k, v) in pairs {
            x.labels.insert(k.to_string(), v.to_string());
        }
        x
    }

    #[test]
    fn parses_label_selectors_beside_names() {
        let t = Targets::parse(
            "label:autoheal, db ,shop/web,label:com.example/tier=front,label:autoheal",
        )
        .unwrap();
        assert_eq!(
            names(&t),
            [
                "label:autoheal",
                "db",
                "shop/web",
                "label:com.example/tier=front"
            ]
        );
        let sel: Vec<_> = t.iter().filter_map(TargetName::selector).collect();
        assert_eq!(sel, [("autoheal", "true"), ("com.example/tier", "front")]);
        assert_eq!(t.get("shop/web").unwrap().scoped(), Some(("shop", "web")));
        assert_eq!(
            t.get("label:com.example/tier=front").unwrap().scoped(),
            None
        );
    }

    #[test]
    fn rejects_bad_label_selectors() {
        for raw in [
            "label:",
            "label:=x",
            "label:-k",
            "label:k y",
            "label:k=a b",
            "label:k=",
            "label:k=a\u{7}",
            "label:k!=v",
            "db,label:",
        ] {
            let want = raw
                .split(',')
                .next_back()
                .unwrap_or_default()
                .trim()
                .to_string();
            assert_eq!(
                Targets::parse(raw),
                Err(TargetError::InvalidSelector(want)),
                "{raw:?}"
            );
        }
        // A comma ends the entry: what follows is judged as one of its own.
        assert_eq!(
            Targets::parse("label:k=a,b"),
            Err(TargetError::InvalidName("b".into()))
        );
        let msg = Targets::parse("label:").unwrap_err().to_string();
        assert!(
            msg.contains("HEALTH_TARGETS") && msg.contains("\"label:\""),
            "{msg}"
        );
    }

    #[test]
    fn a_selector_matches_its_label_and_value_only() {
        let all = [
            labelled("1", "a1", &[("autoheal", "true")]),
            labelled("2", "a2", &[("autoheal", "false")]),
            labelled("3", "a3", &[]),
            labelled("4", "a4", &[("autoheal", "True")]),
            labelled("5", "a5", &[("tier", "front")]),
            labelled("6", "a6", &[("tier", "back")]),
        ];
        assert_eq!(matched("label:autoheal", &all, None), ["1"]);
        assert_eq!(matched("label:tier=front", &all, None), ["5"]);
        assert_eq!(matched("label:tier=front,a3", &all, None), ["3", "5"]);
    }

    #[test]
    fn a_name_wins_over_a_selector_and_the_first_selector_wins() {
        let all = [labelled("1", "db", &[("a", "true"), ("b", "true")])];
        let t = Targets::parse("label:a,label:b,db").unwrap();
        let got = t.resolve(&all[0], &All(&all), None);
        assert_eq!(got, Resolution::Target(t.get("db").unwrap()));
        let t = Targets::parse("label:b,label:a").unwrap();
        let got = t.resolve(&all[0], &All(&all), None);
        assert_eq!(got, Resolution::Target(t.get("label:b").unwrap()));
    }

    #[test]
    fn a_selector_never_matches_a_swarm_task_or_a_compose_one_off() {
        let task = labelled(
            "1",
            "web.1.x",
            &[("autoheal", "true"), (SWARM_TASK_LABEL, "x")],
        );
        let mut oneoff = labelled("2", "p_web_run_1", &[("autoheal", "true")]);
        oneoff
            .labels
            .insert(COMPOSE_ONEOFF_LABEL.into(), "True".into());
        oneoff.project = Some("p".into());
        oneoff.service = Some("web".into());
        let all = [task, oneoff];
        assert!(matched("label:autoheal", &all, None).is_empty());
        // A name that chooses a one-off still does.
        assert_eq!(matched("label:autoheal,p_web_run_1", &all, None), ["2"]);
        let t = Targets::parse("label:autoheal,web.1.x").unwrap();
        assert_eq!(
            t.swarm_task_named(&all[0]).map(|x| x.0.as_str()),
            Some("web.1.x")
        );
        let t = Targets::parse("label:autoheal").unwrap();
        assert_eq!(t.swarm_task_named(&all[0]), None);
    }

    #[test]
    fn a_container_that_opted_out_is_no_target_whatever_selects_it() {
        let all = [
            labelled("1", "db", &[("autoheal", "true"), (ENABLE_LABEL, "false")]),
            labelled("2", "web", &[("autoheal", "true"), (ENABLE_LABEL, "true")]),
        ];
        assert_eq!(matched("label:autoheal,db", &all, None), ["2"]);
        let t = Targets::parse("db").unwrap();
        assert_eq!(
            t.resolve(&all[0], &All(&all), None),
            Resolution::OptedOut(t.get("db").unwrap())
        );
        let t = Targets::parse("label:autoheal").unwrap();
        assert_eq!(t.resolve(&all[0], &All(&all), None), Resolution::None);
    }
}
