//! The engine's plain-data answers read into our types: an event's action, a container's
//! labels and name, and a list answer read leniently. No bollard type here: what arrives as one
//! is read in the engine module itself.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::policy::{health_from_status_text, network_parent, Address, Health, Listed, Status};
use crate::targets::ContainerRef;
use crate::watch::core::event::EventKind;

pub(super) const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
pub(super) const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// The kind of event an action of the engine's event stream is.
pub(super) fn kind_from_action(action: &str) -> EventKind {
    // health_status actions read "health_status: unhealthy".
    if let Some(h) = action.strip_prefix("health_status:") {
        return match Health::from_engine(h.trim()) {
            Health::None => EventKind::Other,
            h => EventKind::Health(h),
        };
    }
    match action {
        "health_status" => EventKind::HealthChecked,
        "create" => EventKind::Create,
        "start" => EventKind::Start,
        "die" | "died" => EventKind::Die,
        "oom" => EventKind::Oom,
        "kill" => EventKind::Kill { signal: None },
        "stop" => EventKind::Stop,
        "destroy" => EventKind::Destroy,
        "rename" => EventKind::Rename,
        _ => EventKind::Other,
    }
}

/// A container's labels, as matching and its settings need them: all of them, since a label
/// selector in `HEALTH_TARGETS` may name any key. They stay in memory, never in a log.
pub(super) fn ours(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The attributes of a container's event that the engine adds beside its labels.
const EVENT_ATTRIBUTES: &[&str] = &[
    "name",
    "image",
    "exitCode",
    "signal",
    "execID",
    "execDuration",
    "container",
];

/// The labels among an event's attributes: all but those the engine adds (a label of the same
/// key as one of those is lost here; the next inspect or list has it).
pub(super) fn labels_of_event(attributes: &HashMap<String, String>) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter(|(k, _)| !EVENT_ATTRIBUTES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(super) fn name_of(raw: &str) -> String {
    raw.strip_prefix('/').unwrap_or(raw).to_string()
}

/// What a list answer says of one container, as the engine wrote it: states and health as
/// plain text, so that a name we do not know is [`Status::Other`], not a failed list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Summary {
    id: Option<String>,
    names: Option<Vec<String>>,
    labels: Option<HashMap<String, String>>,
    state: Option<String>,
    status: Option<String>,
    health: Option<SummaryHealth>,
    host_config: Option<SummaryHostConfig>,
    network_settings: Option<SummaryNetworks>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryNetworks {
    networks: Option<HashMap<String, SummaryEndpoint>>,
}

#[derive(Debug, Deserialize)]
struct SummaryEndpoint {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    #[serde(rename = "GlobalIPv6Address")]
    ipv6_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryHostConfig {
    network_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryHealth {
    status: Option<String>,
}

pub(super) fn listed(s: Summary) -> Option<Listed> {
    let id = s.id?;
    // A container has one name; older engines also listed link aliases ("/a/b"), never first.
    let name = name_of(s.names.as_deref()?.first()?);
    let labels = s.labels.unwrap_or_default();
    let label = |key: &str| labels.get(key).cloned();
    let (project, service) = (label(COMPOSE_PROJECT_LABEL), label(COMPOSE_SERVICE_LABEL));
    let status = Status::from_engine(s.state.as_deref().unwrap_or(""));
    let network_mode = s.host_config.and_then(|h| h.network_mode);
    let health = match s.health.and_then(|h| h.status).filter(|h| !h.is_empty()) {
        Some(h) => Health::from_engine(&h),
        // Engines before API 1.52 give health only in the status text.
        None => health_from_status_text(s.status.as_deref().unwrap_or("")),
    };
    Some(Listed {
        container: ContainerRef {
            id,
            name,
            project,
            service,
            labels: ours(&labels),
        },
        status,
        health,
        host_network: network_mode.as_deref() == Some("host"),
        network_parent: network_mode.as_deref().and_then(network_parent),
        addresses: addresses(
            s.network_settings
                .and_then(|n| n.networks)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, e)| (name, e.ip_address, e.ipv6_address)),
        ),
    })
}

/// A container's addresses from its networks' endpoints (name, IPv4, IPv6), as the engine
/// wrote them: an empty or unparsable one is none. Sorted by network, IPv4 first.
pub(super) fn addresses(
    endpoints: impl Iterator<Item = (String, Option<String>, Option<String>)>,
) -> Vec<Address> {
    let mut found: Vec<Address> = endpoints
        .flat_map(|(network, v4, v6)| {
            [v4, v6].into_iter().flatten().filter_map(move |ip| {
                Some(Address {
                    network: network.clone(),
                    ip: ip.parse().ok()?,
                })
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.network, a.ip.is_ipv6()).cmp(&(&b.network, b.ip.is_ipv6())));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_actions() {
        let cases = [
            ("die", EventKind::Die),
            (
                "health_status: unhealthy",
                EventKind::Health(Health::Unhealthy),
            ),
            ("health_status: healthy", EventKind::Health(Health::Healthy)),
            (
                "health_status:unhealthy",
                EventKind::Health(Health::Unhealthy),
            ),
            ("exec_start: sh", EventKind::Other),
            ("oom", EventKind::Oom),
            // Podman's spellings.
            ("died", EventKind::Die),
            ("health_status", EventKind::HealthChecked),
        ];
        for (action, want) in cases {
            assert_eq!(kind_from_action(action), want, "{action}");
        }
    }

    #[test]
    fn podman_lists_are_read_with_states_bollard_does_not_know() {
        // As Podman 4.3 lists a container killed a moment ago, and one with a health check
        // (Podman writes no health into a list).
        let body = br#"[{"Id":"a1","Names":["/hhpod-a"],"State":"stopped","Status":"Exited (137) Less than a second ago","Labels":{}},
            {"Id":"b2","Names":["/hhpod-b"],"State":"running","Status":"Up 6 seconds","Labels":null}]"#;
        let summaries: Vec<Summary> = serde_json::from_slice(body).expect("decodes");
        let listed: Vec<Listed> = summaries.into_iter().filter_map(listed).collect();
        assert_eq!(listed[0].status, Status::Other("stopped".into()));
        assert_eq!(listed[0].container.name, "hhpod-a");
        assert_eq!(listed[1].status, Status::Running);
        assert_eq!(listed[1].health, Health::None);
    }
}
