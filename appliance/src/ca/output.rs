//! What `skerry ca` prints: short summaries an operator can read and a
//! script can grep (`serial`, `wrote`), and the `list` table.

use std::path::Path;

use skerry_certs::{format_time, inspect_file, Ca, IndexEntry, Issued};

/// After `init`.
pub(super) fn created(ca: &Ca) -> anyhow::Result<()> {
    let info = inspect_file(&ca.cert_path())?.into_iter().next();
    println!("created CA in {}", ca.dir().display());
    println!(
        "  certificate  {}  (give this to devices and listeners)",
        ca.cert_path().display()
    );
    println!(
        "  private key  {}  (mode 0600: keep it secret, back it up)",
        ca.key_path().display()
    );
    println!("  valid until  {}", format_time(ca.validity().not_after));
    if let Some(info) = info {
        println!("  subject      {}", info.subject);
        println!("  SHA-256      {}", info.sha256);
    }
    Ok(())
}

/// After `issue` or `renew`.
pub(super) fn issued(verb: &str, issued: &Issued) {
    let e = &issued.entry;
    println!("{verb} {} certificate for CN {:?}", e.kind, e.cn);
    println!("  serial       {}", e.serial);
    println!(
        "  valid        {} .. {}",
        format_time(e.not_before),
        format_time(e.not_after)
    );
    if !e.sans.is_empty() {
        let sans: Vec<String> = e.sans.iter().map(ToString::to_string).collect();
        println!("  SANs         {}", sans.join(", "));
    }
    if let Some(from) = &e.renewed_from {
        println!("  renews       {from} (still valid until it expires or is revoked)");
    }
    if let Some(p) = &issued.cert_path {
        println!("  wrote        {}", p.display());
    }
    if let Some(p) = &issued.key_path {
        println!("  wrote        {}  (private key, mode 0600)", p.display());
    }
    if e.from_csr {
        println!("  key          the device's own (signed from its CSR)");
    }
}

/// `list`: one row per certificate, or the raw index entries as JSON.
pub(super) fn list(ca: &Ca, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(ca.entries())?);
        return Ok(());
    }
    if ca.entries().is_empty() {
        println!("no certificates issued yet by the CA in {}", ca.dir().display());
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let cn_width = ca
        .entries()
        .iter()
        .map(|e| e.cn.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    println!(
        "{:<32}  {:<cn_width$}  {:<6}  {:<23}  STATUS",
        "SERIAL", "CN", "KIND", "NOT AFTER"
    );
    for e in ca.entries() {
        println!(
            "{:<32}  {:<cn_width$}  {:<6}  {:<23}  {}",
            e.serial.to_string(),
            e.cn,
            e.kind.to_string(),
            format_time(e.not_after),
            status(e, now)
        );
    }
    Ok(())
}

fn status(e: &IndexEntry, now: time::OffsetDateTime) -> String {
    match (e.state(now), e.reason, e.revoked_at) {
        ("revoked", Some(reason), Some(at)) => format!("revoked {} ({reason})", format_time(at)),
        (state, _, _) => state.to_owned(),
    }
}

/// `show FILE`.
pub(super) fn show(file: &Path) -> anyhow::Result<()> {
    let infos = inspect_file(file)?;
    let total = infos.len();
    for (i, info) in infos.iter().enumerate() {
        if total > 1 {
            if i > 0 {
                println!();
            }
            println!("Certificate {} of {total} in {}", i + 1, file.display());
        }
        print!("{info}");
    }
    Ok(())
}
