//! `skerry ca` run as an operator runs it, with outside referees: OpenSSL
//! (`openssl verify`, `openssl req`, `openssl x509`) must agree with our
//! verdicts, and Debian's mosquitto must accept our certificates over TLS
//! and refuse revoked ones and those of another CA.
//!
//! Commands are written as one line, split on whitespace, the way an operator
//! types them; temporary paths hold no spaces.

mod failures;
mod mosquitto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use skerry_tests::skerry;

/// `skerry LINE` must succeed; returns stdout.
fn ok(line: &str) -> String {
    ok_args(&line.split_whitespace().collect::<Vec<_>>())
}

/// `skerry ARGS` must succeed; returns stdout.
fn ok_args(args: &[&str]) -> String {
    let out = skerry(args);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "skerry {args:?} failed:\n{stdout}{stderr}");
    stdout
}

/// `skerry LINE` must fail (exit code 1, or 2 for a usage error); returns stderr.
fn fails(line: &str) -> String {
    let out = skerry(&line.split_whitespace().collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "skerry {line} should fail, got {code:?}: {stdout}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The serial from `issue`'s `serial  HEX` line.
fn serial_of(issue_stdout: &str) -> String {
    let line = issue_stdout.lines().find(|l| l.trim_start().starts_with("serial"));
    let value = line.and_then(|l| l.split_whitespace().nth(1));
    value
        .unwrap_or_else(|| panic!("no serial in:\n{issue_stdout}"))
        .to_owned()
}

/// `openssl ARGS`; the tool is installed by `tests/run`.
fn openssl_args(args: &[&str]) -> Output {
    let hint = "install it: apt-get install -y openssl, or run `bash tests/run`";
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} ({hint})"))
}

/// `openssl LINE` must succeed; returns stdout.
fn openssl(line: &str) -> String {
    let out = openssl_args(&line.split_whitespace().collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "openssl {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify -CAfile CA [-crl_check -CRLfile CRL] CERT` says OK.
fn openssl_verifies(ca: &Path, crl: Option<&Path>, cert: &Path) -> bool {
    let crl = crl
        .map(|c| format!("-crl_check -CRLfile {}", c.display()))
        .unwrap_or_default();
    let line = format!("verify -CAfile {} {crl} {}", ca.display(), cert.display());
    openssl_args(&line.split_whitespace().collect::<Vec<_>>())
        .status
        .success()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A temporary directory with a CA (`ca/`) and a server certificate
/// (`srv.crt`, `srv.key`) for `localhost` and 127.0.0.1.
struct Pki {
    tmp: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        let (ca, srv) = (pki.ca(), pki.path("srv"));
        ok_args(&["ca", "init", "--dir", ca.to_str().unwrap(), "--cn", "Skerry Test CA"]);
        let dns = "--dns localhost --ip 127.0.0.1";
        ok(&format!(
            "ca issue server --dir {} --cn localhost {dns} --out {}",
            ca.display(),
            srv.display()
        ));
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

    /// Runs `skerry LINE` with `{ca}` and `{tmp}` replaced by the CA
    /// directory and the temporary directory.
    fn ok(&self, line: &str) -> String {
        ok(&self.expand(line))
    }

    fn fails(&self, line: &str) -> String {
        fails(&self.expand(line))
    }

    fn expand(&self, line: &str) -> String {
        line.replace("{ca}", &self.ca().display().to_string())
            .replace("{tmp}", &self.tmp.path().display().to_string())
    }

    /// Issues a device cert `{tmp}/PREFIX.crt/.key` for `cn`; returns its serial.
    fn client(&self, cn: &str, prefix: &str) -> String {
        serial_of(&self.ok(&format!(
            "ca issue client --dir {{ca}} --cn {cn} --out {{tmp}}/{prefix}"
        )))
    }
}

#[test]
fn ca_walkthrough_agrees_with_openssl_verify() {
    let pki = Pki::new();
    let good = pki.client("sensor-1", "good");
    let bad = pki.client("sensor-2", "bad");
    assert_eq!(good.len(), 32, "16-byte serials: {good}");
    let out = pki.ok(&format!(
        "ca revoke --dir {{ca}} --serial {bad} --reason key-compromise"
    ));
    assert!(out.contains(&format!("revoked {bad}")), "{out}");
    let out = pki.ok("ca crl --dir {ca} --out {tmp}/crl.pem");
    assert!(out.contains("CRL number 1") && out.contains("1 revoked"), "{out}");

    let (ca, crl) = (pki.ca_crt(), pki.path("crl.pem"));
    assert!(
        openssl_verifies(&ca, Some(&crl), &pki.path("good.crt")),
        "unrevoked passes"
    );
    assert!(
        !openssl_verifies(&ca, Some(&crl), &pki.path("bad.crt")),
        "revoked fails"
    );
    assert!(
        openssl_verifies(&ca, None, &pki.path("bad.crt")),
        "without the CRL it chains"
    );
    assert!(openssl_verifies(&ca, Some(&crl), &pki.path("srv.crt")));
    let purpose = |p: &str, f: &str| {
        let line = format!("verify -CAfile {} -purpose {p} {}", ca.display(), pki.path(f).display());
        openssl_args(&line.split_whitespace().collect::<Vec<_>>())
            .status
            .success()
    };
    assert!(purpose("sslserver", "srv.crt") && purpose("sslclient", "good.crt"));
    assert!(!purpose("sslserver", "good.crt"), "a device cert is no server cert");

    let crl_text = openssl(&format!("crl -in {} -noout -text", crl.display()));
    assert!(crl_text.contains(&bad) && !crl_text.contains(&good), "{crl_text}");
    assert!(
        crl_text.contains("Key Compromise") && crl_text.contains("Next Update"),
        "{crl_text}"
    );
}

#[test]
fn ca_list_shows_status_and_keys_are_private() {
    let pki = Pki::new();
    let good = pki.client("sensor-1", "good");
    let bad = pki.client("sensor-2", "bad");
    pki.ok(&format!("ca revoke --dir {{ca}} {bad} --reason cessation-of-operation"));
    let list = pki.ok("ca list --dir {ca}");
    let row = |serial: &str| list.lines().find(|l| l.starts_with(serial)).unwrap_or_default();
    let good_row = row(&good);
    assert!(good_row.contains("sensor-1") && good_row.contains("client"), "{list}");
    assert!(good_row.ends_with("valid"), "{list}");
    assert!(
        row(&bad).contains("revoked") && row(&bad).contains("cessation-of-operation"),
        "{list}"
    );
    assert!(list.contains("localhost") && list.contains("server"), "{list}");
    for (file, want) in [("ca/ca.key", 0o600), ("good.key", 0o600), ("good.crt", 0o644)] {
        assert_eq!(mode(&pki.path(file)), want, "{file}");
    }
}

#[test]
fn ca_signs_openssl_csrs_and_keeps_the_device_key() {
    let pki = Pki::new();
    for (name, newkey) in [("ec", "ec -pkeyopt ec_paramgen_curve:P-256"), ("rsa", "rsa:2048")] {
        let (key, csr) = (pki.path(&format!("{name}.key")), pki.path(&format!("{name}.csr")));
        let (k, c) = (key.display(), csr.display());
        openssl(&format!(
            "req -new -nodes -newkey {newkey} -keyout {k} -out {c} -subj /CN=meter-7"
        ));
        let out = pki.ok(&format!(
            "ca issue client --dir {{ca}} --csr {c} --out {{tmp}}/{name}-signed"
        ));
        assert!(out.contains("CN \"meter-7\"") && out.contains("device's own"), "{out}");
        assert!(
            !pki.path(&format!("{name}-signed.key")).exists(),
            "no key written for a CSR"
        );
        let cert = pki.path(&format!("{name}-signed.crt"));
        assert!(
            openssl_verifies(&pki.ca_crt(), None, &cert),
            "{name}: CSR-signed cert verifies"
        );
        let cert_pub = openssl(&format!("x509 -in {} -noout -pubkey", cert.display()));
        let key_pub = openssl(&format!("pkey -in {k} -pubout"));
        assert_eq!(
            cert_pub, key_pub,
            "{name}: the certificate carries the device's public key"
        );
    }
}

#[test]
fn ca_show_describes_a_third_party_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let [pem, der, key] = ["third.pem", "third.der", "third.key"].map(|f| tmp.path().join(f));
    let (p, k) = (pem.to_str().unwrap(), key.to_str().unwrap());
    let subject = "/C=DE/O=Acme GmbH/CN=thirdparty.example";
    let sans = "subjectAltName=DNS:thirdparty.example,IP:192.0.2.7";
    let req = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k, "-out", p, "-days", "30",
    ];
    let out = openssl_args(&[&req[..], &["-subj", subject, "-addext", sans]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    openssl(&format!("x509 -in {p} -outform DER -out {}", der.display()));
    let serial = openssl(&format!("x509 -in {p} -noout -serial"));
    let serial = serial.trim().trim_start_matches("serial=").trim_start_matches('0');
    let sha256 = openssl(&format!("x509 -in {p} -noout -fingerprint -sha256"));
    let sha256 = sha256.trim().split('=').nth(1).unwrap().to_owned();

    for file in [&pem, &der] {
        let out = ok(&format!("ca show {}", file.display()));
        let field = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name));
            line.unwrap_or_else(|| panic!("no {name} in:\n{out}"))[name.len()..]
                .trim()
                .to_owned()
        };
        assert_eq!(field("Subject:"), "C=DE, O=Acme GmbH, CN=thirdparty.example");
        assert_eq!(field("Issuer:"), "C=DE, O=Acme GmbH, CN=thirdparty.example");
        assert_eq!(field("Serial:").trim_start_matches('0'), serial);
        assert_eq!(field("SANs:"), "DNS:thirdparty.example, IP:192.0.2.7");
        assert_eq!(field("Public key:"), "RSA 2048");
        assert_eq!(field("Signature:"), "sha256WithRSAEncryption");
        assert_eq!(field("SHA-256 fingerprint:"), sha256);
        assert!(field("CA:").starts_with("yes"), "openssl req -x509 makes a CA:\n{out}");
        let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let date = format!(
            "{}-{:02}-{:02}",
            in_30_days.year(),
            u8::from(in_30_days.month()),
            in_30_days.day()
        );
        assert!(field("Not after:").starts_with(&date), "{out}");
    }
}

#[test]
fn ca_dir_comes_from_the_config_file_and_renew_reissues() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca_dir, config, gw) = (
        tmp.path().join("from-yaml"),
        tmp.path().join("skerry.yaml"),
        tmp.path().join("gw"),
    );
    std::fs::write(&config, format!("ca:\n  dir: {}\n", ca_dir.display())).unwrap();
    let c = config.display();
    ok(&format!("ca init -c {c} --cn YamlCA --key-type ed25519"));
    assert!(ca_dir.join("ca.crt").is_file() && ca_dir.join("ca.key").is_file());
    let names = "--dns gw.local --ip 10.1.2.3";
    let first = serial_of(&ok(&format!(
        "ca issue server -c {c} --cn gw {names} --key-type ed25519 --days 30 --out {}",
        gw.display()
    )));
    let out = ok(&format!("ca renew -c {c} gw --out {} --force", gw.display()));
    let second = serial_of(&out);
    assert_ne!(first, second);
    assert!(out.contains(&format!("renews       {first}")), "{out}");
    let shown = ok(&format!("ca show {}.crt", gw.display()));
    assert!(
        shown.contains("DNS:gw.local, IP:10.1.2.3") && shown.contains(&second),
        "{shown}"
    );
    assert!(
        shown.contains("serverAuth") && shown.contains("Ed25519"),
        "same key type: {shown}"
    );
    assert!(openssl_verifies(
        &ca_dir.join("ca.crt"),
        None,
        &tmp.path().join("gw.crt")
    ));
    let list = ok(&format!("ca list -c {c} --json"));
    assert_eq!(list.matches("\"cn\": \"gw\"").count(), 2, "{list}");
}
