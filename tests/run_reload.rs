//! SIGHUP on `skerry run`: the ACL, the node's CRL and the balancer's pool
//! members change without a restart and without dropping the sessions up;
//! a change that needs a restart is named in the log.

use std::path::Path;

use rustls::pki_types::ServerName;
use skerry_certs::{Ca, CaOptions, Issued, San};
use skerry_codec::{Connect, ProtocolVersion, ReasonCode};
use skerry_tests::process::{free_port, SkerryProcess};
use skerry_tests::skerry;
use skerry_tests::stream::StreamClient;
use skerry_tests::wait::eventually;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const V5: ProtocolVersion = ProtocolVersion::V5;

struct Ports {
    tls: u16,
    tcp: u16,
    lb: u16,
    admin: u16,
}

fn config(dir: &Path, p: &Ports, extra_acl: &str, members: &str, keep_alive: &str) -> String {
    let d = dir.display();
    let Ports { tls, tcp, lb, admin } = p;
    format!(
        r#"admin:
  bind: 127.0.0.1:{admin}
broker:
  allow_anonymous: false
  max_keep_alive: {keep_alive}
  store: {{engine: memory}}
  acl:
    - {{access: all, topic: "devices/%u/#"}}
{extra_acl}  nodes:
    - name: n1
      listeners:
        - name: mqtts
          bind: 127.0.0.1:{tls}
          transport: tls
          tls:
            cert: {d}/server.crt
            key: {d}/server.key
            client_ca: {d}/ca/ca.crt
            require_certificate: true
            use_identity_as_username: true
            crl: {d}/crl.pem
        - name: plain
          bind: 127.0.0.1:{tcp}
lb:
  grace_period: 2s
  drain_window: 200ms
  listeners:
    - {{name: mqtt, bind: 127.0.0.1:{lb}, pool: nodes}}
  pools:
    - name: nodes
      health_check: {{interval: 200ms}}
      members:
{members}"#
    )
}

/// A TLS client with `cert` on the node's TLS listener, connected as
/// `id`; `None` when the handshake or the CONNECT is refused.
async fn tls_client(ca: &Ca, cert: &Issued, port: u16, id: &str) -> Option<StreamClient<TlsStream<TcpStream>>> {
    let connector = skerry_tests::tls::connector(ca, Some(cert));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.ok()?;
    let mut c = StreamClient::new(tls, V5);
    let ack = c.connect(Connect::new(V5, id)).await?;
    (ack.reason == ReasonCode::Success).then_some(c)
}

/// `skerry ctl lb backends`; empty while the admin endpoint is not up yet.
fn backends(admin: u16) -> String {
    let out = skerry(&["ctl", "--admin", &format!("127.0.0.1:{admin}"), "lb", "backends"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sighup_reloads_acl_crl_and_pool_members_and_names_what_needs_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut ca = Ca::create_in(&dir.join("ca"), &CaOptions::new("Reload Test CA")).unwrap();
    let sans = [San::Ip([127, 0, 0, 1].into()), San::Dns("localhost".into())];
    ca.issue_server("localhost", &sans, &dir.join("server")).unwrap();
    let dev1 = ca.issue_client("dev-1", &dir.join("dev-1")).unwrap();
    let dev2 = ca.issue_client("dev-2", &dir.join("dev-2")).unwrap();
    let crl = dir.join("crl.pem");
    ca.crl(time::Duration::days(1), Some(&crl)).unwrap();

    let ports = Ports {
        tls: free_port(),
        tcp: free_port(),
        lb: free_port(),
        admin: free_port(),
    };
    let one = format!("        - {{name: n1, address: \"127.0.0.1:{}\"}}\n", ports.tcp);
    let yaml = dir.join("skerry.yaml");
    std::fs::write(&yaml, config(dir, &ports, "", &one, "65535s")).unwrap();
    let run = SkerryProcess::start(&yaml, ([127, 0, 0, 1], ports.tls).into()).await;

    let mut dev1_up = tls_client(&ca, &dev1, ports.tls, "dev-1")
        .await
        .expect("dev-1 admitted");
    assert!(dev1_up.subscribe("shared/news").await.is_error(), "not in the ACL yet");
    assert_eq!(dev1_up.subscribe("devices/dev-1/#").await, ReasonCode::GrantedQoS1);
    eventually("the admin endpoint to answer", || backends(ports.admin).contains("n1")).await;

    // The operator revokes dev-1, opens shared/# to everyone, adds a pool
    // member and lowers max_keep_alive (that one needs a restart).
    ca.revoke(
        &skerry_certs::Selector::Cn("dev-1".into()),
        skerry_certs::RevocationReason::KeyCompromise,
    )
    .unwrap();
    ca.crl(time::Duration::days(1), Some(&crl)).unwrap();
    let two = format!("{one}        - {{name: n1b, address: \"127.0.0.1:{}\"}}\n", ports.tcp);
    let acl = "    - {access: subscribe, topic: \"shared/#\"}\n";
    std::fs::write(&yaml, config(dir, &ports, acl, &two, "60s")).unwrap();
    run.signal("HUP");
    eventually("the new pool member to show", || backends(ports.admin).contains("n1b")).await;

    let mut dev2_up = tls_client(&ca, &dev2, ports.tls, "dev-2")
        .await
        .expect("dev-2 admitted");
    assert_eq!(
        dev2_up.subscribe("shared/news").await,
        ReasonCode::GrantedQoS1,
        "the new ACL applies"
    );
    assert!(
        tls_client(&ca, &dev1, ports.tls, "dev-1-again").await.is_none(),
        "the reloaded CRL refuses dev-1's new connections"
    );
    assert_eq!(
        dev1_up.publish("devices/dev-1/t", "on").await,
        ReasonCode::Success,
        "dev-1's open session goes on"
    );
    let (topic, _) = dev1_up.received().await;
    assert_eq!(topic, "devices/dev-1/t");
    let log = run.log();
    assert!(
        log.contains("need a restart") && log.contains("broker.max_keep_alive"),
        "the log names what needs a restart:\n{log}"
    );
    assert!(run.terminate().await.success());
}
