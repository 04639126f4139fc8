//! The command line of `skerry bench`: one clap subcommand per scenario,
//! sharing three option groups (where to connect, what traffic to send,
//! how to run and report). Values are checked while parsing, so a bad
//! argument fails with clap's usage error before any connection is made.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use skerry_codec::{topic, ProtocolVersion, QoS};

const AFTER_HELP: &str = "\
Each scenario connects its clients first (subscribers before publishers),
then publishes for --warmup (not measured) and --duration (measured), then
waits up to --drain for messages still on their way. Messages sent in the
measured window and not received by the end of the drain count as lost.

Every payload starts with the send time and a sequence number, so the
receiving side measures end-to-end latency and finds lost and duplicated
messages itself. A progress line goes to stderr once a second; the result
goes to stdout, as text or, with --json, as one JSON object.

Examples:
  skerry bench fanin --host 10.0.0.5 --publishers 8 --qos 1 --duration 30s
  skerry bench fanout --subscribers 100 --rate 1000 --json
  skerry bench shared --publishers 4 --subscribers 3 --group workers --qos 2
  skerry bench conn --clients 10000 --rate 500 --duration 60s
  skerry bench pub --cafile ca.pem --cert dev.pem --key dev.key --port 8883

Large runs need file descriptors: raise `ulimit -n` above the client count.";

/// Arguments of `skerry bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

/// The load patterns `skerry bench` can generate.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Scenario {
    /// Open idle connections and hold them (connect rate, connect latency,
    /// memory per idle connection on the broker).
    Conn(ConnArgs),
    /// Publish only, to `<prefix>/<i>`: publish rate and, at QoS 1/2,
    /// acknowledgement latency.
    Pub(PubArgs),
    /// Subscribe only, to --filter: receive rate of traffic published by
    /// others (such as a `skerry bench pub` elsewhere).
    Sub(SubArgs),
    /// N publishers to one subscriber on `<prefix>/#`.
    Fanin(FaninArgs),
    /// One publisher to N subscribers of the same topic; every subscriber
    /// must receive every message.
    Fanout(FanoutArgs),
    /// N publishers to M subscribers of `$share/<group>/<prefix>/#`; every
    /// message must arrive exactly once across the group.
    Shared(SharedArgs),
}

/// `skerry bench conn`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnArgs {
    /// Connections to open.
    #[arg(long, default_value_t = NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN))]
    pub(crate) clients: NonZeroU32,
    /// New connections per second; 0 opens them as fast as the broker
    /// accepts them, with at most 100 handshakes in progress.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u32,
    /// How long to hold the connections open once all are up (they stay
    /// idle, sending only keep-alive pings).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `skerry bench pub`.
#[derive(Debug, clap::Args)]
pub(crate) struct PubArgs {
    /// Publishing connections, each on its own topic `<prefix>/<i>`.
    #[arg(long, default_value_t = NonZeroU32::MIN)]
    pub(crate) publishers: NonZeroU32,
    #[command(flatten)]
    pub(crate) traffic: TrafficArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `skerry bench sub`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubArgs {
    /// Subscribing connections.
    #[arg(long, default_value_t = NonZeroU32::MIN)]
    pub(crate) subscribers: NonZeroU32,
    /// Topic filter every subscriber subscribes to (wildcards and
    /// `$share/...` allowed).
    #[arg(long, value_parser = parse_filter)]
    pub(crate) filter: String,
    /// QoS of the subscriptions: 0, 1 or 2.
    #[arg(long, default_value = "0", value_parser = parse_qos, help_heading = "Traffic")]
    pub(crate) qos: QoS,
    /// Length of the measured window: messages received in it count.
    #[arg(long, default_value = "8s", value_parser = parse_duration, help_heading = "Traffic")]
    pub(crate) duration: Duration,
    /// Time before the measured window; messages received in it are not
    /// counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Traffic")]
    pub(crate) warmup: Duration,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

impl SubArgs {
    /// The traffic settings of a run that only receives.
    pub(crate) fn traffic(&self) -> TrafficArgs {
        TrafficArgs {
            qos: self.qos,
            payload_size: MIN_PAYLOAD,
            rate: 0,
            inflight: 1,
            topic_prefix: None,
            duration: self.duration,
            warmup: self.warmup,
            drain: Duration::ZERO,
        }
    }
}

/// `skerry bench fanin`.
#[derive(Debug, clap::Args)]
pub(crate) struct FaninArgs {
    /// Publishing connections, each on its own topic `<prefix>/<i>`.
    #[arg(long, default_value_t = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))]
    pub(crate) publishers: NonZeroU32,
    #[command(flatten)]
    pub(crate) traffic: TrafficArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `skerry bench fanout`.
#[derive(Debug, clap::Args)]
pub(crate) struct FanoutArgs {
    /// Subscribing connections, all on the publisher's topic.
    #[arg(long, default_value_t = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))]
    pub(crate) subscribers: NonZeroU32,
    #[command(flatten)]
    pub(crate) traffic: TrafficArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `skerry bench shared`.
#[derive(Debug, clap::Args)]
pub(crate) struct SharedArgs {
    /// Publishing connections, each on its own topic `<prefix>/<i>`.
    #[arg(long, default_value_t = NonZeroU32::MIN)]
    pub(crate) publishers: NonZeroU32,
    /// Members of the shared subscription group.
    #[arg(long, default_value_t = NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN))]
    pub(crate) subscribers: NonZeroU32,
    /// Name of the shared subscription group.
    #[arg(long, default_value = "bench", value_parser = parse_group)]
    pub(crate) group: String,
    #[command(flatten)]
    pub(crate) traffic: TrafficArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// What traffic the publishers send and how long it is measured.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Traffic")]
pub(crate) struct TrafficArgs {
    /// QoS of every publish and subscription: 0, 1 or 2.
    #[arg(long, default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,
    /// Payload bytes per message (at least 16: the send time and a sequence
    /// number). Units allowed: 512, 4KiB, 1MB.
    #[arg(long, default_value = "64", value_parser = parse_payload_size)]
    pub(crate) payload_size: usize,
    /// Messages per second across all publishers, evenly spaced (they take
    /// turns); 0 sends as fast as the broker takes them (at QoS 1/2
    /// bounded by --inflight).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// QoS 1/2 messages each publisher may have unacknowledged (lowered to
    /// the broker's Receive Maximum on MQTT 5).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) inflight: u16,
    /// Topics are `<prefix>/<i>`; the default `bench/<random>` keeps runs
    /// apart.
    #[arg(long, value_parser = parse_prefix)]
    pub(crate) topic_prefix: Option<String>,
    /// Length of the measured window.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Traffic before the measured window, to fill caches and queues; not
    /// counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// After the window, how long to wait for messages still on their way
    /// before counting them lost.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) drain: Duration,
}

/// Where to connect and how.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct TargetArgs {
    /// Broker (or load balancer) host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    pub(crate) port: u16,
    /// MQTT protocol version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_version)]
    pub(crate) mqtt_version: ProtocolVersion,
    /// User name sent in CONNECT.
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// Password sent in CONNECT.
    #[arg(long, requires = "username")]
    pub(crate) password: Option<String>,
    /// Keep alive announced in CONNECT; every client pings at half of it.
    #[arg(long, default_value = "60s", value_parser = parse_keep_alive)]
    pub(crate) keep_alive: Duration,
    /// Longest wait for TCP, TLS and CONNACK of one connection.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// CA certificates (PEM) to verify the broker with; turns TLS on.
    #[arg(long)]
    pub(crate) cafile: Option<PathBuf>,
    /// Client certificate chain (PEM) for brokers that ask for one.
    #[arg(long, requires_all = ["cafile", "key"])]
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Name to verify the broker's certificate against (default: --host).
    #[arg(long, requires = "cafile")]
    pub(crate) tls_server_name: Option<String>,
}

/// How the generator runs and reports.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct RunArgs {
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Worker threads of the generator (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<skerry_config::units::Duration>()
        .map(skerry_config::units::Duration::get)
        .map_err(|e| format!("{text:?} is not {}", e.0))
}

fn parse_keep_alive(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.as_secs() == 0 || d.as_secs() > u64::from(u16::MAX) {
        return Err(format!("{text:?}: keep alive must be between 1s and 65535s"));
    }
    Ok(d)
}

fn parse_qos(text: &str) -> Result<QoS, String> {
    match text {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        _ => Err(format!("{text:?} is not a QoS: use 0, 1 or 2")),
    }
}

/// Smallest payload: 8 bytes of send time and 8 of sequence number.
pub(crate) const MIN_PAYLOAD: usize = 16;
/// Largest payload: leaves room for the topic under MQTT's packet limit.
const MAX_PAYLOAD: u64 = 256 * 1024 * 1024 - 64 * 1024;

fn parse_payload_size(text: &str) -> Result<usize, String> {
    let size = text
        .parse::<skerry_config::units::ByteSize>()
        .map_err(|e| format!("{text:?} is not {}", e.0))?
        .bytes();
    if size < MIN_PAYLOAD as u64 {
        return Err(format!(
            "{size} bytes is too small: the payload carries an 8-byte send time and an 8-byte sequence number, so it needs at least {MIN_PAYLOAD}"
        ));
    }
    if size > MAX_PAYLOAD {
        return Err(format!(
            "{size} bytes is more than MQTT can carry (at most {MAX_PAYLOAD})"
        ));
    }
    usize::try_from(size).map_err(|_| format!("{size} bytes does not fit in memory here"))
}

fn parse_version(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "3.1.1" | "311" | "4" => Ok(ProtocolVersion::V311),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err(format!("{text:?} is not a supported MQTT version: use 3.1.1 or 5")),
    }
}

fn parse_prefix(text: &str) -> Result<String, String> {
    let text = text.trim_end_matches('/');
    match topic::validate_topic_name(text) {
        Ok(()) if !text.starts_with('$') => Ok(text.to_owned()),
        _ => Err(format!(
            "{text:?} is not a usable topic prefix: it must be non-empty, not start with '$' and have no '+' or '#'"
        )),
    }
}

fn parse_filter(text: &str) -> Result<String, String> {
    topic::validate_topic_filter(text)
        .map(|()| text.to_owned())
        .map_err(|_| format!("{text:?} is not a valid MQTT topic filter"))
}

fn parse_group(text: &str) -> Result<String, String> {
    let bad = text.is_empty() || text.bytes().any(|b| matches!(b, b'/' | b'+' | b'#' | 0));
    if bad {
        return Err(format!(
            "{text:?} is not a share name: it must be non-empty without '/', '+' or '#'"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_size_needs_room_for_the_stamp() {
        assert_eq!(parse_payload_size("16"), Ok(16));
        assert_eq!(parse_payload_size("1KiB"), Ok(1024));
        let err = parse_payload_size("4").unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
        assert!(parse_payload_size("1GB").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("8").unwrap_err().contains("a duration like"));
        assert!(parse_keep_alive("0s").is_err());
    }

    #[test]
    fn prefixes_and_filters_are_checked() {
        assert_eq!(parse_prefix("load/test/").as_deref(), Ok("load/test"));
        assert!(parse_prefix("a/+").is_err());
        assert!(parse_prefix("$SYS").is_err());
        assert!(parse_filter("a/#").is_ok());
        assert!(parse_filter("a/#/b").is_err());
        assert!(parse_group("g/1").is_err());
    }

    #[test]
    fn versions_and_qos() {
        assert_eq!(parse_version("5"), Ok(ProtocolVersion::V5));
        assert_eq!(parse_version("3.1.1"), Ok(ProtocolVersion::V311));
        assert!(parse_version("3.1").is_err());
        assert_eq!(parse_qos("2"), Ok(QoS::ExactlyOnce));
        assert!(parse_qos("3").is_err());
    }
}
