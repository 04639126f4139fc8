//! The outside check that matters most: Debian's mosquitto, configured for
//! TLS client authentication with our CA, accepts our device certificates,
//! takes the CN as username, and refuses revoked ones (with our CRL loaded)
//! and certificates from another CA.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Pki;

/// A mosquitto broker on a free loopback port; killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Mosquitto {
    fn start(pki: &Pki, crl: Option<&Path>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (ca, crt, key) = (pki.ca_crt(), pki.path("srv.crt"), pki.path("srv.key"));
        // `user root` keeps a root-run broker from switching to the
        // `mosquitto` user, who cannot read our 0600 key; ignored otherwise.
        let mut conf = format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npersistence false\n\
             log_dest stderr\nlistener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\n",
            ca.display(),
            crt.display(),
            key.display(),
        );
        if let Some(crl) = crl {
            conf.push_str(&format!("crlfile {}\n", crl.display()));
        }
        let conf_path = pki.path(&format!("mosquitto-{port}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let log = pki.path(&format!("mosquitto-{port}.log"));
        let child = Command::new(mosquitto_bin().unwrap())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut broker = Self { child, port, log };
        broker.wait_listening();
        broker
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "mosquitto exited:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "mosquitto not listening on {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `mosquitto_pub` (QoS 1) with `{tmp}/NAME.crt/.key`; true when it went through.
    fn publish(&self, pki: &Pki, name: &str) -> bool {
        let (crt, key) = (pki.path(&format!("{name}.crt")), pki.path(&format!("{name}.key")));
        let mut child = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "skerry/ca-test",
                "-m",
                "hi",
            ])
            .args(["-q", "1", "-i", name, "--cafile"])
            .arg(pki.ca_crt())
            .arg("--cert")
            .arg(crt)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_pub (apt-get install -y mosquitto-clients)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian installs the broker in /usr/sbin, which a user's PATH may lack.
fn mosquitto_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]);
    dirs.map(|d| d.join("mosquitto")).find(|p| p.is_file())
}

#[test]
fn ca_certs_work_with_a_real_mosquitto_tls_broker() {
    if mosquitto_bin().is_none() {
        eprintln!(
            "SKIPPED ca_certs_work_with_a_real_mosquitto_tls_broker: no mosquitto binary \
             (apt-get install -y mosquitto mosquitto-clients)"
        );
        return;
    }
    let pki = Pki::new();
    pki.client("device-ok", "ok");
    let revoked = pki.client("device-revoked", "revoked");
    // A device certificate from another CA, with the same CN as a good one.
    pki.ok("ca init --dir {tmp}/other-ca --cn OtherCA");
    pki.ok("ca issue client --dir {tmp}/other-ca --cn device-ok --out {tmp}/foreign");

    let broker = Mosquitto::start(&pki, None);
    assert!(
        broker.publish(&pki, "ok"),
        "our device cert is accepted:\n{}",
        broker.log()
    );
    assert!(
        broker.log().contains("u'device-ok'"),
        "the CN is the username:\n{}",
        broker.log()
    );
    assert!(broker.publish(&pki, "revoked"), "before revocation it connects too");
    assert!(!broker.publish(&pki, "foreign"), "another CA's cert is refused");
    drop(broker);

    pki.ok(&format!(
        "ca revoke --dir {{ca}} --serial {revoked} --reason key-compromise"
    ));
    pki.ok("ca crl --dir {ca} --out {tmp}/crl.pem");
    let broker = Mosquitto::start(&pki, Some(&pki.path("crl.pem")));
    assert!(
        broker.publish(&pki, "ok"),
        "unrevoked still connects with the CRL:\n{}",
        broker.log()
    );
    assert!(
        !broker.publish(&pki, "revoked"),
        "the revoked cert is refused:\n{}",
        broker.log()
    );
    assert!(!broker.publish(&pki, "foreign"));
    assert!(broker.log().contains("certificate verify failed"), "{}", broker.log());
}
