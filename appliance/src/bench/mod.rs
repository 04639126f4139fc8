//! `skerry bench`: an MQTT load generator in the spirit of emqtt_bench,
//! written on the project's own codec so that it stays cheap enough not to
//! be the bottleneck and measures exactly what it sends.
//!
//! - [`args`]: the command line; [`run`] turns it into a scenario.
//! - [`scenario`] runs the message scenarios with [`publisher`] and
//!   [`subscriber`] tasks (one per connection, over [`net::Client`]);
//!   [`conn`] runs the idle-connection scenario.
//! - [`metronome`] paces `--rate` runs, [`payload`] stamps messages,
//!   [`seqset`] and [`stats`] count them, [`outcome`] and [`report`] turn
//!   the counts into the result.

mod args;
mod conn;
mod metronome;
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
use args::{RunArgs, Scenario};
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
    use Delivery::{EverySubscriber, Foreign, Nobody, OneOfGroup};
    let (shape, traffic, target) = match scenario {
        Scenario::Conn(a) => {
            let plan = conn::ConnPlan {
                clients: a.clients.get(),
                rate: a.rate,
                hold: a.duration,
            };
            return conn::run(plan, net::Target::new(&a.target)?, options).await;
        }
        Scenario::Pub(a) => (
            Shape::new("pub", a.publishers.get(), 0, Nobody, Filter::None),
            a.traffic,
            a.target,
        ),
        Scenario::Sub(a) => {
            let traffic = a.traffic();
            let shape = Shape::new("sub", 0, a.subscribers.get(), Foreign, Filter::Given(a.filter));
            (shape, traffic, a.target)
        }
        Scenario::Fanin(a) => {
            let shape = Shape::new("fanin", a.publishers.get(), 1, EverySubscriber, Filter::AllTopics);
            (shape, a.traffic, a.target)
        }
        Scenario::Fanout(a) => {
            let shape = Shape::new("fanout", 1, a.subscribers.get(), EverySubscriber, Filter::FirstTopic);
            (shape, a.traffic, a.target)
        }
        Scenario::Shared(a) => {
            let (publishers, subscribers) = (a.publishers.get(), a.subscribers.get());
            let shape = Shape::new("shared", publishers, subscribers, OneOfGroup, Filter::Shared(a.group));
            (shape, a.traffic, a.target)
        }
    };
    // `--topic-prefix`, or `bench/<id>` so that runs do not see each other.
    let prefix = traffic.topic_prefix.clone().unwrap_or_else(|| format!("bench/{id}"));
    let layout = shape.layout(prefix);
    scenario::run(layout, traffic, net::Target::new(&target)?, options).await
}

/// Who connects in a message scenario and how its messages should arrive.
struct Shape {
    scenario: &'static str,
    publishers: u32,
    subscribers: u32,
    delivery: Delivery,
    filter: Filter,
}

/// What the subscribers of a scenario subscribe to.
enum Filter {
    /// Nothing: there are no subscribers.
    None,
    /// The filter given on the command line.
    Given(String),
    /// `<prefix>/#`: every publisher's topic.
    AllTopics,
    /// `<prefix>/0`, where every publisher then publishes.
    FirstTopic,
    /// `$share/<group>/<prefix>/#`.
    Shared(String),
}

impl Shape {
    fn new(scenario: &'static str, publishers: u32, subscribers: u32, delivery: Delivery, filter: Filter) -> Self {
        Self {
            scenario,
            publishers,
            subscribers,
            delivery,
            filter,
        }
    }

    fn layout(self, prefix: String) -> Layout {
        let one_topic = matches!(self.filter, Filter::FirstTopic);
        let filter = match self.filter {
            Filter::None => String::new(),
            Filter::Given(f) => f,
            Filter::AllTopics => format!("{prefix}/#"),
            Filter::FirstTopic => format!("{prefix}/0"),
            Filter::Shared(group) => format!("$share/{group}/{prefix}/#"),
        };
        Layout {
            scenario: self.scenario,
            publishers: self.publishers,
            subscribers: self.subscribers,
            one_topic,
            filter,
            prefix,
            delivery: self.delivery,
        }
    }
}

/// Eight hex digits that differ from run to run.
fn random_id() -> String {
    let seed = std::hash::RandomState::new().hash_one((std::process::id(), payload::now_ns()));
    format!("{:08x}", seed as u32)
}
