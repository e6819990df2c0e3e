//! Recreating a dependent: a container that shares a parent's network namespace
//! (`network_mode: service:vpn`, `--network container:vpn`) holds the parent's id, so once the
//! parent is recreated (a new id) it can never start again. This module turns what the engine
//! says of the dependent (`GET /containers/{id}/json`, as raw JSON) into the body of
//! `POST /containers/create` that makes the same container again, joined to the new parent.
//!
//! The JSON is passed through as the engine wrote it, not through typed models, so that no field
//! the models do not know is lost. Only what the engine refuses together with a container
//! network mode is dropped; anonymous volumes are kept by naming them, as compose does.

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

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecreateError {
    #[error("the engine's description of the container is not a JSON object")]
    NotAnObject,
    #[error("the engine's description of the container has no {0} object")]
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

/// The body of `POST /containers/create` that recreates the container described by `inspect`
/// (the engine's answer to `GET /containers/{id}/json`) with its network mode set to
/// `container:<parent_id>`.
pub fn create_body(inspect: &Value, parent_id: &str) -> Result<Value, RecreateError> {
    if parent_id.is_empty() {
        return Err(RecreateError::NoParent);
    }
    let inspect = inspect.as_object().ok_or(RecreateError::NotAnObject)?;
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
    let mounts = inspect
        .get("Mounts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    keep_anonymous_volumes(&mut host, mounts);
    body.insert("HostConfig".into(), Value::Object(host));
    Ok(Value::Object(body))
}

/// Names every anonymous volume of `mounts` (the inspect's `Mounts`), so that the new container
/// gets the old one's data instead of an empty new volume: a volume given in
/// `HostConfig.Mounts` without a source gets its name as source; any other volume whose
/// destination neither `Binds` nor `HostConfig.Mounts` gives (an image's `VOLUME`, `-v /data`)
/// is added to `Binds` as `<name>:<destination>`, as compose does.
fn keep_anonymous_volumes(host: &mut Map<String, Value>, mounts: &[Value]) {
    for m in mounts {
        let text = |key: &str| m.get(key).and_then(Value::as_str).unwrap_or("");
        let (name, dest) = (text("Name"), text("Destination"));
        if text("Type") != "volume" || name.is_empty() || dest.is_empty() {
            continue;
        }
        let bound = host
            .get("Binds")
            .and_then(Value::as_array)
            .is_some_and(|binds| {
                binds
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|b| bind_destination(b) == Some(dest))
            });
        if bound {
            continue;
        }
        if let Some(hm) = host
            .get_mut("Mounts")
            .and_then(Value::as_array_mut)
            .and_then(|ms| {
                ms.iter_mut()
                    .find(|hm| hm.get("Target").and_then(Value::as_str) == Some(dest))
            })
        {
            let source_given = hm
                .get("Source")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !source_given {
                if let Some(hm) = hm.as_object_mut() {
                    hm.insert("Source".into(), Value::String(name.to_string()));
                }
            }
            continue;
        }
        let read_only = m.get("RW").and_then(Value::as_bool) == Some(false);
        let bind = format!("{name}:{dest}{}", if read_only { ":ro" } else { "" });
        match host.get_mut("Binds").and_then(Value::as_array_mut) {
            Some(binds) => binds.push(Value::String(bind)),
            // Absent or null: start the list.
            None => {
                host.insert("Binds".into(), Value::Array(vec![Value::String(bind)]));
            }
        }
    }
}

/// The destination of a `Binds` entry, `source:destination[:options]`.
fn bind_destination(bind: &str) -> Option<&str> {
    bind.split(':').nth(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespaces_shared_with_the_old_parent_follow_it_and_auto_remove_is_refused() {
        let mut inspect = serde_json::json!({
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
            "Image",
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
        assert_eq!(body["Image"], "htdeps-fixture:manual");
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
    fn an_anonymous_volume_keeps_its_data_and_given_mounts_stay_as_they_were() {
        let body = create_body(&real_inspect(), NEW_PARENT).unwrap();
        assert_eq!(
            body["HostConfig"]["Binds"],
            json!([
                "/tmp/htdeps-bind:/bind:ro",
                "htdeps-named:/named",
                "778cdab9fbd26ab94cb151bd647e4637e47050bfecef756e94a4524b695b4e01:/data"
            ])
        );
    }

    #[test]
    fn an_anonymous_volume_with_no_binds_at_all_starts_the_list() {
        let mut inspect = real_inspect();
        inspect["HostConfig"]["Binds"] = Value::Null;
        inspect["Mounts"] = json!([{
            "Type": "volume", "Name": "abc", "Destination": "/data", "RW": false
        }]);
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        assert_eq!(body["HostConfig"]["Binds"], json!(["abc:/data:ro"]));
    }

    #[test]
    fn an_anonymous_volume_given_in_host_config_mounts_gets_its_name_as_source() {
        let mut inspect = real_inspect();
        inspect["HostConfig"]["Mounts"] = json!([{ "Type": "volume", "Target": "/data" }]);
        let body = create_body(&inspect, NEW_PARENT).unwrap();
        assert_eq!(
            body["HostConfig"]["Mounts"],
            json!([{
                "Type": "volume",
                "Target": "/data",
                "Source": "778cdab9fbd26ab94cb151bd647e4637e47050bfecef756e94a4524b695b4e01"
            }])
        );
        assert_eq!(
            body["HostConfig"]["Binds"],
            json!(["/tmp/htdeps-bind:/bind:ro", "htdeps-named:/named"])
        );
    }

    #[test]
    fn what_is_not_an_inspect_is_refused() {
        assert_eq!(
            create_body(&json!([]), NEW_PARENT),
            Err(RecreateError::NotAnObject)
        );
        assert_eq!(
            create_body(&json!({ "HostConfig": {} }), NEW_PARENT),
            Err(RecreateError::Missing("Config"))
        );
        assert_eq!(
            create_body(&json!({ "Config": {} }), NEW_PARENT),
            Err(RecreateError::Missing("HostConfig"))
        );
        assert_eq!(
            create_body(&real_inspect(), ""),
            Err(RecreateError::NoParent)
        );
    }
}
