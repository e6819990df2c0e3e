//! The watch core's own cost per probe, without I/O: N running targets, each probed every 10 s,
//! every probe answered at once and well. Prints the core's time per probe, hot, and cold (each
//! input after 8 MiB of other memory was touched, as other processes do between two wake-ups
//! of a sidecar on a shared machine).
//!
//! `cargo run --release --example probe_core_cost -- 30 300`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use healthther::config::{Config, Invocation};
use healthther::policy::{Address, Health, Listed, Status};
use healthther::targets::ContainerRef;
use healthther::watch::{Command, Core, Input, Now, Own, Probed, Reach};

fn core_with(n: usize, start: Now) -> Core {
    let names: Vec<String> = (0..n).map(|i| format!("node{i}")).collect();
    let argv = [
        "healthther",
        "--targets",
        &names.join(","),
        "--mode",
        "auto",
    ];
    let config = match Config::load_with(argv, |_| None) {
        Ok(Invocation::Daemon(c)) => *c,
        // Targets and a mode, nothing else: a daemon's configuration, or a bug to stop on.
        _ => panic!("not a daemon's configuration"),
    };
    let mut core = Core::new(Arc::new(config), false, start);
    let containers = (0..n)
        .map(|i| {
            let mut c = ContainerRef {
                id: format!("{i:064x}"),
                name: names[i].clone(),
                ..ContainerRef::default()
            };
            c.labels
                .insert("healthther.probe".into(), "http://:8080/healthz".into());
            Listed {
                container: c,
                status: Status::Running,
                health: Health::None,
                network_parent: None,
                addresses: vec![Address {
                    network: "bridge".into(),
                    ip: std::net::Ipv4Addr::new(172, 17, (i / 200) as u8, (2 + i % 200) as u8)
                        .into(),
                }],
                host_network: false,
            }
        })
        .collect();
    let session_start = start.wall;
    drop(core.handle(Input::Connected { session_start }, start));
    drop(core.handle(
        Input::Own(Own {
            project: None,
            reach: Reach::Anywhere,
        }),
        start,
    ));
    drop(core.handle(
        Input::Listed {
            full: true,
            containers,
            asked: start.at,
        },
        start,
    ));
    core
}

/// Runs `seconds` of the core's time; returns (probes, inputs, time in handle and next_timer).
fn run(core: &mut Core, start: Now, seconds: u64, cold: bool) -> (usize, usize, Duration) {
    let mut junk = vec![0u8; 8 << 20];
    let mut spent = Duration::ZERO;
    let (mut probes, mut inputs) = (0, 0);
    let end = start.at + Duration::from_secs(seconds);
    let mut pending: Vec<Input> = Vec::new();
    while let Some(due) = core.next_timer().filter(|due| *due <= end) {
        let now = Now {
            at: due,
            wall: start.wall + (due - start.at),
        };
        pending.push(Input::Tick);
        while let Some(input) = pending.pop() {
            if cold {
                for b in junk.iter_mut().step_by(64) {
                    *b = b.wrapping_add(1);
                }
            }
            let began = Instant::now();
            let out = core.handle(input, now);
            let _ = core.next_timer();
            spent += began.elapsed();
            inputs += 1;
            for c in out {
                if let Command::Probe(job) = c {
                    probes += 1;
                    pending.push(Input::Probed(Probed {
                        container_id: job.container_id,
                        run: job.run,
                        result: Ok(()),
                        took: Duration::from_millis(1),
                    }));
                }
            }
        }
    }
    std::hint::black_box(&junk);
    (probes, inputs, spent)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number of targets"))
        .collect();
    for n in if sizes.is_empty() {
        vec![30, 300]
    } else {
        sizes
    } {
        for cold in [false, true] {
            let start = Now {
                at: Instant::now(),
                wall: SystemTime::now(),
            };
            let mut core = core_with(n, start);
            // The first probes are spread over an interval: measured after it.
            run(&mut core, start, 20, false);
            let later = Now {
                at: start.at + Duration::from_secs(20),
                wall: start.wall + Duration::from_secs(20),
            };
            let (probes, inputs, spent) = run(&mut core, later, 60, cold);
            println!(
                "{n} targets, {}: {probes} probes, {inputs} inputs, {:.2} us per probe",
                if cold { "cold" } else { "hot" },
                spent.as_secs_f64() * 1e6 / probes.max(1) as f64
            );
        }
    }
}
