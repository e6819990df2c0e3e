//! Recreating a dependent whose network parent was recreated, and finishing a recreation that
//! a crash cut short: see [`crate::recreate`] for what is decided, here for the calls that
//! carry it out. Every call is made by hand (no bollard), so the engine's JSON passes whole.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::http::percent_encode;
use super::translate::{name_of, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL};
use super::{Engine, EngineError};
use crate::targets::ContainerRef;

impl Engine {
    /// Recreates the dependent `c` joined to the network namespace of `parent_id` (its parent
    /// was recreated, so `c` holds an id that is gone and can never start again), with exactly
    /// its configuration, image and volumes: see [`crate::recreate`]. In an order that a crash
    /// at any point leaves something [`Engine::repair_recreations`] can finish: the new
    /// container is created under its [`crate::recreate::temporary_name`], the old one
    /// stopped, the new one started, the old one removed (its volumes kept: the new one has
    /// them), and only then the new one takes the name. Should the create, the stop or the
    /// start fail, the new container is removed and the old one is left as it was (stopped,
    /// if the stop was done: it could not run anyway). Returns the new container's id;
    /// [`crate::recreate::RecreateError::Gone`] when the old container disappeared meanwhile.
    ///
    /// Every call is made by hand so that the engine's JSON passes through whole: bollard's
    /// typed models would drop the fields they do not know.
    pub async fn recreate_container(
        &self,
        c: &ContainerRef,
        parent_id: &str,
        stop_timeout: Duration,
    ) -> Result<String, EngineError> {
        use crate::recreate::RecreateError;
        let gone = || EngineError::Recreate(c.name.clone(), RecreateError::Gone);
        let v = self.api_version();
        let inspect = self
            .raw_json(
                &format!("inspecting container {}", c.name),
                &format!("/v{v}/containers/{}/json", c.id),
            )
            .await?
            .ok_or_else(gone)?;
        // Renamed or relabelled since the look (compose replacing it itself, say): then it may
        // be no target any more, and is not touched.
        let label = |key: &str| {
            inspect["Config"]["Labels"][key]
                .as_str()
                .map(str::to_string)
        };
        let now = ContainerRef {
            id: c.id.clone(),
            name: inspect["Name"].as_str().map(name_of).unwrap_or_default(),
            project: label(COMPOSE_PROJECT_LABEL),
            service: label(COMPOSE_SERVICE_LABEL),
            labels: BTreeMap::new(),
        };
        if !now.same_identity(c) {
            return Err(EngineError::Recreate(
                c.name.clone(),
                RecreateError::Changed { now: now.name },
            ));
        }
        let body = crate::recreate::create_body(&inspect, parent_id)
            .map_err(|e| EngineError::Recreate(c.name.clone(), e))?;
        let running = inspect["State"]["Running"].as_bool() == Some(true);
        let temporary = crate::recreate::temporary_name(&c.id, &c.name);
        // The platform of the image it ran, where the API takes one (1.41 on): an image id
        // may stand for several platforms (the containerd image store).
        let mut create_query = format!("name={}", percent_encode(&temporary));
        if self.api_at_least(1, 41) {
            let image = body["Image"].as_str().unwrap_or_default();
            let image_inspect = self
                .raw_json(
                    &format!("inspecting the image of container {}", c.name),
                    &format!("/v{v}/images/{}/json", percent_encode(image)),
                )
                .await?;
            if let Some(platform) = image_inspect.as_ref().and_then(crate::recreate::platform) {
                create_query.push_str(&format!("&platform={}", percent_encode(&platform)));
            }
        }

        let doing = format!("creating container {temporary}");
        let new_id = self
            .raw_send(
                &doing,
                "POST",
                &format!("/v{v}/containers/create?{create_query}"),
                Some(bytes::Bytes::from(body.to_string())),
            )
            .await
            .and_then(|answer| {
                let answer: serde_json::Value = answer
                    .map(|b| serde_json::from_slice(&b))
                    .transpose()
                    .map_err(|err| EngineError::unreadable(&doing, err))?
                    .unwrap_or_default();
                answer["Id"].as_str().map(str::to_string).ok_or_else(|| {
                    EngineError::answered(
                        &doing,
                        200,
                        "the engine's answer names no container id".into(),
                    )
                })
            })?;
        // Undoes the create: the old container is left as it is, to be tried again.
        let remove_new = || async {
            let removed = self
                .raw_call(
                    &format!(
                        "removing container {temporary}, which did not replace {}",
                        c.name
                    ),
                    "DELETE",
                    &format!("/v{v}/containers/{new_id}?force=1&v=0"),
                )
                .await;
            if let Err(e) = removed {
                tracing::error!(container = %c.name, "the recreation failed, and {temporary} \
                    could not be removed ({}): `docker rm -f {temporary}` does it", e.docker_text());
            }
        };
        if running {
            let stopped = self
                .raw_call(
                    &format!("stopping container {}", c.name),
                    "POST",
                    &format!(
                        "/v{v}/containers/{}/stop?t={}",
                        c.id,
                        stop_timeout.as_secs()
                    ),
                )
                .await;
            if let Err(e) = stopped {
                remove_new().await;
                return Err(if e.is_not_found() { gone() } else { e });
            }
        }
        let started = self
            .raw_call(
                &format!("starting container {temporary}"),
                "POST",
                &format!("/v{v}/containers/{new_id}/start"),
            )
            .await;
        if let Err(e) = started {
            remove_new().await;
            return Err(e);
        }
        let removed = self
            .raw_call(
                &format!("removing container {}", c.name),
                "DELETE",
                &format!("/v{v}/containers/{}?force=1&v=0", c.id),
            )
            .await;
        match removed {
            // Someone removed it already: its name is free all the same.
            Err(e) if !e.is_not_found() => {
                remove_new().await;
                return Err(e);
            }
            _ => {}
        }
        self.take_name(&new_id, &temporary, &c.name).await;
        Ok(new_id)
    }

    /// Gives the replacement `id`, under `temporary`, its `name`; a failure is only said: it
    /// runs, under a name the next start-up gives it.
    async fn take_name(&self, id: &str, temporary: &str, name: &str) -> bool {
        let renamed = self
            .raw_call(
                &format!("renaming container {temporary} to {name}"),
                "POST",
                &format!(
                    "/v{}/containers/{id}/rename?name={}",
                    self.api_version(),
                    percent_encode(name)
                ),
            )
            .await;
        match renamed {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(container = %name, "recreated, but the new container could not \
                    take its name from {temporary} ({}): `docker rename {temporary} {name}` \
                    does it", e.docker_text());
                false
            }
        }
    }

    /// Finishes the recreations a crash cut short: each container under a
    /// [`crate::recreate::temporary_name`] with the `healthther.recreate=true` label, whose
    /// original name `ours` takes for a target (so that another healthther's recreation under
    /// way is left to it), is dealt with as [`crate::recreate::repair`] decides (the old
    /// container stopped within `stop_timeout` and removed) and started.
    /// Run once the engine answers, before the first list, so that the list sees each under its
    /// name. Failures are said and leave the containers as they are.
    pub async fn repair_recreations<T>(
        &self,
        ours: impl Fn(&ContainerRef) -> Option<T>,
        stop_timeout: Duration,
    ) -> Vec<(T, ContainerRef)> {
        use crate::recreate::{original_name, repair, volumes_from, Parents, Repair};
        let mut finished = Vec::new();
        let filters = HashMap::from([
            ("label", vec!["healthther.recreate=true"]),
            ("name", vec!["-healthther-recreating-"]),
        ]);
        let found = match self.list_filtered(filters).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("looking for recreations cut short: {}", e.docker_text());
                return finished;
            }
        };
        let v = self.api_version();
        for new in found.into_iter().map(|l| l.container) {
            let Some(name) = original_name(&new.name) else {
                continue;
            };
            let to_be = ContainerRef {
                name: name.to_string(),
                ..new.clone()
            };
            let Some(target) = ours(&to_be) else {
                continue;
            };
            let said = |e: EngineError| {
                tracing::warn!(container = %name, "a recreation was cut short, and {} could not \
                    be put in its place: {}", new.name, e.docker_text());
            };
            let looked = async {
                let replacement = self
                    .raw_json(
                        &format!("inspecting container {}", new.name),
                        &format!("/v{v}/containers/{}/json", new.id),
                    )
                    .await?;
                let holder = self
                    .raw_json(
                        &format!("inspecting container {name}"),
                        &format!("/v{v}/containers/{}/json", percent_encode(name)),
                    )
                    .await?;
                Ok::<_, EngineError>((replacement, holder))
            };
            let (replacement, holder) = match looked.await {
                Ok((Some(r), holder)) => (r, holder),
                // Removed meanwhile.
                Ok((None, _)) => continue,
                Err(e) => {
                    said(e);
                    continue;
                }
            };
            let holder_id = holder.as_ref().and_then(|h| h["Id"].as_str());
            let new_parent = self.network_parent(&v, Some(&replacement)).await;
            let old_parent = self.network_parent(&v, holder.as_ref()).await;
            let parents = Parents {
                replacements_runs: new_parent
                    .as_ref()
                    .is_some_and(|p| p["State"]["Running"].as_bool() == Some(true)),
                old_ones_exists: old_parent.is_some(),
            };
            match repair(&new.name, &volumes_from(&replacement), holder_id, parents) {
                Repair::Leave => {
                    tracing::warn!(container = %name, "a recreation was cut short, and {} is \
                        left as it is: another container has the name now (`docker rm {}` if \
                        it is not wanted)", new.name, new.name);
                    continue;
                }
                Repair::RemoveOldThenFinish { old } => {
                    // Still running if the crash came before its stop: it is given its stop
                    // timeout, as the recreation would have; the removal kills it otherwise.
                    let _ = self
                        .raw_call(
                            &format!("stopping container {name}, which {} replaces", new.name),
                            "POST",
                            &format!("/v{v}/containers/{old}/stop?t={}", stop_timeout.as_secs()),
                        )
                        .await;
                    let removed = self
                        .raw_call(
                            &format!("removing container {name}, which {} replaces", new.name),
                            "DELETE",
                            &format!("/v{v}/containers/{old}?force=1&v=0"),
                        )
                        .await;
                    if let Err(e) = removed {
                        said(e);
                        continue;
                    }
                }
                Repair::Finish => {}
            }
            if !self.take_name(&new.id, &new.name, name).await {
                continue;
            }
            if replacement["State"]["Running"].as_bool() != Some(true) {
                let started = self
                    .raw_call(
                        &format!("starting container {name}"),
                        "POST",
                        &format!("/v{v}/containers/{}/start", new.id),
                    )
                    .await;
                if let Err(e) = started {
                    said(e);
                    continue;
                }
            }
            tracing::info!(container = %name, "a recreation was cut short: finished");
            finished.push((
                target,
                ContainerRef {
                    id: new.id.clone(),
                    ..to_be
                },
            ));
        }
        finished
    }

    /// What the engine says of the container `inspect`'s network mode names, if it names one
    /// and it exists.
    async fn network_parent(
        &self,
        v: &str,
        inspect: Option<&serde_json::Value>,
    ) -> Option<serde_json::Value> {
        let id = inspect.and_then(crate::recreate::network_parent_of)?;
        self.raw_json(
            &format!("inspecting container {id}"),
            &format!("/v{v}/containers/{}/json", percent_encode(id)),
        )
        .await
        .ok()
        .flatten()
    }
}
