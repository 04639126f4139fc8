//! `skerry ca` run as an operator runs it, with outside referees: OpenSSL
//! (`openssl verify`, `openssl req`, `openssl x509`) must agree with our
//! verdicts, and Debian's mosquitto must accept our certificates over TLS
//! and refuse revoked ones and those of another CA.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use skerry_tests::skerry;

/// `skerry ARGS` must succeed; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = skerry(args);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "skerry {args:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `skerry ARGS` must fail with exit code 1; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = skerry(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "skerry {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The serial from `issue`'s `serial  HEX` line.
fn serial_of(issue_stdout: &str) -> String {
    let line = issue_stdout
        .lines()
        .find(|l| l.trim_start().starts_with("serial"))
        .expect("serial line");
    line.split_whitespace().nth(1).expect("serial value").to_owned()
}

/// Runs a tool that the tests need (installed by `tests/run`).
fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e} (install it: apt-get install -y {name}, or run `bash tests/run`)"))
}

fn openssl(args: &[&str]) -> Output {
    tool("openssl", args)
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify -CAfile CA [-crl_check -CRLfile CRL] CERT`: true when OK.
fn openssl_verifies(ca: &Path, crl: Option<&Path>, cert: &Path) -> bool {
    let mut args = vec!["verify", "-CAfile", s(ca)];
    if let Some(crl) = crl {
        args.extend(["-crl_check", "-CRLfile", s(crl)]);
    }
    args.push(s(cert));
    openssl(&args).status.success()
}

/// Bytes and mode of every file under `dir`, to prove a failure changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                out.insert(path.clone(), (std::fs::read(&path).unwrap(), mode));
            }
        }
    }
    out
}

/// A CA with a server cert for 127.0.0.1 and two device certs.
struct Pki {
    tmp: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        ok(&["ca", "init", "--dir", s(&pki.ca()), "--cn", "Skerry Test CA"]);
        let (ca, srv) = (pki.ca(), pki.path("srv"));
        ok(&[
            "ca",
            "issue",
            "server",
            "--dir",
            s(&ca),
            "--cn",
            "localhost",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--out",
            s(&srv),
        ]);
        pki
    }

    fn ca(&self) -> PathBuf {
        self.tmp.path().join("ca")
    }

    fn ca_crt(&self) -> PathBuf {
        self.ca().join("ca.crt")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Issues a client cert `PREFIX.crt/.key` for CN `cn`; returns its serial.
    fn client(&self, cn: &str, prefix: &str) -> String {
        serial_of(&ok(&[
            "ca",
            "issue",
            "client",
            "--dir",
            s(&self.ca()),
            "--cn",
            cn,
            "--out",
            s(&self.path(prefix)),
        ]))
    }
}

#[test]
fn ca_walkthrough_agrees_with_openssl_verify() {
    let pki = Pki::new();
    let good = pki.client("sensor-1", "good");
    let bad = pki.client("sensor-2", "bad");
    assert_eq!(good.len(), 32, "16-byte serials: {good}");
    let out = ok(&[
        "ca",
        "revoke",
        "--dir",
        s(&pki.ca()),
        "--serial",
        &bad,
        "--reason",
        "key-compromise",
    ]);
    assert!(out.contains(&format!("revoked {bad}")), "{out}");
    let crl = pki.path("crl.pem");
    let out = ok(&["ca", "crl", "--dir", s(&pki.ca()), "--out", s(&crl)]);
    assert!(out.contains("CRL number 1") && out.contains("1 revoked"), "{out}");

    let ca = pki.ca_crt();
    assert!(
        openssl_verifies(&ca, Some(&crl), &pki.path("good.crt")),
        "unrevoked cert passes"
    );
    assert!(
        !openssl_verifies(&ca, Some(&crl), &pki.path("bad.crt")),
        "revoked cert fails the CRL check"
    );
    assert!(
        openssl_verifies(&ca, None, &pki.path("bad.crt")),
        "without the CRL it still chains"
    );
    assert!(openssl_verifies(&ca, Some(&crl), &pki.path("srv.crt")));
    let purpose = |p: &str, f: &str| {
        openssl(&["verify", "-CAfile", s(&ca), "-purpose", p, s(&pki.path(f))])
            .status
            .success()
    };
    assert!(purpose("sslserver", "srv.crt") && purpose("sslclient", "good.crt"));
    assert!(!purpose("sslserver", "good.crt"), "a device cert is no server cert");

    let crl_text = stdout_of(&openssl(&["crl", "-in", s(&crl), "-noout", "-text"]));
    assert!(crl_text.contains(&bad) && !crl_text.contains(&good), "{crl_text}");
    assert!(
        crl_text.contains("Key Compromise") && crl_text.contains("Next Update"),
        "{crl_text}"
    );

    let list = ok(&["ca", "list", "--dir", s(&pki.ca())]);
    let row = |serial: &str| {
        list.lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row(&good).contains("sensor-1") && row(&good).contains("client") && row(&good).ends_with("valid"),
        "{list}"
    );
    assert!(
        row(&bad).contains("revoked") && row(&bad).contains("key-compromise"),
        "{list}"
    );
    assert!(list.contains("localhost") && list.contains("server"), "{list}");
    for (file, mode) in [("ca/ca.key", 0o600), ("good.key", 0o600), ("good.crt", 0o644)] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(pki.path(file)).unwrap().permissions().mode() & 0o777,
            mode,
            "{file}"
        );
    }
}

#[test]
fn ca_signs_openssl_csrs_and_keeps_the_device_key() {
    let pki = Pki::new();
    for (name, newkey) in [("ec", "ec"), ("rsa", "rsa:2048")] {
        let key = pki.path(&format!("{name}.key"));
        let csr = pki.path(&format!("{name}.csr"));
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-newkey",
            newkey,
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ];
        if name == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        args.extend(["-subj", "/CN=meter-7"]);
        stdout_of(&openssl(&args));
        let prefix = pki.path(&format!("{name}-signed"));
        let out = ok(&[
            "ca",
            "issue",
            "client",
            "--dir",
            s(&pki.ca()),
            "--csr",
            s(&csr),
            "--out",
            s(&prefix),
        ]);
        assert!(out.contains("CN \"meter-7\"") && out.contains("device's own"), "{out}");
        let cert = pki.path(&format!("{name}-signed.crt"));
        assert!(
            !pki.path(&format!("{name}-signed.key")).exists(),
            "no key written for a CSR"
        );
        assert!(
            openssl_verifies(&pki.ca_crt(), None, &cert),
            "{name}: CSR-signed cert verifies"
        );
        let cert_pub = stdout_of(&openssl(&["x509", "-in", s(&cert), "-noout", "-pubkey"]));
        let key_pub = stdout_of(&openssl(&["pkey", "-in", s(&key), "-pubout"]));
        assert_eq!(
            cert_pub, key_pub,
            "{name}: the certificate carries the device's public key"
        );
    }
}

#[test]
fn ca_show_describes_a_third_party_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let (pem, der) = (tmp.path().join("third.pem"), tmp.path().join("third.der"));
    let key = tmp.path().join("third.key");
    stdout_of(&openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&pem),
        "-days",
        "30",
        "-subj",
        "/C=DE/O=Acme GmbH/CN=thirdparty.example",
        "-addext",
        "subjectAltName=DNS:thirdparty.example,IP:192.0.2.7",
    ]));
    stdout_of(&openssl(&["x509", "-in", s(&pem), "-outform", "DER", "-out", s(&der)]));
    let serial = stdout_of(&openssl(&["x509", "-in", s(&pem), "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=").trim_start_matches('0');
    let sha256 = stdout_of(&openssl(&["x509", "-in", s(&pem), "-noout", "-fingerprint", "-sha256"]));
    let sha256 = sha256.trim().split('=').nth(1).unwrap().to_owned();

    for file in [&pem, &der] {
        let out = ok(&["ca", "show", s(file)]);
        let field = |name: &str| {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in:\n{out}"));
            line[name.len()..].trim().to_owned()
        };
        assert_eq!(field("Subject:"), "C=DE, O=Acme GmbH, CN=thirdparty.example");
        assert_eq!(field("Issuer:"), "C=DE, O=Acme GmbH, CN=thirdparty.example");
        assert_eq!(field("Serial:").trim_start_matches('0'), serial);
        assert_eq!(field("SANs:"), "DNS:thirdparty.example, IP:192.0.2.7");
        assert_eq!(field("Public key:"), "RSA 2048");
        assert_eq!(field("Signature:"), "sha256WithRSAEncryption");
        assert_eq!(field("SHA-256 fingerprint:"), sha256);
        assert!(
            field("CA:").starts_with("yes"),
            "openssl req -x509 makes a CA cert:\n{out}"
        );
        let days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        assert!(field("Not after:").starts_with(&days.year().to_string()), "{out}");
    }
}

#[test]
fn ca_bad_input_fails_clearly_and_changes_nothing() {
    let pki = Pki::new();
    let serial = pki.client("dev-1", "dev");
    let dir = pki.ca();
    let unchanged = |args: &[&str], expect: &str| {
        let before = snapshot(&dir);
        let err = fails(args);
        assert!(err.contains(expect), "skerry {args:?}: expected {expect:?} in:\n{err}");
        assert_eq!(snapshot(&dir), before, "skerry {args:?} changed the CA dir");
    };
    let garbage = pki.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    unchanged(&["ca", "show", s(&garbage)], "garbage.pem: not a certificate");
    unchanged(
        &["ca", "init", "--dir", s(&dir), "--cn", "Again"],
        "refusing to overwrite an existing CA",
    );
    unchanged(
        &["ca", "revoke", "--dir", s(&dir), "--serial", "0123456789ABCDEF"],
        "no certificate with serial 0123456789ABCDEF",
    );
    unchanged(
        &["ca", "revoke", "--dir", s(&dir), "nobody"],
        "no unrevoked certificate with CN \"nobody\"",
    );
    unchanged(
        &[
            "ca",
            "renew",
            "--dir",
            s(&dir),
            "--cn",
            "nobody",
            "--out",
            s(&pki.path("x")),
        ],
        "CN \"nobody\"",
    );
    let out = s(&pki.path("g")).to_owned();
    unchanged(
        &[
            "ca",
            "issue",
            "client",
            "--dir",
            s(&dir),
            "--csr",
            s(&garbage),
            "--out",
            &out,
        ],
        "not a certificate signing request",
    );

    // A CSR whose signature was tampered with.
    let csr = pki.path("dev.csr");
    stdout_of(&openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        s(&pki.path("t.key")),
        "-outform",
        "DER",
        "-out",
        s(&csr),
        "-subj",
        "/CN=tampered",
    ]));
    let mut der = std::fs::read(&csr).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    std::fs::write(&csr, der).unwrap();
    unchanged(
        &[
            "ca",
            "issue",
            "client",
            "--dir",
            s(&dir),
            "--csr",
            s(&csr),
            "--out",
            &out,
        ],
        "signature does not verify",
    );
    assert!(!pki.path("g.crt").exists());

    // Existing outputs are not overwritten without --force.
    unchanged(
        &[
            "ca",
            "issue",
            "client",
            "--dir",
            s(&dir),
            "--cn",
            "dev-1",
            "--out",
            s(&pki.path("dev")),
        ],
        "use --force",
    );
    // Revoking twice.
    ok(&["ca", "revoke", "--dir", s(&dir), &serial]);
    unchanged(
        &["ca", "revoke", "--dir", s(&dir), "--serial", &serial],
        "already revoked",
    );

    // An expired CA (made with the library: the CLI only makes valid ones).
    let old = pki.path("old-ca");
    let now = time::OffsetDateTime::now_utc();
    let mut opts = skerry_certs::CaOptions::new("Expired CA");
    opts.validity = skerry_certs::Validity::between(now - time::Duration::days(30), now - time::Duration::days(1));
    skerry_certs::Ca::create_in(&old, &opts).unwrap();
    let before = snapshot(&old);
    let err = fails(&["ca", "issue", "client", "--dir", s(&old), "--cn", "late", "--out", &out]);
    assert!(err.contains("not now: create a new CA"), "{err}");
    assert_eq!(snapshot(&old), before);
    assert!(fails(&["ca", "list", "--dir", s(&pki.path("nowhere"))]).contains("is not a CA directory"));
}

#[test]
fn ca_dir_comes_from_the_config_file_and_renew_reissues() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("from-yaml");
    let config = tmp.path().join("skerry.yaml");
    std::fs::write(&config, format!("ca:\n  dir: {}\n", ca_dir.display())).unwrap();
    ok(&[
        "ca",
        "init",
        "-c",
        s(&config),
        "--cn",
        "Yaml CA",
        "--key-type",
        "ed25519",
    ]);
    assert!(ca_dir.join("ca.crt").is_file() && ca_dir.join("ca.key").is_file());
    let prefix = tmp.path().join("gw");
    let issue = [
        "ca",
        "issue",
        "server",
        "-c",
        s(&config),
        "--cn",
        "gw",
        "--dns",
        "gw.local",
        "--ip",
        "10.1.2.3",
    ];
    let first = serial_of(&ok(&[&issue[..], &["--days", "30", "--out", s(&prefix)]].concat()));
    let out = ok(&["ca", "renew", "-c", s(&config), "gw", "--out", s(&prefix), "--force"]);
    let second = serial_of(&out);
    assert_ne!(first, second);
    assert!(out.contains(&format!("renews       {first}")), "{out}");
    let shown = ok(&["ca", "show", s(&tmp.path().join("gw.crt"))]);
    assert!(
        shown.contains("DNS:gw.local, IP:10.1.2.3") && shown.contains(&second) && shown.contains("serverAuth"),
        "{shown}"
    );
    assert!(openssl_verifies(
        &ca_dir.join("ca.crt"),
        None,
        &tmp.path().join("gw.crt")
    ));
    let list = ok(&["ca", "list", "-c", s(&config), "--json"]);
    assert_eq!(list.matches("\"cn\": \"gw\"").count(), 2, "{list}");
}

/// A mosquitto broker on a free loopback port; killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    fn start(pki: &Pki, crl: Option<&Path>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut conf = format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npersistence false\nlog_dest stderr\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\n",
            s(&pki.ca_crt()),
            s(&pki.path("srv.crt")),
            s(&pki.path("srv.key")),
        );
        if let Some(crl) = crl {
            conf.push_str(&format!("crlfile {}\n", s(crl)));
        }
        let conf_path = pki.path(&format!("mosquitto-{port}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(pki.path(&format!("mosquitto-{port}.log"))).unwrap();
        let child = Command::new(mosquitto_bin().unwrap())
            .args(["-c", s(&conf_path)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut broker = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(pki.path(&format!("mosquitto-{port}.log"))).unwrap_or_default();
            assert!(broker.child.try_wait().unwrap().is_none(), "mosquitto exited:\n{log}");
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// `mosquitto_pub` with a client cert; true when the publish went through.
    fn publish(&self, pki: &Pki, cert: &str) -> bool {
        let port = self.port.to_string();
        let (crt, key) = (pki.path(&format!("{cert}.crt")), pki.path(&format!("{cert}.key")));
        let mut child = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--cafile",
                s(&pki.ca_crt()),
                "--cert",
                s(&crt),
                "--key",
                s(&key),
            ])
            .args(["-t", "skerry/ca-test", "-m", "hello", "-q", "1", "-i", cert])
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

fn mosquitto_bin() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    in_path
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

#[test]
fn ca_certs_work_with_a_real_mosquitto_tls_broker() {
    if mosquitto_bin().is_none() {
        eprintln!("SKIPPED ca_certs_work_with_a_real_mosquitto_tls_broker: no mosquitto binary (apt-get install -y mosquitto mosquitto-clients)");
        return;
    }
    let pki = Pki::new();
    pki.client("device-ok", "ok");
    let revoked = pki.client("device-revoked", "revoked");
    // A device certificate from some other CA, with the same CN as a good one.
    let other = pki.path("other-ca");
    ok(&["ca", "init", "--dir", s(&other), "--cn", "Other CA"]);
    ok(&[
        "ca",
        "issue",
        "client",
        "--dir",
        s(&other),
        "--cn",
        "device-ok",
        "--out",
        s(&pki.path("foreign")),
    ]);

    let broker = Mosquitto::start(&pki, None);
    assert!(broker.publish(&pki, "ok"), "mosquitto accepts our device cert");
    let log = std::fs::read_to_string(pki.path(&format!("mosquitto-{}.log", broker.port))).unwrap();
    assert!(
        log.contains("u'device-ok'"),
        "use_identity_as_username took the CN as username:\n{log}"
    );
    assert!(
        broker.publish(&pki, "revoked"),
        "before revocation the second device connects too"
    );
    assert!(!broker.publish(&pki, "foreign"), "a cert from another CA is refused");
    drop(broker);

    ok(&[
        "ca",
        "revoke",
        "--dir",
        s(&pki.ca()),
        "--serial",
        &revoked,
        "--reason",
        "key-compromise",
    ]);
    let crl = pki.path("crl.pem");
    ok(&["ca", "crl", "--dir", s(&pki.ca()), "--out", s(&crl)]);
    let broker = Mosquitto::start(&pki, Some(&crl));
    assert!(
        broker.publish(&pki, "ok"),
        "an unrevoked cert still connects with the CRL loaded"
    );
    assert!(
        !broker.publish(&pki, "revoked"),
        "mosquitto with our CRL refuses the revoked cert"
    );
    assert!(!broker.publish(&pki, "foreign"));
}
