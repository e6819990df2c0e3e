//! Probes declared by label (`healthther.probe`), under the scripted clock: when they are sent,
//! what their failures count for, and that they never widen what healthther acts on.

use super::world::World;
use super::*;
use crate::probe::Failure;

const SEC: Duration = Duration::from_secs(1);

/// A container labelled with an HTTP probe every second, two failures in a row to fail.
fn probed(id: &str, name: &str, extra: &[(&str, &str)]) -> ContainerRef {
    let mut x = c(id, name, None, None);
    for (k, v) in [
        ("healthther.probe", "http://:8080/healthz"),
        ("healthther.probe-interval", "1s"),
        ("healthther.probe-timeout", "500ms"),
        ("healthther.probe-retries", "2"),
    ]
    .iter()
    .chain(extra)
    {
        x.labels.insert((*k).into(), (*v).into());
    }
    x
}

/// `targets` in `mode`, with `containers` running, healthther on the host (it reaches every
/// container's address).
fn world(mode: &str, targets: &str, containers: &[ContainerRef]) -> World {
    let mut w = World::new(mode, targets);
    for x in containers {
        w.add(x);
    }
    w.connect();
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Anywhere,
    }));
    w.drive();
    w
}

fn probes(out: &[Command]) -> Vec<&ProbeJob> {
    out.iter()
        .filter_map(|c| match c {
            Command::Probe(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Moves the clock a second at a time for `secs` seconds, driving; returns all that came out.
fn run_for(w: &mut World, secs: u64) -> Vec<Command> {
    let mut all = Vec::new();
    for _ in 0..secs {
        all.extend(w.advance(SEC).drive());
    }
    all
}

#[test]
fn a_probe_failing_retries_times_in_a_row_restarts_it_and_says_why() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    let out = run_for(&mut w, 3);
    let sent = probes(&out);
    assert!(!sent.is_empty(), "probed within an interval: {out:?}");
    assert_eq!(sent[0].host, "10.0.0.2", "at its address");
    assert!(acts(&out).is_empty());
    // It hangs: each probe times out.
    w.get_mut("web").probe = Err(Failure::Timeout(Duration::from_millis(500)));
    let out = run_for(&mut w, 3);
    let a = acts(&out);
    assert_eq!(a.len(), 1, "restarted once: {out:?}");
    assert_eq!((a[0].action, a[0].cause), (Action::Restart, Cause::Probe));
    let r = records(&out)
        .into_iter()
        .find(|r| r.event == RecordEvent::Action)
        .expect("an action record");
    assert_eq!(r.cause, Some("probe"));
    let state = r.state.clone().expect("the state it was seen in");
    assert_eq!(
        state.probe_error.as_deref(),
        Some("no answer within 500ms"),
        "{r:?}"
    );
    assert!(
        r.seen.contains("probe failing: no answer within 500ms"),
        "{}",
        r.seen
    );
}

#[test]
fn one_failure_short_of_retries_does_nothing_and_a_success_starts_the_count_again() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    run_for(&mut w, 2);
    for _ in 0..5 {
        w.get_mut("web").probe = Err(Failure::Status(500));
        let mut out = w.advance(SEC).drive();
        w.get_mut("web").probe = Ok(());
        out.extend(w.advance(SEC).drive());
        assert!(acts(&out).is_empty(), "{out:?}");
    }
}

#[test]
fn a_restart_begins_a_new_run_whose_start_period_counts_nothing() {
    let labels = [("healthther.probe-start-period", "5s")];
    let mut w = world("auto", "web", &[probed("1", "web", &labels)]);
    w.get_mut("web").probe = Err(Failure::Refused);
    // The second of each restart, of a container that keeps refusing.
    let mut restarts = Vec::new();
    let mut probed = 0;
    for second in 1..=30 {
        let out = w.advance(SEC).drive();
        probed += probes(&out).len();
        if !acts(&out).is_empty() {
            restarts.push(second);
        }
    }
    // Seen running at start-up, when it started is not known: its start period counts from
    // then, so a stack started with healthther gets it. After each restart, five seconds of
    // failures count for nothing, then two in a row do (one second apart).
    assert!(restarts.len() >= 2, "{restarts:?}");
    assert!((6..=8).contains(&restarts[0]), "{restarts:?}");
    for pair in restarts.windows(2) {
        assert!(pair[1] - pair[0] >= 6, "{restarts:?}");
    }
    assert!(probed >= 20, "probed all the while: {probed}");
}

#[test]
fn a_non_target_with_a_probe_label_is_never_probed() {
    let mut w = world(
        "auto",
        "web",
        &[probed("1", "web", &[]), probed("2", "other", &[])],
    );
    w.get_mut("other").probe = Err(Failure::Refused);
    let out = run_for(&mut w, 10);
    let other = w.id("other");
    assert!(
        probes(&out).iter().all(|p| p.container_id != other),
        "{out:?}"
    );
    assert!(acts(&out).is_empty());
}

#[test]
fn a_probe_is_never_out_twice_and_an_answer_for_an_older_run_is_dropped() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    let mut first = Vec::new();
    for _ in 0..3 {
        first = w
            .advance(SEC)
            .said()
            .into_iter()
            .filter_map(|c| match c {
                Command::Probe(p) => Some(p),
                _ => None,
            })
            .collect();
        if !first.is_empty() {
            break;
        }
    }
    assert_eq!(first.len(), 1);
    // Unanswered: the next interval sends none.
    let out = w.advance(SEC * 3).said();
    assert!(probes(&out).is_empty(), "{out:?}");
    // It is killed and revived meanwhile; the old run's failure comes late and counts nothing.
    w.kill("web").drive();
    let old = first.remove(0);
    for _ in 0..3 {
        w.feed(Input::Probed(Probed {
            container_id: old.container_id.clone(),
            run: old.run,
            result: Err(Failure::Refused),
            took: MS,
        }));
    }
    let (reply, _) = w.request(Request::Status { json: true });
    assert!(reply.text.contains("\"failing\": false"), "{}", reply.text);
    assert!(reply.text.contains("\"failures\": 0"), "{}", reply.text);
}

#[test]
fn observe_records_a_failing_probe_and_manual_asks_before_restarting() {
    let mut w = world("observe", "web", &[probed("1", "web", &[])]);
    w.get_mut("web").probe = Err(Failure::Status(503));
    let out = run_for(&mut w, 5);
    assert!(acts(&out).is_empty());
    let observed: Vec<_> = records(&out)
        .into_iter()
        .filter(|r| r.event == RecordEvent::Observed)
        .collect();
    assert_eq!(observed.len(), 1, "said once: {out:?}");
    assert!(
        observed[0].seen.contains("HTTP 503"),
        "{}",
        observed[0].seen
    );

    let mut w = world("manual", "web", &[probed("1", "web", &[])]);
    w.get_mut("web").probe = Err(Failure::Status(503));
    let out = run_for(&mut w, 5);
    assert!(acts(&out).is_empty());
    assert!(
        records(&out).iter().any(|r| r.event == RecordEvent::Prompt),
        "{out:?}"
    );
    let (_, out) = w.answer("web", "yes");
    let a = acts(&out);
    assert_eq!((a.len(), a[0].cause), (1, Cause::Probe));
}

#[test]
fn a_container_on_no_network_healthther_shares_is_said_once_and_counted_nothing() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Networks(vec!["p_default".into()]),
    }));
    w.get_mut("web").probe = Err(Failure::Refused);
    let out = run_for(&mut w, 10);
    assert!(probes(&out).is_empty(), "{out:?}");
    assert!(acts(&out).is_empty());
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(
        reply.text.contains("attach healthther to net"),
        "{}",
        reply.text
    );
    // Attached: probed, and its failures count.
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Networks(vec!["p_default".into(), "net".into()]),
    }));
    let out = run_for(&mut w, 4);
    assert_eq!(acts(&out).len(), 1, "{out:?}");
}

#[test]
fn a_probe_and_a_healthcheck_either_makes_it_unhealthy() {
    let mut w = World::new("auto", "web");
    w.add_healthy(&probed("1", "web", &[])).connect();
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Anywhere,
    }));
    w.get_mut("web").probe = Err(Failure::Status(500));
    let out = run_for(&mut w, 4);
    let a = acts(&out);
    assert_eq!((a.len(), a[0].cause), (1, Cause::Probe), "{out:?}");
}

#[test]
fn after_a_start_no_probe_goes_out_before_its_new_address_is_known() {
    let mut w = world("observe", "web", &[probed("1", "web", &[])]);
    run_for(&mut w, 2);
    w.stop("web").drive();
    // Someone starts it again; the inspect that tells its address (perhaps a new one) is slow.
    w.hold_inspects().start("web");
    let out = w.advance(SEC * 3).said();
    assert!(probes(&out).is_empty(), "{out:?}");
    w.release().drive();
    let out = run_for(&mut w, 2);
    assert!(!probes(&out).is_empty(), "{out:?}");
}

#[test]
fn a_probe_answered_after_its_container_stopped_being_a_target_counts_for_nothing() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    w.get_mut("web").probe = Err(Failure::Status(500));
    // One failure counted; the second probe is out when it is renamed away.
    let first = next_probe(&mut w);
    w.feed(Input::Probed(Probed {
        container_id: first.container_id.clone(),
        run: first.run,
        result: Err(Failure::Status(500)),
        took: MS,
    }));
    let second = next_probe(&mut w);
    w.rename("web", "web-old");
    w.feed(Input::Probed(Probed {
        container_id: second.container_id.clone(),
        run: second.run,
        result: Err(Failure::Status(500)),
        took: MS,
    }));
    let mut out = w.drive();
    out.extend(run_for(&mut w, 5));
    assert!(acts(&out).is_empty(), "{out:?}");
    assert!(
        records(&out).is_empty(),
        "nothing to say of a non-target: {out:?}"
    );
}

/// Moves the clock a second at a time until a probe goes out, and takes it, unanswered.
fn next_probe(w: &mut World) -> ProbeJob {
    for _ in 0..60 {
        let out = w.advance(SEC).said();
        if let Some(p) = probes(&out).first() {
            return (*p).clone();
        }
    }
    panic!("no probe within a minute");
}

#[test]
fn a_container_given_another_address_is_probed_there_not_at_its_old_one() {
    // `other` is no target, and answers 500 to anyone.
    let mut w = world(
        "auto",
        "web",
        &[probed("1", "web", &[]), c("2", "other", None, None)],
    );
    w.get_mut("other").probe = Err(Failure::Status(500));
    let out = run_for(&mut w, 3);
    assert!(probes(&out).iter().all(|p| p.host == "10.0.0.2"), "{out:?}");
    // `docker network disconnect` and `connect --ip`, with neither restarted: web moves to
    // 10.0.0.9, and other takes web's old address.
    w.get_mut("web").address = Some("10.0.0.9".parse().unwrap());
    w.get_mut("other").address = Some("10.0.0.2".parse().unwrap());
    w.network_changed("web").network_changed("other");
    let out = run_for(&mut w, 10);
    assert!(
        acts(&out).is_empty(),
        "web restarted for other's answer: {out:?}"
    );
    let hosts: Vec<&str> = probes(&out).iter().map(|p| p.host.as_str()).collect();
    assert!(hosts.len() >= 5, "{hosts:?}");
    assert!(hosts.iter().all(|h| *h == "10.0.0.9"), "{hosts:?}");
    // And what it is called and labelled is still known: the event named it by id alone.
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(reply.text.contains("web (1)"), "{}", reply.text);
}

#[test]
fn a_server_that_drains_during_a_stop_through_the_api_is_not_restarted() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    run_for(&mut w, 3);
    // `docker stop` with a 30 s timeout: SIGTERM, and the server closes its listener first
    // and finishes what it was doing; it runs on meanwhile.
    w.event(EventKind::Kill { signal: Some(15) }, "web");
    w.get_mut("web").probe = Err(Failure::Refused);
    let out = run_for(&mut w, 10);
    assert!(!probes(&out).is_empty());
    assert!(acts(&out).is_empty(), "restarted during the stop: {out:?}");
}

/// The target web (10.0.0.2), its probe's label naming the host in `url`, and `other`
/// (10.0.0.3, no target) answering 500 to anyone.
fn web_probing_host(url: &str) -> World {
    let web = probed("1", "web", &[("healthther.probe", url)]);
    let mut w = world("auto", "web", &[web, c("2", "other", None, None)]);
    w.get_mut("other").probe = Err(Failure::Status(500));
    w
}

#[test]
fn a_label_pointing_the_probe_at_another_container_is_never_its_failure() {
    // web's author points its probe at `other` (10.0.0.3), which answers 500.
    let mut w = web_probing_host("http://10.0.0.3:8080/");
    let out = run_for(&mut w, 10);
    assert!(acts(&out).is_empty(), "{out:?}");
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(reply.text.contains("10.0.0.3 is not web"), "{}", reply.text);
    assert!(!reply.text.contains("FAILING"), "{}", reply.text);
}

#[test]
fn a_host_that_does_not_resolve_from_healthther_is_never_its_failure() {
    // `api`, a compose service name, does not resolve where healthther runs (on the host).
    let mut web = probed("1", "web", &[]);
    web.labels
        .insert("healthther.probe".into(), "http://api:8080/".into());
    let mut w = world("auto", "web", &[web]);
    let unresolved = Failure::Resolve {
        host: "api".into(),
        error: "failed to lookup address information: Name or service not known".into(),
    };
    w.get_mut("web").probe = Err(unresolved);
    let out = run_for(&mut w, 10);
    assert!(probes(&out).len() >= 5, "still tried: {out:?}");
    assert!(acts(&out).is_empty(), "{out:?}");
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(reply.text.contains("not probed: "), "{}", reply.text);
    assert!(reply.text.contains("cannot resolve api"), "{}", reply.text);
    assert!(
        reply.text.contains("leave the host empty"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("FAILING"), "{}", reply.text);
    // It resolves now, to the container: probed, and its failures count.
    w.get_mut("web").probe = Ok(());
    run_for(&mut w, 2);
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(!reply.text.contains("not probed"), "{}", reply.text);
    w.get_mut("web").probe = Err(Failure::Status(500));
    let out = run_for(&mut w, 4);
    assert_eq!(acts(&out).len(), 1, "{out:?}");
}

#[test]
fn a_look_at_the_run_before_a_restart_does_not_bring_back_its_old_address() {
    let mut w = world(
        "auto",
        "web",
        &[probed("1", "web", &[]), c("2", "other", None, None)],
    );
    run_for(&mut w, 3);
    // A look taken now, answered only after web was killed and revived at a new address,
    // while `other` took its old one (and answers 500 to anyone).
    let before = w.look("web");
    w.get_mut("web").address = Some("10.0.0.9".parse().unwrap());
    w.get_mut("other").address = Some("10.0.0.2".parse().unwrap());
    w.get_mut("other").probe = Err(Failure::Status(500));
    w.kill("web").drive();
    run_for(&mut w, 2);
    w.inspected(before);
    let out = run_for(&mut w, 10);
    assert!(
        acts(&out).is_empty(),
        "restarted for other's answer: {out:?}"
    );
    let hosts: Vec<&str> = probes(&out).iter().map(|p| p.host.as_str()).collect();
    assert!(hosts.iter().all(|h| *h == "10.0.0.9"), "{hosts:?}");
}

#[test]
fn a_container_in_anothers_network_is_probed_where_that_one_is_now() {
    // app shares vpn's network (`network_mode: service:vpn`) and is probed there.
    let mut w = World::new("auto", "app");
    w.add(&c("v", "vpn", None, None))
        .add_in(&probed("a", "app", &[]), "v")
        .add(&c("o", "other", None, None))
        .connect();
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Anywhere,
    }));
    w.drive();
    let out = run_for(&mut w, 3);
    assert!(probes(&out).iter().all(|p| p.host == "10.0.0.2"), "{out:?}");
    // vpn moves (disconnect, connect --ip), and `other`, answering 500, takes its old address.
    w.get_mut("vpn").address = Some("10.0.0.9".parse().unwrap());
    w.get_mut("other").address = Some("10.0.0.2".parse().unwrap());
    w.get_mut("other").probe = Err(Failure::Status(500));
    w.network_changed("vpn").network_changed("other");
    let out = run_for(&mut w, 10);
    assert!(
        acts(&out).is_empty(),
        "app restarted for other's answer: {out:?}"
    );
    let hosts: Vec<&str> = probes(&out).iter().map(|p| p.host.as_str()).collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| *h == "10.0.0.9"),
        "{hosts:?}"
    );
}

#[test]
fn probes_due_within_a_tenth_of_their_interval_go_out_together_and_keep_their_schedule() {
    let every_10s = [("healthther.probe-interval", "10s")];
    let mut w = world(
        "observe",
        "web-a,web-b,web-c",
        &[
            probed("1", "web-a", &every_10s),
            probed("2", "web-b", &every_10s),
            probed("3", "web-c", &every_10s),
        ],
    );
    for name in ["web-a", "web-b", "web-c"] {
        w.stop(name).drive();
    }
    // Started afresh: each first probe is due 10 s after its start.
    w.start("web-a").drive();
    w.pass(MS * 500).start("web-b").drive();
    w.pass(MS * 1500).start("web-c").drive();
    let names = |out: &[Command]| -> Vec<String> {
        let mut n: Vec<String> = probes(out)
            .iter()
            .map(|p| p.allowed.container.clone())
            .collect();
        n.sort();
        n
    };
    // web-a's is due now (10 s after its start): web-b's, due half a second later, goes with it, and
    // web-c's, due two seconds later, waits until it is due within a second.
    let out = w.advance(SEC * 8).drive();
    assert_eq!(names(&out), ["web-a", "web-b"], "{out:?}");
    let out = w.advance(MS * 900).drive();
    assert_eq!(names(&out), Vec::<String>::new(), "{out:?}");
    let out = w.advance(MS * 100).drive();
    assert_eq!(names(&out), ["web-c"], "a second early at most: {out:?}");
    // Early, never late, and no earlier each time: over a minute, each is probed 6 times.
    let mut sent: std::collections::BTreeMap<String, Vec<Duration>> = Default::default();
    for step in 1..=600 {
        for n in names(&w.advance(MS * 100).drive()) {
            sent.entry(n).or_default().push(MS * 100 * step);
        }
    }
    for (name, times) in &sent {
        assert_eq!(times.len(), 6, "{name}: {times:?}");
        // Each goes a second early every time (the clock moves in steps of a tenth), and its
        // next is due an interval after this one was due: 10 s apart, not 9.
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], SEC * 10, "{name}: {times:?}");
        }
    }
    assert_eq!(sent.len(), 3, "{sent:?}");
}

#[test]
fn after_each_answer_the_next_timer_is_the_soonest_next_probe() {
    let every_10s = [("healthther.probe-interval", "10s")];
    let mut w = world(
        "auto",
        "web-a,web-b",
        &[probed("1", "web-a", &every_10s), probed("2", "web-b", &[])],
    );
    run_for(&mut w, 3);
    // Both out at once, unanswered.
    let mut sent: Vec<ProbeJob> = Vec::new();
    for _ in 0..20 {
        sent.extend(probes(&w.advance(SEC).said()).into_iter().cloned());
        if sent.len() == 2 {
            break;
        }
    }
    sent.sort_by(|x, y| x.allowed.container.cmp(&y.allowed.container));
    let [a, b] = &sent[..] else {
        panic!("{sent:?}");
    };
    assert_eq!(
        (&*a.allowed.container, &*b.allowed.container),
        ("web-a", "web-b")
    );
    let answer = |job: &ProbeJob| {
        Input::Probed(Probed {
            container_id: job.container_id.clone(),
            run: job.run,
            result: Ok(()),
            took: MS,
        })
    };
    let timer = |w: &World| w.s.core.next_timer().map(|t| t - w.s.now().at);
    assert_eq!(timer(&w), None, "nothing due while both are out");
    w.feed(answer(a));
    let after_a = timer(&w).expect("web-a's next");
    // An interval after it was due, and it may have gone out up to a second early.
    assert!(after_a > SEC * 9 && after_a <= SEC * 11, "{after_a:?}");
    w.feed(answer(b));
    let after_b = timer(&w).expect("web-b's next");
    assert!(after_b <= SEC, "the sooner of the two: {after_b:?}");
    // A late answer for a run gone by changes nothing.
    w.feed(answer(b));
    assert_eq!(timer(&w), Some(after_b));
}

#[test]
fn a_named_host_is_checked_against_the_address_of_this_run_not_the_last() {
    // web's label names its own address.
    let mut w = web_probing_host("http://10.0.0.2:8080/");
    let out = run_for(&mut w, 3);
    assert!(!probes(&out).is_empty(), "{out:?}");
    // Stopped and started again from outside (compose, a restart policy): web comes back at
    // 10.0.0.9, and other has taken 10.0.0.2 meanwhile.
    w.stop("web").drive();
    w.get_mut("web").address = Some("10.0.0.9".parse().unwrap());
    w.get_mut("other").address = Some("10.0.0.2".parse().unwrap());
    w.network_changed("other");
    // The inspect that tells web's new address is slow.
    w.hold_inspects().start("web");
    let mut out = run_for(&mut w, 5);
    w.release();
    out.extend(run_for(&mut w, 5));
    assert!(
        acts(&out).is_empty(),
        "web restarted for other's answer: {out:?}"
    );
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(reply.text.contains("10.0.0.2 is not web"), "{}", reply.text);
    assert!(!reply.text.contains("FAILING"), "{}", reply.text);
}

#[test]
fn a_probe_out_when_its_container_moves_is_still_the_only_one_out() {
    let mut w = world("auto", "web", &[probed("1", "web", &[])]);
    // A probe goes out and hangs: the shell has not answered it yet (it will, by its
    // timeout at the latest).
    w.hold_probes();
    let mut out = run_for(&mut w, 3);
    assert_eq!(probes(&out).len(), 1, "{out:?}");
    // Networks connected and disconnected meanwhile, several times; each look answered.
    for _ in 0..5 {
        w.network_changed("web");
        out.extend(w.drive());
        out.extend(run_for(&mut w, 1));
    }
    assert_eq!(
        probes(&out).len(),
        1,
        "a second probe while the first is out: {out:?}"
    );
    // Once it is back (its answer is of a run before the moves, so it counts nothing),
    // probing goes on at the address of now.
    w.release();
    let out = run_for(&mut w, 3);
    assert!(!probes(&out).is_empty(), "{out:?}");
}

#[test]
fn a_container_in_a_stopped_containers_network_is_said_once_and_not_looked_at_again() {
    // app shares vpn's network; vpn is stopped (observe mode: nobody brings it back).
    let mut w = World::new("observe", "vpn,app");
    w.add(&c("v", "vpn", None, None))
        .add_in(&probed("a", "app", &[]), "v")
        .connect();
    w.feed(Input::Own(Own {
        project: None,
        reach: Reach::Anywhere,
    }));
    w.drive();
    let out = run_for(&mut w, 3);
    assert!(!probes(&out).is_empty(), "{out:?}");
    // The engine tells of the stop, then of its network's endpoint taken away.
    w.stop("vpn").drive();
    w.advance(MS).network_changed("vpn").drive();
    let out = run_for(&mut w, 30);
    let looks = out
        .iter()
        .filter(|c| matches!(c, Command::Inspect(x) if x.name == "vpn"))
        .count();
    assert!(looks <= 2, "vpn looked at {looks} times in 30 s: {out:?}");
    assert!(probes(&out).is_empty(), "{out:?}");
    let (reply, _) = w.request(Request::Status { json: false });
    assert!(
        reply
            .text
            .contains("the network of vpn, which has no address now"),
        "{}",
        reply.text
    );
    // vpn started again: app is probed where vpn is now.
    w.start("vpn").drive();
    let out = run_for(&mut w, 3);
    assert!(!probes(&out).is_empty(), "{out:?}");
}
