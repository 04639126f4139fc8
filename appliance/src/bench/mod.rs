//! `skerry bench`: an MQTT load generator in the spirit of emqtt_bench,
//! written on the project's own codec so that it stays cheap enough not to
//! be the bottleneck and measures exactly what it sends.
//!
//! - [`args`]: the command line; [`run`] turns it into a scenario.
//! - [`scenario`] runs the message scenarios with [`publisher`] and
//!   [`subscriber`] tasks (one per connection, over [`net::Client`]);
//!   [`conn`] runs the idle-connection scenario.
//! - [`payload`] stamps messages, [`seqset`] and [`stats`] count them,
//!   [`outcome`] and [`report`] turn the counts into the result.

mod args;
mod conn;
mod net;
mod outcome;
mod payload;
mod progress;
mod publisher;
mod report;
mod scenario;
mod seqset;
mod stats;
mod subscriber;
mod tls;

use std::hash::BuildHasher;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) use args::BenchArgs;
use args::{RunArgs, Scenario, TrafficArgs};
use scenario::{Delivery, Layout, Options};

/// Runs `skerry bench`: builds its own runtime, runs the scenario and
/// prints the report.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    payload::now_ns(); // fix the epoch before any stamp is taken
    let run_args = run_args(&args.scenario).clone();
    let threads = match run_args.threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("skerry-bench")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let id = random_id();
    let options = Options {
        quiet: run_args.quiet,
        threads,
        run_id: format!("skerry-bench-{id}"),
    };
    let report = runtime.block_on(run_scenario(args.scenario, options, &id))?;
    // Tasks aborted at the stop timeout may still hold sockets; don't wait.
    runtime.shutdown_background();
    report.print(run_args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn run_args(scenario: &Scenario) -> &RunArgs {
    match scenario {
        Scenario::Conn(a) => &a.run,
        Scenario::Pub(a) => &a.run,
        Scenario::Sub(a) => &a.run,
        Scenario::Fanin(a) => &a.run,
        Scenario::Fanout(a) => &a.run,
        Scenario::Shared(a) => &a.run,
    }
}

async fn run_scenario(scenario: Scenario, options: Options, id: &str) -> anyhow::Result<report::Report> {
    let (layout, traffic, target) = match scenario {
        Scenario::Conn(a) => {
            let plan = conn::ConnPlan {
                clients: a.clients.get(),
                rate: a.rate,
                hold: a.duration,
            };
            return conn::run(plan, net::Target::new(&a.target)?, options).await;
        }
        Scenario::Pub(a) => {
            let prefix = prefix(&a.traffic, id);
            let layout = layout("pub", a.publishers.get(), 0, String::new(), prefix, Delivery::Nobody);
            (layout, a.traffic, a.target)
        }
        Scenario::Sub(a) => {
            let prefix = prefix(&a.traffic, id);
            let layout = layout("sub", 0, a.subscribers.get(), a.filter, prefix, Delivery::Foreign);
            (layout, a.traffic, a.target)
        }
        Scenario::Fanin(a) => {
            let prefix = prefix(&a.traffic, id);
            let filter = format!("{prefix}/#");
            let layout = layout(
                "fanin",
                a.publishers.get(),
                1,
                filter,
                prefix,
                Delivery::EverySubscriber,
            );
            (layout, a.traffic, a.target)
        }
        Scenario::Fanout(a) => {
            let prefix = prefix(&a.traffic, id);
            let mut layout = layout(
                "fanout",
                1,
                a.subscribers.get(),
                format!("{prefix}/0"),
                prefix,
                Delivery::EverySubscriber,
            );
            layout.one_topic = true;
            (layout, a.traffic, a.target)
        }
        Scenario::Shared(a) => {
            let prefix = prefix(&a.traffic, id);
            let filter = format!("$share/{}/{prefix}/#", a.group);
            let layout = layout(
                "shared",
                a.publishers.get(),
                a.subscribers.get(),
                filter,
                prefix,
                Delivery::OneOfGroup,
            );
            (layout, a.traffic, a.target)
        }
    };
    scenario::run(layout, traffic, net::Target::new(&target)?, options).await
}

fn layout(
    scenario: &'static str,
    publishers: u32,
    subscribers: u32,
    filter: String,
    prefix: String,
    delivery: Delivery,
) -> Layout {
    Layout {
        scenario,
        publishers,
        subscribers,
        filter,
        prefix,
        one_topic: false,
        delivery,
    }
}

/// `--topic-prefix`, or `bench/<id>` so that runs do not see each other.
fn prefix(traffic: &TrafficArgs, id: &str) -> String {
    traffic.topic_prefix.clone().unwrap_or_else(|| format!("bench/{id}"))
}

/// Eight hex digits that differ from run to run.
fn random_id() -> String {
    let seed = std::hash::RandomState::new().hash_one((std::process::id(), payload::now_ns()));
    format!("{:08x}", seed as u32)
}
