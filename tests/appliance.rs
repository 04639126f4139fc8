//! The appliance as an operator runs it: `skerry ca` makes the
//! certificates, `skerry run -c` starts a balancer (mTLS, client-id
//! stickiness, PROXY v2 with the CN) in front of two nodes, devices and a
//! backend consumer use it with `mosquitto_pub`/`mosquitto_sub`, the admin
//! endpoint and `skerry ctl` show what happened, SIGTERM stops it all.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use skerry_tests::{have, run_start_error, skerry, skerry_bin};

/// A child process that is killed if the test ends early.
struct Running(Child);

impl Running {
    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        self.0.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now (the OS picks it; we release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

fn config(dir: &Path, lb: u16, n1: u16, n2: u16, admin: u16) -> String {
    let d = dir.display();
    format!(
        r#"admin:
  bind: 127.0.0.1:{admin}
broker:
  allow_anonymous: false
  acl:
    - access: all
      topic: devices/%u/#
    - access: subscribe
      topic: $share/backend/devices/+/telemetry
      users: [backend-1]
  store:
    engine: memory
  nodes:
    - name: n1
      listeners:
        - bind: 127.0.0.1:{n1}
          proxy_protocol: {{trusted: [127.0.0.1/32], use_cn_as_username: true}}
    - name: n2
      listeners:
        - bind: 127.0.0.1:{n2}
          proxy_protocol: {{trusted: [127.0.0.1/32], use_cn_as_username: true}}
lb:
  grace_period: 5s
  drain_window: 1s
  listeners:
    - name: mqtts
      bind: 127.0.0.1:{lb}
      pool: nodes
      tls:
        cert: {d}/server.crt
        key: {d}/server.key
        client_ca: {d}/ca/ca.crt
        require_certificate: true
  pools:
    - name: nodes
      balance: client_id
      proxy_protocol: v2_ssl_cn
      health_check: {{kind: mqtt, interval: 500ms}}
      members:
        - {{name: n1, address: 127.0.0.1:{n1}}}
        - {{name: n2, address: 127.0.0.1:{n2}}}
"#
    )
}

/// `mosquitto_*` arguments for a TLS client with the certificate `name`.
fn tls_args(dir: &Path, port: u16, name: &str) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    ["-h", "localhost", "-p", &port.to_string(), "--cafile", &p("ca/ca.crt")]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            "--cert".to_owned(),
            p(&format!("{name}.crt")),
            "--key".to_owned(),
            p(&format!("{name}.key")),
        ])
        .collect()
}

/// `skerry run -c` on `yaml` (written to DIR/skerry.yaml, its log to
/// DIR/run.log), once its admin endpoint on `admin` answers.
fn run_ready(dir: &Path, yaml: &str, admin: u16) -> Running {
    let file = dir.join("skerry.yaml");
    std::fs::write(&file, yaml).unwrap();
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    let mut run = Running(
        Command::new(skerry_bin())
            .args(["run", "-c", file.to_str().unwrap()])
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_ready(admin, &mut run.0);
    run
}

fn wait_ready(admin: u16, run: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        assert!(run.try_wait().unwrap().is_none(), "skerry run exited early");
        let out = skerry(&["ctl", "--admin", &format!("127.0.0.1:{admin}"), "health"]);
        if out.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("skerry run did not come up");
}

/// A plain HTTP/1.0 GET (the admin endpoint closes after answering).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn device_to_shared_consumer_through_the_balancer() {
    if !have("mosquitto_pub") {
        eprintln!("skipped: mosquitto clients are not installed (bash tests/run installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = dir.join("ca").display().to_string();
    let at = |f: &str| dir.join(f).display().to_string();
    ok(&skerry(&["ca", "init", "--dir", &ca, "--cn", "Fleet CA"]), "ca init");
    let server = [
        "ca",
        "issue",
        "server",
        "--dir",
        &ca,
        "--cn",
        "localhost",
        "--dns",
        "localhost",
    ];
    ok(
        &skerry(&[&server[..], &["--ip", "127.0.0.1", "--out", &at("server")]].concat()),
        "issue server",
    );
    for cn in ["dev-42", "backend-1"] {
        let issued = skerry(&["ca", "issue", "client", "--dir", &ca, "--cn", cn, "--out", &at(cn)]);
        ok(&issued, &format!("issue {cn}"));
    }

    let (lb, n1, n2, admin) = (free_port(), free_port(), free_port(), free_port());
    let mut run = run_ready(dir, &config(dir, lb, n1, n2, admin), admin);

    // Until nodes are clustered, a shared consumer only sees messages
    // published on its own node: pick a consumer client id the balancer's
    // ring sends where dev-42 goes (the ring is the balancer's own).
    let ring = skerry_lb::ring::Ring::new(["n1", "n2"]);
    let device_node = ring.owner(b"dev-42").unwrap().to_owned();
    let consumer = (0..100)
        .map(|i| format!("ingest-{i}"))
        .find(|id| ring.owner(id.as_bytes()) == Some(&device_node))
        .unwrap();

    let mut sub = Command::new("mosquitto_sub")
        .args(tls_args(dir, lb, "backend-1"))
        .args([
            "-i",
            &consumer,
            "-t",
            "$share/backend/devices/+/telemetry",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "20",
            "-v",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Publish until the consumer has subscribed and received (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(15);
    while sub.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let out = Command::new("mosquitto_pub")
            .args(tls_args(dir, lb, "dev-42"))
            .args([
                "-i",
                "dev-42",
                "-c",
                "-q",
                "1",
                "-t",
                "devices/dev-42/telemetry",
                "-m",
                "21.5",
            ])
            .output()
            .unwrap();
        ok(&out, "device publish");
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "devices/dev-42/telemetry 21.5"
    );

    // The ACL holds the device to devices/dev-42/#: a v5 publish elsewhere is refused.
    let denied = Command::new("mosquitto_pub")
        .args(tls_args(dir, lb, "dev-42"))
        .args([
            "-V",
            "mqttv5",
            "-i",
            "dev-42-x",
            "-q",
            "1",
            "-t",
            "devices/dev-7/telemetry",
            "-m",
            "x",
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&denied.stdout),
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(
        !denied.status.success() || said.to_lowercase().contains("not authori"),
        "publish outside devices/dev-42/ was accepted: {said}"
    );

    let admin_addr = format!("127.0.0.1:{admin}");
    let sessions = skerry(&["ctl", "--admin", &admin_addr, "sessions", "--search", "dev-42"]);
    ok(&sessions, "ctl sessions");
    let table = String::from_utf8_lossy(&sessions.stdout);
    assert!(table.contains("dev-42") && table.contains(&device_node), "{table}");

    let metrics = http_get(&admin_addr, "/metrics");
    assert!(metric(&metrics, "mqtt_publish_received_total") >= 1, "{metrics}");
    assert!(metric(&metrics, "mqtt_publish_auth_error_total") >= 1, "{metrics}");
    let proxied = metric(&metrics, "lb_connections_total{result=\"proxied\"}");
    assert!(proxied >= 3, "{metrics}");
    // The nodes run in this process: every session was handed over to its
    // node (the CN travelled in the replayed PROXY header), none relayed.
    assert_eq!(metric(&metrics, "lb_sessions_handed_off_total"), proxied, "{metrics}");

    // SIGTERM: everything stops, cleanly, well within the grace period.
    let stopping = Instant::now();
    let status = run.terminate();
    assert!(status.success(), "skerry run exited with {status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

/// A balancer in front of a node of the same `skerry run` hands its
/// clients over to the node (no loopback relay), except those under a
/// bandwidth class: the limit lives in the relay, so they are relayed.
#[test]
fn the_balancer_hands_clients_to_its_local_node_and_relays_bandwidth_classes() {
    if !have("mosquitto_pub") {
        eprintln!("skipped: mosquitto clients are not installed (bash tests/run installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (lb, node, admin) = (free_port(), free_port(), free_port());
    let mut run = run_ready(
        tmp.path(),
        &format!(
            r#"admin:
  bind: 127.0.0.1:{admin}
broker:
  allow_anonymous: true
  store:
    engine: memory
  nodes:
    - name: n1
      listeners:
        - bind: 127.0.0.1:{node}
          proxy_protocol: {{trusted: [127.0.0.1/32]}}
lb:
  listeners:
    - {{name: mqtt, bind: 127.0.0.1:{lb}, pool: nodes}}
  pools:
    - name: nodes
      proxy_protocol: v2
      members:
        - {{name: n1, address: 127.0.0.1:{node}}}
  rate_classes:
    - name: slow
      match: {{client_id_prefix: slow-}}
      bandwidth_in: 64KiB/s
"#
        ),
        admin,
    );
    let port = lb.to_string();
    // One subscriber, then publishers until it has the message; returns how
    // many publishers ran.
    let deliver = |publisher: &str, payload: &str| -> u64 {
        let sub = Command::new("mosquitto_sub")
            .args(["-p", &port, "-i", "sub", "-t", "t", "-C", "1", "-W", "20"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut sub = Running(sub);
        let mut published = 0;
        let deadline = Instant::now() + Duration::from_secs(15);
        while sub.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            let out = Command::new("mosquitto_pub")
                .args(["-p", &port, "-i", publisher, "-q", "1", "-t", "t", "-m", payload])
                .output()
                .unwrap();
            ok(&out, publisher);
            published += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut got = String::new();
        std::io::Read::read_to_string(sub.0.stdout.as_mut().unwrap(), &mut got).unwrap();
        assert_eq!(got.trim(), payload, "{publisher}'s message");
        published
    };
    let fast = deliver("fast-1", "handed over");
    let slow = deliver("slow-1", "relayed");

    let metrics = http_get(&format!("127.0.0.1:{admin}"), "/metrics");
    let proxied = metric(&metrics, "lb_connections_total{result=\"proxied\"}");
    let handed_off = metric(&metrics, "lb_sessions_handed_off_total");
    // Two subscribers and the fast publishers went to the node directly;
    // each slow publisher was relayed, its bytes counted by the relay.
    assert_eq!(handed_off, 2 + fast, "{metrics}");
    assert_eq!(proxied - handed_off, slow, "{metrics}");
    assert!(metric(&metrics, "lb_bytes_to_backends_total") > 0, "{metrics}");

    // A handed-over session still belongs to the balancer's drain: on
    // SIGTERM the balancer ends it (the node reads the end of the stream).
    let waiting = Running(
        Command::new("mosquitto_sub")
            .args(["-p", &port, "-i", "waiting", "-t", "t", "-q", "1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &http_get(&format!("127.0.0.1:{admin}"), "/metrics"),
        "lb_sessions_handed_off_total",
    ) < handed_off + 1
    {
        assert!(
            Instant::now() < deadline,
            "the waiting subscriber was never handed over"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(run.terminate().success());
    let log = std::fs::read_to_string(tmp.path().join("run.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("handed-over session ended by the balancer") && l.contains("drained")),
        "{log}"
    );
    drop(waiting);
}

/// The README's "From nothing to a message over TLS", command for command:
/// `skerry run` without a file in an empty directory, a device certificate
/// from the CA it created, `mosquitto_sub`/`mosquitto_pub` over mTLS on
/// 8883, `skerry ctl sessions`, then SIGTERM. The embedded default's ports
/// are fixed (1883, 8883, 8888, 11883): the test says so and stops if one
/// is taken on this machine.
#[test]
fn readme_walkthrough_on_the_embedded_default() {
    if !have("mosquitto_pub") {
        eprintln!("skipped: mosquitto clients are not installed (bash tests/run installs them)");
        return;
    }
    let taken: Vec<u16> = [1883, 8883, 8888, 11883]
        .into_iter()
        .filter(|p| TcpListener::bind(("0.0.0.0", *p)).is_err())
        .collect();
    if !taken.is_empty() {
        eprintln!("skipped: the embedded default's ports {taken:?} are in use here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    let mut run = Running(
        Command::new(skerry_bin())
            .arg("run")
            .current_dir(dir)
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_ready(8888, &mut run.0);
    assert!(
        dir.join("skerry-data/ca/ca.crt").exists(),
        "the CA is created on first start"
    );
    let issue = Command::new(skerry_bin())
        .args([
            "ca",
            "issue",
            "client",
            "--dir",
            "skerry-data/ca",
            "--cn",
            "dev-42",
            "--out",
            "dev-42",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    ok(&issue, "ca issue client");
    let mtls = [
        "-h",
        "localhost",
        "-p",
        "8883",
        "--cafile",
        "skerry-data/ca/ca.crt",
        "--cert",
        "dev-42.crt",
        "--key",
        "dev-42.key",
    ];
    // Like the README's `mosquitto_sub ... &`: it stays connected.
    let mut sub = Running(
        Command::new("mosquitto_sub")
            .args(mtls)
            .args(["-t", "devices/#", "-v", "-W", "30"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = sub.0.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = line_tx.send(line);
    });
    // Publish until the subscriber (connecting meanwhile) has the message.
    let deadline = Instant::now() + Duration::from_secs(15);
    let got = loop {
        let publish = Command::new("mosquitto_pub")
            .args(mtls)
            .args(["-t", "devices/dev-42/telemetry", "-m", "21.5"])
            .current_dir(dir)
            .output()
            .unwrap();
        ok(&publish, "mosquitto_pub over mTLS");
        if let Ok(line) = line_rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "nothing arrived over mTLS");
    };
    assert_eq!(got.trim(), "devices/dev-42/telemetry 21.5");

    let sessions = skerry(&["ctl", "sessions"]);
    ok(&sessions, "ctl sessions");
    let table = String::from_utf8_lossy(&sessions.stdout);
    assert!(
        table.contains("dev-42"),
        "the subscriber is logged in as dev-42: {table}"
    );
    drop(sub);
    let status = run.terminate();
    assert!(status.success(), "skerry run exited with {status}");
}

#[test]
fn a_port_in_use_is_one_clear_error_and_the_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!(
        "broker:\n  store:\n    engine: memory\n  nodes:\n    - name: n1\n      data_dir: {}\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:{port}\n",
        dir.path().join("n1").display()
    );
    let (line, stderr) = run_start_error(dir.path(), &yaml);
    assert!(
        line.contains(&format!("node n1: listener `tcp`: cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
    assert_eq!(line.matches("cannot listen").count(), 1, "{line}");
}
