//! The result of a run, printed once at the end: aligned text for a
//! person, or with `--json` one JSON object on stdout for scripts (the
//! field names are the interface; add fields, do not rename them).

use std::fmt::Write as _;

use serde::Serialize;

use super::progress::group_digits;
use super::stats::Percentiles;

/// What a latency figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LatencyKind {
    /// Publisher send to subscriber receipt.
    EndToEnd,
    /// Publish to PUBACK (QoS 1) or PUBCOMP (QoS 2).
    Ack,
    /// TCP connect to CONNACK (TLS included).
    Connect,
}

impl LatencyKind {
    fn describe(self) -> &'static str {
        match self {
            Self::EndToEnd => "publish to receipt",
            Self::Ack => "publish to acknowledgement",
            Self::Connect => "connect to CONNACK",
        }
    }
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    /// One line saying what ran, for the text report.
    #[serde(skip)]
    pub(crate) summary: String,
    pub(crate) mqtt_version: &'static str,
    pub(crate) qos: u8,
    pub(crate) payload_size: usize,
    pub(crate) publishers: u32,
    pub(crate) subscribers: u32,
    /// Connections that completed the handshake.
    pub(crate) connections: u64,
    pub(crate) connect_errors: u64,
    /// Connections the broker closed (or that failed) during the run.
    pub(crate) disconnects: u64,
    /// Length of the measured window.
    pub(crate) duration_s: f64,
    /// Messages sent in the window.
    pub(crate) sent: u64,
    /// Of those, acknowledged by the broker (QoS 1/2).
    pub(crate) acked: Option<u64>,
    /// Distinct measured messages received, summed over subscribers that
    /// each should get a copy.
    pub(crate) received: u64,
    /// Receipts the run should see: `sent` times the copies per message.
    pub(crate) expected: Option<u64>,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) sent_per_sec: f64,
    pub(crate) received_per_sec: f64,
    pub(crate) latency: Option<LatencyKind>,
    pub(crate) latency_ms: Percentiles,
    /// `conn`: successful connections per second while connecting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_per_sec: Option<f64>,
    /// The first connection error, to say why connect_errors is not 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
}

/// `n / secs`, rounded to a tenth.
pub(crate) fn per_sec(n: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    (n as f64 / secs * 10.0).round() / 10.0
}

impl Report {
    /// Prints the report on stdout in the chosen form.
    pub(crate) fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            print!("{}", self.text());
        }
        Ok(())
    }

    /// The report for a person.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let rate = |r: f64| group_digits(r.round() as u64);
        let _ = writeln!(out, "scenario      {}", self.summary);
        if self.scenario == "conn" {
            self.conn_lines(&mut out);
        } else {
            let _ = writeln!(out, "measured      {:.3} s", self.duration_s);
            let _ = writeln!(
                out,
                "sent          {} ({}/s)",
                group_digits(self.sent),
                rate(self.sent_per_sec)
            );
            if let Some(acked) = self.acked {
                let _ = writeln!(out, "acknowledged  {}", group_digits(acked));
            }
            let expected = self
                .expected
                .map(|e| format!(" of {} expected", group_digits(e)))
                .unwrap_or_default();
            let received = group_digits(self.received);
            let _ = writeln!(
                out,
                "received      {received} ({}/s){expected}",
                rate(self.received_per_sec)
            );
            let _ = writeln!(out, "lost          {}", group_digits(self.lost));
            let qos2 = if self.qos == 2 && self.duplicates > 0 {
                " (QoS 2 allows none!)"
            } else {
                ""
            };
            let _ = writeln!(out, "duplicates    {}{qos2}", group_digits(self.duplicates));
        }
        self.latency_line(&mut out);
        let _ = writeln!(
            out,
            "connections   {} ({} connect errors, {} dropped)",
            group_digits(self.connections),
            self.connect_errors,
            self.disconnects
        );
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "first error   {e}");
        }
        out
    }

    fn conn_lines(&self, out: &mut String) {
        if let Some(r) = self.connect_per_sec {
            let _ = writeln!(out, "connect rate  {}/s", group_digits(r.round() as u64));
        }
        let _ = writeln!(out, "held open     {:.3} s", self.duration_s);
    }

    fn latency_line(&self, out: &mut String) {
        let Some(kind) = self.latency else { return };
        let p = &self.latency_ms;
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "latency ms    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({})",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max),
            kind.describe()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            scenario: "fanin",
            summary: "fanin: 2 publishers -> 1 subscriber".into(),
            mqtt_version: "3.1.1",
            qos: 1,
            payload_size: 64,
            publishers: 2,
            subscribers: 1,
            connections: 3,
            connect_errors: 0,
            disconnects: 0,
            duration_s: 2.0,
            sent: 2000,
            acked: Some(2000),
            received: 2000,
            expected: Some(2000),
            lost: 0,
            duplicates: 0,
            sent_per_sec: 1000.0,
            received_per_sec: 1000.0,
            latency: Some(LatencyKind::EndToEnd),
            latency_ms: Percentiles {
                p50: Some(0.412),
                ..Percentiles::default()
            },
            connect_per_sec: None,
            first_error: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        for key in [
            "sent_per_sec",
            "received_per_sec",
            "lost",
            "scenario",
            "sent",
            "received",
            "duration_s",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["latency_ms"]["p50"], 0.412);
        assert!(v["latency_ms"]["p999"].is_null());
        assert_eq!(v["latency"], "end_to_end");
        assert!(v.get("summary").is_none() && v.get("connect_per_sec").is_none());
    }

    #[test]
    fn text_lines_up() {
        let text = sample().text();
        assert!(
            text.contains("received      2,000 (1,000/s) of 2,000 expected"),
            "{text}"
        );
        assert!(text.contains("latency ms    p50 0.412  p90 -"), "{text}");
    }

    #[test]
    fn rates_round_to_a_tenth() {
        assert_eq!(per_sec(10, 3.0), 3.3);
        assert_eq!(per_sec(10, 0.0), 0.0);
    }
}
