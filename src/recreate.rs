//! Recreating a dependent: a container that shares a parent's network namespace
//! (`network_mode: service:vpn`, `--network container:vpn`) holds the parent's id, so once the
//! parent is recreated (a new id) it can never start again. This module turns what the engine
//! says of the dependent (`GET /containers/{id}/json`, as raw JSON) into the body of
//! `POST /containers/create` that makes the same container again, joined to the new parent.
//!
//! The JSON is passed through as the engine wrote it, not through typed models, so that no field
//! the models do not know is lost. Only what the engine refuses together with a container
//! network mode is dropped. The new container runs the image the old one ran (by id, whatever
//! its tag names now) and takes over its volumes with `VolumesFrom`, so that anonymous volumes
//! keep their data and stay anonymous: `docker rm -v` and `compose down -v` remove them as before.
//!
//! The replacement is created under a [`temporary_name`] no other tool uses, and takes the name
//! only once the old container is gone; one found under such a name at start-up is a recreation
//! a crash cut short, and is finished (see [`repair`]).

use serde_json::{Map, Value};
use thiserror::Error;

/// `Config` fields the engine refuses when the network mode is `container:` (or that belong to
/// the parent's namespace): "conflicting options".
const CONFIG_DROPPED: &[&str] = &["Hostname", "Domainname", "MacAddress", "ExposedPorts"];
/// `HostConfig` fields the engine refuses with a `container:` network mode.
const HOST_CONFIG_DROPPED: &[&str] = &[
    "PortBindings",
    "PublishAllPorts",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "Links",
    "MacAddress",
];

/// The `-`-joined mark of a [`temporary_name`]: no other tool names containers so.
const TEMPORARY_MARK: &str = "-healthther-recreating-";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecreateError {
    #[error("the engine's description of the container is not a JSON object")]
    NotAnObject,
    #[error("the engine's description of the container has no {0}")]
    Missing(&'static str),
    #[error("the parent's id is empty")]
    NoParent,
    #[error(
        "it is removed as soon as it stops (--rm, AutoRemove), so it cannot be replaced without \
         losing it; recreate it by hand"
    )]
    AutoRemove,
    #[error("it was renamed or relabelled meanwhile (now {now}), so it may be no target any more")]
    Changed { now: String },
    #[error("it was removed meanwhile")]
    Gone,
}

/// The name a replacement goes by until the container it replaces (`id`, named `name`) is
/// gone: `<name>-healthther-recreating-<8 hex of id>`. Not compose's `<12 hex>_<name>`, which
/// compose gives its own new container (v2) or the old one (v1) while it recreates the same
/// service: whichever came second would fail. Made only of the name's characters, `-` and hex
/// digits, so it is a valid name wherever the name is.
pub fn temporary_name(id: &str, name: &str) -> String {
    format!("{name}{TEMPORARY_MARK}{}", id.get(..8).unwrap_or(id))
}

/// Whether `name` is a [`temporary_name`]: a replacement not yet in its place, which is no
/// target.
pub fn is_temporary_name(name: &str) -> bool {
    original_name(name).is_some()
}

/// The name a container under a [`temporary_name`] is to take.
pub fn original_name(name: &str) -> Option<&str> {
    let (original, hex) = name.rsplit_once(TEMPORARY_MARK)?;
    let hex_ok = hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (!original.is_empty() && hex_ok).then_some(original)
}

/// The body of `POST /containers/create` that recreates the container described by `inspect`
/// (the engine's answer to `GET /containers/{id}/json`) with its network mode set to
/// `container:<parent_id>`.
pub fn create_body(inspect: &Value, parent_id: &str) -> Result<Value, RecreateError> {
    if parent_id.is_empty() {
        return Err(RecreateError::NoParent);
    }
    let inspect = inspect.as_object().ok_or(RecreateError::NotAnObject)?;
    let text = |key: &'static str| {
        inspect
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(RecreateError::Missing(key))
    };
    let (id, image) = (text("Id")?, text("Image")?);
    let mut body = inspect
        .get("Config")
        .and_then(Value::as_object)
        .cloned()
        .ok_or(RecreateError::Missing("Config"))?;
    let mut host = inspect
        .get("HostConfig")
        .and_then(Value::as_object)
        .cloned()
        .ok_or(RecreateError::Missing("HostConfig"))?;
    if host.get("AutoRemove").and_then(Value::as_bool) == Some(true) {
        return Err(RecreateError::AutoRemove);
    }
    for key in CONFIG_DROPPED {
        body.remove(*key);
    }
    // The image it ran, by id: `Config.Image` is the name it was created from, which a pull or
    // a build may have moved to another image since (or removed); with the old image's
    // environment and command on top, that would be neither the old container nor a new one.
    body.insert("Image".into(), Value::String(image.to_string()));
    // The IPC and PID namespaces it shared with the old parent (compose's `ipc: service:vpn`)
    // follow the network to the new one.
    let old = host
        .get("NetworkMode")
        .and_then(Value::as_str)
        .map(str::to_string);
    for key in ["IpcMode", "PidMode"] {
        if host.get(key).and_then(Value::as_str) == old.as_deref() && old.is_some() {
            host.insert(key.into(), Value::String(format!("container:{parent_id}")));
        }
    }
    for key in HOST_CONFIG_DROPPED {
        host.remove(*key);
    }
    host.insert(
        "NetworkMode".into(),
        Value::String(format!("container:{parent_id}")),
    );
    take_over_volumes(&mut host, id);
    body.insert("HostConfig".into(), Value::Object(host));
    Ok(Value::Object(body))
}

/// Gives the new container the old one's volumes with `VolumesFrom`: the engine then mounts
/// each of them as the old container had it, an anonymous volume still as anonymous (`docker
/// rm -v` of the new container removes it), which naming it in `Binds` or `Mounts` would not.
/// What the old container had from a `VolumesFrom` of its own comes along the same way. An
/// anonymous volume given in `HostConfig.Mounts` (one without a source) is left out there, or
/// the engine would mount a new, empty one over it.
fn take_over_volumes(host: &mut Map<String, Value>, old_id: &str) {
    host.insert(
        "VolumesFrom".into(),
        Value::Array(vec![Value::String(old_id.to_string())]),
    );
    if let Some(mounts) = host.get_mut("Mounts").and_then(Value::as_array_mut) {
        mounts.retain(|m| {
            let anonymous = m.get("Type").and_then(Value::as_str) == Some("volume")
                && m.get("Source")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
            !anonymous
        });
    }
}

/// `os/architecture[/variant]` of an image, from the engine's answer to `GET /images/{id}/json`:
/// the platform to create the new container for, so that an engine that holds an image for
/// several platforms under one id picks the one the old container ran.
pub fn platform(image_inspect: &Value) -> Option<String> {
    let text = |key: &str| {
        image_inspect
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut platform = format!("{}/{}", text("Os")?, text("Architecture")?);
    if let Some(variant) = text("Variant") {
        platform = format!("{platform}/{variant}");
    }
    Some(platform)
}

/// What to do at start-up with a replacement found under a [`temporary_name`]: a recreation
/// cut short (healthther killed, the host rebooted) after the replacement was created. The old
/// container cannot run again (its parent is gone), so the recreation is finished, never undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The old container, `old`, still has the name: remove it (its volumes stay, the
    /// replacement has them), then give the replacement the name and start it.
    RemoveOldThenFinish { old: String },
    /// The name is free: give the replacement the name, and start it.
    Finish,
    /// Not a replacement of ours, or another container has taken the name: touch nothing.
    Leave,
}

/// Decides what to do with the container under the temporary name `temporary`, whose
/// `HostConfig.VolumesFrom` is `volumes_from`, given the id of the container that has its
/// original name now (`None`: none has). A replacement names exactly the container it replaces
/// there (see [`create_body`]), whose id begins with the name's hex digits.
pub fn repair(
    temporary: &str,
    volumes_from: &[String],
    holder: Option<&str>,
    parents: Parents,
) -> Repair {
    // A recreation is only ever made because the old parent went: with the old container's
    // parent still there, or no parent running for the replacement, it is none of ours (a
    // container named and labelled like one, say) and nothing is touched.
    if !parents.replacements_runs || parents.old_ones_exists {
        return Repair::Leave;
    }
    let Some((_, hex)) = temporary.rsplit_once(TEMPORARY_MARK) else {
        return Repair::Leave;
    };
    let [old] = volumes_from else {
        return Repair::Leave;
    };
    if !old.starts_with(hex) {
        return Repair::Leave;
    }
    match holder {
        None => Repair::Finish,
        Some(h) if h == old => Repair::RemoveOldThenFinish { old: old.clone() },
        Some(_) => Repair::Leave,
    }
}

/// What the engine says of the network parents, for [`repair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parents {
    /// The container the replacement's network mode names runs.
    pub replacements_runs: bool,
    /// The container the old one's network mode names still exists (`false` when the old one
    /// is gone too).
    pub old_ones_exists: bool,
}

/// The container a `container:<id>` network mode names, from an inspect.
pub fn network_parent_of(inspect: &Value) -> Option<&str> {
    inspect["HostConfig"]["NetworkMode"]
        .as_str()?
        .strip_prefix("container:")
}

/// `HostConfig.VolumesFrom` of an inspect, empty when there is none.
pub fn volumes_from(inspect: &Value) -> Vec<String> {
    inspect["HostConfig"]["VolumesFrom"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespaces_shared_with_the_old_parent_follow_it_and_auto_remove_is_refused() {
        let mut inspect = serde_json::json!({
            "Id": "old-dependent",
            "Image": "sha256:1",
            "Config": {"Image": "x"},
            "HostConfig": {
                "NetworkMode": "container:old",
                "IpcMode": "container:old",
                "PidMode": "",
            },
        });
        let body = super::create_body(&inspect, "new").expect("a body");
        assert_eq!(body["HostConfig"]["IpcMode"], "container:new");
        assert_eq!(body["HostConfig"]["PidMode"], "");
        inspect["HostConfig"]["AutoRemove"] = serde_json::Value::Bool(true);
        assert!(matches!(
            super::create_body(&inspect, "new"),
            Err(super::RecreateError::AutoRemove)
        ));
    }

    use super::*;
    use serde_json::json;

    /// Trimmed from a real inspect (Docker 20.10, API 1.41) of
    /// `docker run -d --network container:P -e FOO=bar -l app=torrent -l healthther.recreate=true
    /// --restart on-failure:3 -v /tmp/htdeps-bind:/bind:ro -v /data -v htdeps-named:/named
    /// --mount type=tmpfs,destination=/tmp --cap-add NET_ADMIN --user 0:0 -w /
    /// --stop-signal SIGINT --stop-timeout 7 --memory 64m htdeps-fixture:manual serve 9090`.
    fn real_inspect() -> Value {
        json!({
            "Id": "07fbce1ef9a67c18fb7ce201dabac38b96d1b78acb2de2275df133dc5c0e4848",
            "Name": "/htdeps-insp-p-d",
            "Image": "sha256:46f7a27158188bace2d58bfd11036f4c259710439dbb55fa5e8b7948542cfc79",
            "State": { "Status": "running", "Running": true },
            "HostConfig": {
                "Binds": ["/tmp/htdeps-bind:/bind:ro", "htdeps-named:/named"],
                "ContainerIDFile": "",
                "LogConfig": {
                    "Type": "json-file",
                    "Config": { "max-file": "3", "max-size": "10m" }
                },
                "NetworkMode": "container:4abaa29872ee325056374cb75aca18082af0b61ae060e8e78766601d3febb21c",
                "PortBindings": {},
                "RestartPolicy": { "Name": "on-failure", "MaximumRetryCount": 3 },
                "AutoRemove": false,
                "VolumesFrom": null,
                "CapAdd": ["CAP_NET_ADMIN"],
                "CapDrop": null,
                "CgroupnsMode": "host",
                "Dns": [],
                "DnsOptions": [],
                "DnsSearch": [],
                "ExtraHosts": null,
                "IpcMode": "private",
                "Links": null,
                "PublishAllPorts": false,
                "ShmSize": 67108864,
                "Runtime": "runc",
                "ConsoleSize": [0, 0],
                "Memory": 67108864,
                "MemorySwap": 134217728,
                "Mounts": [{ "Type": "tmpfs", "Target": "/tmp" }],
                "MaskedPaths": ["/proc/asound", "/sys/firmware"],
                "ReadonlyPaths": ["/proc/bus", "/proc/sysrq-trigger"]
            },
            "Mounts": [
                {
                    "Type": "bind", "Source": "/tmp/htdeps-bind", "Destination": "/bind",
                    "Mode": "ro", "RW": false, "Propagation": "rprivate"
                },
                {
                    "Type": "volume", "Name": "htdeps-named",
                    "Source": "/var/lib/docker/volumes/htdeps-named/_data",
                    "Destination": "/named", "Driver": "local", "Mode": "z", "RW": true,
                    "Propagation": ""
                },
                {
                    "Type": "tmpfs", "Source": "", "Destination": "/tmp", "Mode": "", "RW": true,
                    "Propagation": ""
                },
                {
                    "Type": "volume",
                    "Name": "778cdab9fbd26ab94cb151bd647e4637e47050bfecef756e94a4524b695b4e01",
                    "Source": "/var/lib/docker/volumes/778cdab9fbd26ab94cb151bd647e4637e47050bfecef756e94a4524b695b4e01/_data",
                    "Destination": "/data", "Driver": "local", "Mode": "", "RW": true,
                    "Propagation": ""
                }
            ],
            "Config": {
                "Hostname": "4abaa29872ee",
                "Domainname": "",
                "User": "0:0",
                "AttachStdin": false,
                "Tty": false,
                "OpenStdin": false,
                "Env": [
                    "FOO=bar",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                ],
                "Cmd": ["serve", "9090"],
                "Healthcheck": {
                    "Test": ["CMD", "/fixture", "check"],
                    "Interval": 1000000000u64,
                    "Timeout": 3000000000u64,
                    "Retries": 1
                },
                "Image": "htdeps-fixture:manual",
                "Volumes": { "/data": {} },
                "WorkingDir": "/",
                "Entrypoint": ["/fixture"],
                "OnBuild": null,
                "Labels": { "app": "torrent", "healthther.recreate": "true" },
                "StopSignal": "SIGINT",
                "StopTimeout": 7
            },
            "NetworkSettings": { "Networks": {} }
        })
    }

    const NEW_PARENT: &str = "89e717cd2cb3f34449e96bf1282eb86ae51b624000d5de2dae2451aceb26baa1";

    #[test]
    fn the_configuration_is_kept_and_joined_to_the_new_parent() {
        let inspect = real_inspect();
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        let host = &body["HostConfig"];
        assert_eq!(host["NetworkMode"], format!("container:{NEW_PARENT}"));
        assert_ne!(
            host["IpcMode"],
            format!("container:{NEW_PARENT}"),
            "an IPC mode of its own is left as it is"
        );
        for key in [
            "User",
            "Env",
            "Cmd",
            "Healthcheck",
            "Volumes",
            "WorkingDir",
            "Entrypoint",
            "Labels",
            "StopSignal",
            "StopTimeout",
            "Tty",
            "OpenStdin",
        ] {
            assert_eq!(body[key], inspect["Config"][key], "Config.{key}");
        }
        assert_eq!(
            body["Image"], inspect["Image"],
            "the image it ran, by id, not the tag that may name another one now"
        );
        for key in [
            "LogConfig",
            "RestartPolicy",
            "CapAdd",
            "Memory",
            "MemorySwap",
            "ShmSize",
            "Mounts",
            "MaskedPaths",
            "ReadonlyPaths",
            "IpcMode",
            "AutoRemove",
        ] {
            assert_eq!(host[key], inspect["HostConfig"][key], "HostConfig.{key}");
        }
        // Nothing of the inspect that is not configuration.
        for key in ["Id", "Name", "State", "Mounts", "NetworkSettings", "Config"] {
            assert!(body.get(key).is_none(), "{key} must not be in the body");
        }
    }

    #[test]
    fn what_the_engine_refuses_with_a_container_network_mode_is_dropped() {
        let mut inspect = real_inspect();
        inspect["Config"]["MacAddress"] = json!("02:42:ac:11:00:02");
        inspect["Config"]["ExposedPorts"] = json!({ "80/tcp": {} });
        inspect["HostConfig"]["Dns"] = json!(["1.1.1.1"]);
        inspect["HostConfig"]["ExtraHosts"] = json!(["a:1.2.3.4"]);
        inspect["HostConfig"]["PortBindings"] = json!({ "80/tcp": [{ "HostPort": "8080" }] });
        inspect["HostConfig"]["Links"] = json!(["/x:/y/x"]);
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        for key in CONFIG_DROPPED {
            assert!(body.get(*key).is_none(), "Config.{key} kept");
        }
        for key in HOST_CONFIG_DROPPED {
            assert!(
                body["HostConfig"].get(*key).is_none(),
                "HostConfig.{key} kept"
            );
        }
    }

    #[test]
    fn the_volumes_come_from_the_old_container_and_given_mounts_stay_as_they_were() {
        let inspect = real_inspect();
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        assert_eq!(body["HostConfig"]["VolumesFrom"], json!([inspect["Id"]]));
        assert_eq!(body["HostConfig"]["Binds"], inspect["HostConfig"]["Binds"]);
        assert_eq!(
            body["HostConfig"]["Mounts"],
            inspect["HostConfig"]["Mounts"]
        );
    }

    #[test]
    fn an_anonymous_volume_given_in_host_config_mounts_is_left_to_volumes_from() {
        let mut inspect = real_inspect();
        inspect["HostConfig"]["Mounts"] = json!([
            { "Type": "volume", "Target": "/data" },
            { "Type": "volume", "Source": "", "Target": "/data2" },
            { "Type": "volume", "Source": "named", "Target": "/named2" },
            { "Type": "tmpfs", "Target": "/tmp" }
        ]);
        inspect["HostConfig"]["VolumesFrom"] = json!(["other:ro"]);
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        assert_eq!(
            body["HostConfig"]["Mounts"],
            json!([
                { "Type": "volume", "Source": "named", "Target": "/named2" },
                { "Type": "tmpfs", "Target": "/tmp" }
            ])
        );
        // What came from `other` is the old container's, and comes with it.
        assert_eq!(body["HostConfig"]["VolumesFrom"], json!([inspect["Id"]]));
    }

    #[test]
    fn temporary_names_are_told_apart_from_compose_ones() {
        let id = "07fbce1ef9a67c18fb7ce201dabac38b96d1b78acb2de2275df133dc5c0e4848";
        let t = temporary_name(id, "proj-torrent-1");
        assert_eq!(t, "proj-torrent-1-healthther-recreating-07fbce1e");
        assert!(is_temporary_name(&t));
        assert_eq!(original_name(&t), Some("proj-torrent-1"));
        for other in [
            "07fbce1ef9a6_proj-torrent-1",
            "proj-torrent-1",
            "-healthther-recreating-07fbce1e",
            "x-healthther-recreating-07fbce1",
            "x-healthther-recreating-07fbce1g",
        ] {
            assert!(!is_temporary_name(other), "{other}");
        }
    }

    #[test]
    fn the_platform_is_the_images_own() {
        let image = json!({ "Os": "linux", "Architecture": "arm", "Variant": "v7" });
        assert_eq!(platform(&image).as_deref(), Some("linux/arm/v7"));
        let image = json!({ "Os": "linux", "Architecture": "amd64" });
        assert_eq!(platform(&image).as_deref(), Some("linux/amd64"));
        assert_eq!(platform(&json!({ "Os": "linux" })), None);
    }

    /// The old parent gone, the new one running: what a recreation cut short leaves.
    const GONE: Parents = Parents {
        replacements_runs: true,
        old_ones_exists: false,
    };

    #[test]
    fn a_lookalike_of_a_recreation_is_left_alone() {
        let old = "07fbce1ef9a67c18fb7ce201dabac38b96d1b78acb2de2275df133dc5c0e4848";
        let t = temporary_name(old, "torrent");
        let from = [old.to_string()];
        // The target still has its parent: a container named and labelled like a replacement
        // (anyone may create one) must not take its place.
        let forged = Parents {
            replacements_runs: true,
            old_ones_exists: true,
        };
        assert_eq!(repair(&t, &from, Some(old), forged), Repair::Leave);
        let orphan = Parents {
            replacements_runs: false,
            old_ones_exists: false,
        };
        assert_eq!(repair(&t, &from, Some(old), orphan), Repair::Leave);
    }

    #[test]
    fn a_cut_short_recreation_is_finished() {
        let old = "07fbce1ef9a67c18fb7ce201dabac38b96d1b78acb2de2275df133dc5c0e4848";
        let t = temporary_name(old, "torrent");
        let from = [old.to_string()];
        assert_eq!(repair(&t, &from, None, GONE), Repair::Finish);
        assert_eq!(
            repair(&t, &from, Some(old), GONE),
            Repair::RemoveOldThenFinish { old: old.into() }
        );
        assert_eq!(repair(&t, &from, Some("another"), GONE), Repair::Leave);
        // Not a replacement of the container its name says.
        assert_eq!(repair(&t, &[], None, GONE), Repair::Leave);
        assert_eq!(
            repair(&t, &["89e717cd2cb3".into()], None, GONE),
            Repair::Leave
        );
        assert_eq!(
            repair(&t, &[old.to_string(), "x".into()], None, GONE),
            Repair::Leave
        );
        assert_eq!(repair("torrent", &from, None, GONE), Repair::Leave);
        assert_eq!(
            volumes_from(&json!({ "HostConfig": { "VolumesFrom": [old] } })),
            from
        );
        assert!(volumes_from(&json!({ "HostConfig": { "VolumesFrom": null } })).is_empty());
    }

    #[test]
    fn what_is_not_an_inspect_is_refused() {
        assert_eq!(
            create_body(&json!([]), NEW_PARENT),
            Err(RecreateError::NotAnObject)
        );
        let ids = json!({ "Id": "a", "Image": "sha256:1" });
        let mut no_config = ids.clone();
        no_config["HostConfig"] = json!({});
        assert_eq!(
            create_body(&no_config, NEW_PARENT),
            Err(RecreateError::Missing("Config"))
        );
        let mut no_host = ids.clone();
        no_host["Config"] = json!({});
        assert_eq!(
            create_body(&no_host, NEW_PARENT),
            Err(RecreateError::Missing("HostConfig"))
        );
        assert_eq!(
            create_body(
                &json!({ "Id": "a", "Config": {}, "HostConfig": {} }),
                NEW_PARENT
            ),
            Err(RecreateError::Missing("Image"))
        );
        assert_eq!(
            create_body(&real_inspect(), ""),
            Err(RecreateError::NoParent)
        );
    }
}
