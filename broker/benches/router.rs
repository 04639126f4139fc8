//! Router matching throughput with 100k subscriptions in a realistic mix:
//! per-device filters, `+` fan-in filters, a few `#` loggers, and shared
//! groups. Reports matches per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use skerry_broker::router::{Destination, Matches, QoS, Router, SessionKey, SharedPolicy, SubscriptionOptions};

const DEVICES: u64 = 70_000;
const SITES: u64 = 10_000;
const USERS: u64 = 8_730;

/// Deterministic xorshift so every run matches the same topics.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn subscribe(router: &mut Router, filter: &str, session: u64) {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        subscription_id: Some(1),
        ..Default::default()
    };
    if let Err(err) = router.subscribe(filter, Destination::Local(SessionKey(session)), options) {
        panic!("bench filter {filter}: {err}");
    }
}

/// 100,000 subscriptions.
fn build_router(policy: SharedPolicy) -> Router {
    let mut router = Router::new(policy);
    let mut session = 0;
    let mut add = |router: &mut Router, filter: String| {
        session += 1;
        subscribe(router, &filter, session);
    };
    for id in 0..40_000 {
        add(&mut router, format!("devices/{id}/telemetry"));
    }
    for id in 40_000..DEVICES {
        add(&mut router, format!("devices/{id}/#"));
    }
    for id in 0..10_000 {
        add(&mut router, format!("devices/{id}/cmd/+"));
    }
    for site in 0..SITES {
        add(&mut router, format!("sites/{site}/#"));
    }
    for _ in 0..200 {
        add(&mut router, "devices/+/status".to_owned());
    }
    for _ in 0..20 {
        add(&mut router, "#".to_owned());
    }
    for _ in 0..50 {
        add(&mut router, "devices/+/+/alarm/#".to_owned());
    }
    for member in 0..400 {
        add(&mut router, format!("$share/ingest{}/devices/+/telemetry", member % 4));
    }
    for _ in 0..600 {
        add(&mut router, "$share/workers/sites/+/#".to_owned());
    }
    for user in 0..USERS {
        add(&mut router, format!("users/{user}/inbox"));
    }
    assert_eq!(router.subscription_count(), 100_000);
    router
}

/// 1,024 topics: half telemetry, then status, commands, site sensors, inboxes.
fn topics() -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..1024)
        .map(|_| match rng.below(10) {
            0..=4 => format!("devices/{}/telemetry", rng.below(DEVICES)),
            5 | 6 => format!("devices/{}/status", rng.below(DEVICES)),
            7 => format!("devices/{}/cmd/reboot", rng.below(DEVICES)),
            8 => format!("sites/{}/floor/{}/temp", rng.below(SITES), rng.below(20)),
            _ => format!("users/{}/inbox", rng.below(USERS)),
        })
        .collect()
}

fn bench_match(c: &mut Criterion) {
    let topics = topics();
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(1));
    for policy in [SharedPolicy::Random, SharedPolicy::RoundRobin] {
        let router = build_router(policy);
        let mut matches = Matches::default();
        let mut next = topics.iter().cycle();
        group.bench_function(format!("match_100k_subs/{policy:?}"), |b| {
            b.iter(|| {
                let topic = next.next().map_or("devices/1/telemetry", String::as_str);
                router.match_into(black_box(topic), None, &mut matches);
                black_box(matches.deliveries.len() + matches.shared.len())
            });
        });
    }
    let router = build_router(SharedPolicy::Random);
    let mut matches = Matches::default();
    group.bench_function("match_100k_subs/literal_only", |b| {
        b.iter(|| {
            router.match_into(black_box("users/42/inbox"), None, &mut matches);
            black_box(matches.deliveries.len())
        });
    });
    group.finish();
}

criterion_group!(benches, bench_match);
criterion_main!(benches);
