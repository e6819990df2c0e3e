//! Which containers lose their network when another starts again: those that share its
//! network namespace (`--network container:X`, compose's `network_mode: service:X`), and those
//! compose was told to restart with it (`depends_on: {X: {restart: true}}`). Plain functions
//! over names and labels; the core keeps the containers.

use std::collections::BTreeMap;

use crate::targets::{ContainerRef, COMPOSE_DEPENDS_ON_LABEL, COMPOSE_VERSION_LABEL};

/// Whether `reference` (what follows `container:` in a network mode: an id, a prefix of one
/// the engine accepted, or a name) names the container `c`.
pub fn names(reference: &str, c: &ContainerRef) -> bool {
    reference == c.name || (reference.len() >= 12 && c.id.starts_with(reference))
}

/// The services of its own project that compose restarts this container with: its
/// `depends_on` entries with `restart: true`.
pub fn restarts_with(labels: &BTreeMap<String, String>) -> Vec<&str> {
    let Some(value) = labels.get(COMPOSE_DEPENDS_ON_LABEL) else {
        return Vec::new();
    };
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.trim().split(':');
            let service = parts.next().filter(|s| !s.is_empty())?;
            let _condition = parts.next();
            (parts.next() == Some("true")).then_some(service)
        })
        .collect()
}

/// Whether `c` is `dependent`'s compose-declared parent: the service it restarts with, in its
/// own project.
pub fn declared_parent(dependent: &ContainerRef, c: &ContainerRef) -> bool {
    match (&dependent.project, &c.project, &c.service) {
        (Some(p), Some(q), Some(service)) if p == q => {
            restarts_with(&dependent.labels).contains(&service.as_str())
        }
        _ => false,
    }
}

/// Whether `c` took the place of `gone` (which a dependent still points at by id): the same
/// compose service of the same project, or, outside compose, the same name.
pub fn succeeds(c: &ContainerRef, gone: &ContainerRef) -> bool {
    if c.id == gone.id || c.is_compose_transient() {
        return false;
    }
    match (&gone.project, &gone.service) {
        (Some(_), Some(_)) => c.project == gone.project && c.service == gone.service,
        // A container that was replaced went by `<12 hex of its id>_<name>` at the end.
        _ => {
            let prefix = format!("{}_", gone.id.get(..12).unwrap_or(&gone.id));
            c.name == gone.name.strip_prefix(&prefix).unwrap_or(&gone.name)
        }
    }
}

/// The one command that recreates a dependent whose parent was recreated.
pub fn fix_command(dependent: &ContainerRef, parent: &str) -> String {
    let v1 = dependent
        .labels
        .get(COMPOSE_VERSION_LABEL)
        .is_some_and(|v| v.starts_with("1."));
    let compose = if v1 {
        "docker-compose"
    } else {
        "docker compose"
    };
    match &dependent.service {
        // Compose sees nothing to change in it without --force-recreate.
        Some(service) => format!("{compose} up -d --force-recreate --no-deps {service}"),
        None => format!(
            "docker rm -f {0}, then run it again with --network container:{parent}",
            dependent.name
        ),
    }
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
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_network_reference_is_a_name_an_id_or_a_long_enough_prefix() {
        let vpn = c("0123456789abcdef0123", "vpn", None, None);
        assert!(names("vpn", &vpn));
        assert!(names("0123456789abcdef0123", &vpn));
        assert!(names("0123456789ab", &vpn));
        assert!(!names("0123", &vpn), "a short prefix could be anyone's");
        assert!(!names("vpn2", &vpn));
    }

    #[test]
    fn compose_restarts_with_only_the_services_marked_restart_true() {
        let mut web = c("w", "p-web-1", Some("p"), Some("web"));
        web.labels.insert(
            COMPOSE_DEPENDS_ON_LABEL.into(),
            "vpn:service_started:true,db:service_healthy:false, cache:service_healthy:true".into(),
        );
        assert_eq!(restarts_with(&web.labels), vec!["vpn", "cache"]);
        assert!(declared_parent(
            &web,
            &c("v", "p-vpn-1", Some("p"), Some("vpn"))
        ));
        assert!(!declared_parent(
            &web,
            &c("d", "p-db-1", Some("p"), Some("db"))
        ));
        assert!(
            !declared_parent(&web, &c("v2", "q-vpn-1", Some("q"), Some("vpn"))),
            "another project's service of that name is not its parent"
        );
    }

    #[test]
    fn a_successor_is_the_same_service_or_outside_compose_the_same_name() {
        let gone = c("old", "p-vpn-1", Some("p"), Some("vpn"));
        assert!(succeeds(
            &c("new", "p-vpn-1", Some("p"), Some("vpn")),
            &gone
        ));
        assert!(!succeeds(
            &c("old", "p-vpn-1", Some("p"), Some("vpn")),
            &gone
        ));
        assert!(
            !succeeds(
                &c("new", "0123456789ab_p-vpn-1", Some("p"), Some("vpn")),
                &gone
            ),
            "compose's renamed old container is no successor"
        );
        assert!(!succeeds(
            &c("new", "p-vpn-1", Some("q"), Some("vpn")),
            &gone
        ));
        let plain = c("old", "vpn", None, None);
        assert!(succeeds(&c("new", "vpn", None, None), &plain));
        assert!(!succeeds(&c("new", "vpn2", None, None), &plain));
        let replaced = c("0123456789abcd", "0123456789ab_vpn", None, None);
        assert!(succeeds(&c("new", "vpn", None, None), &replaced));
    }

    #[test]
    fn the_fix_is_compose_up_for_a_service_and_a_rerun_otherwise() {
        assert_eq!(
            fix_command(&c("t", "p-torrent-1", Some("p"), Some("torrent")), "vpn"),
            "docker compose up -d --force-recreate --no-deps torrent"
        );
        assert!(
            fix_command(&c("t", "torrent", None, None), "vpn").contains("--network container:vpn")
        );
    }
}
