//! `skerry ca`: the bundled certificate authority on the command line. Thin:
//! parses arguments, calls `skerry-certs`, prints what happened.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Subcommand};
use skerry_certs::{
    Ca, CaOptions, CertKind, IssueRequest, KeyKind, KeySource, RevocationReason, San, Selector, Serial, Validity,
};

/// Longest validity accepted on the command line, in days (100 years).
const MAX_DAYS: i64 = 36_500;

#[derive(Debug, Args)]
#[command(after_help = "A five-command start:\n  \
    skerry ca init --dir ca --cn \"Plant 7 CA\"\n  \
    skerry ca issue server --dir ca --cn broker.plant7 --dns broker.plant7 --ip 10.0.0.5 --out broker\n  \
    skerry ca issue client --dir ca --cn sensor-001 --out sensor-001\n  \
    skerry ca revoke --dir ca --cn sensor-001 --reason key-compromise\n  \
    skerry ca crl --dir ca --out ca/crl.pem")]
pub(crate) struct CaArgs {
    /// The CA directory (ca.crt, ca.key, index.json, issued/). Default: `ca.dir`
    /// from the configuration file, or skerry-data/ca without one.
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Configuration file to take `ca.dir` from when --dir is not given.
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a new CA: a self-signed CA certificate (ca.crt) and its key
    /// (ca.key, mode 0600). Refuses to touch a directory that already holds a CA.
    Init(InitArgs),
    /// Issue a certificate: `server` for a broker or balancer listener,
    /// `client` for a device.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// List every certificate this CA issued: serial, CN, kind, expiry, status.
    List {
        /// Print the index as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Describe a certificate file (PEM or DER, from any CA): subject, issuer,
    /// SANs, validity, serial, key, key usage, fingerprints.
    Show {
        /// The certificate file.
        file: PathBuf,
    },
    /// Revoke a certificate (by serial) or every unrevoked certificate with a CN.
    /// Publish the change with `skerry ca crl`.
    Revoke(RevokeArgs),
    /// Write a signed CRL listing every revoked certificate. Run it after each
    /// revoke and before the previous CRL's next-update passes.
    Crl(CrlArgs),
    /// Re-issue a certificate (by serial, or the newest with a CN) with the same
    /// subject, SANs and key type, a new serial and a new validity period.
    /// Certificates signed from a CSR keep the device's key.
    Renew(RenewArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Name of the CA, shown by every TLS tool that prints the chain.
    #[arg(long, value_name = "NAME", default_value = "Skerry CA")]
    cn: String,
    /// Organization (O) in the CA's subject.
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Key type of the CA key.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256", value_parser = key_kind_parser())]
    key_type: KeyKind,
    /// Lifetime of the CA certificate in days. Every certificate it issues must
    /// expire before it does.
    #[arg(long, default_value_t = skerry_certs::DEFAULT_CA_DAYS, value_parser = days_parser())]
    days: u32,
}

#[derive(Debug, Subcommand)]
enum IssueCommand {
    /// A server certificate (server-auth EKU). TLS clients check the host name
    /// against the SANs only: give every name and address devices connect to.
    Server(IssueArgs),
    /// A device certificate (client-auth EKU). Brokers with
    /// `use_identity_as_username` take the CN as the MQTT username.
    Client(IssueArgs),
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// Subject CN: the device identity (client) or main host name (server).
    /// With --csr it defaults to the CN the CSR asks for.
    #[arg(long, value_name = "CN", required_unless_present = "csr")]
    cn: Option<String>,
    /// DNS name to put in the SANs; repeat or separate with commas. A server
    /// certificate without --dns/--ip gets its CN as DNS name.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    dns: Vec<String>,
    /// IP address to put in the SANs; repeat or separate with commas.
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    ip: Vec<std::net::IpAddr>,
    /// Organizational unit (OU) in the subject, e.g. a site or device group.
    #[arg(long, value_name = "OU")]
    ou: Option<String>,
    /// Sign this certificate signing request (PEM or DER) instead of making a
    /// key: the device keeps its private key. Its signature is checked; the
    /// extensions it asks for are ignored, CN/SANs/OU come from this command.
    #[arg(long, value_name = "FILE", conflicts_with = "key_type")]
    csr: Option<PathBuf>,
    /// Key type of the new key (not with --csr).
    #[arg(long, value_name = "TYPE", value_parser = key_kind_parser())]
    key_type: Option<KeyKind>,
    /// Validity in days.
    #[arg(long, default_value_t = skerry_certs::DEFAULT_LEAF_DAYS, value_parser = days_parser())]
    days: u32,
    /// Write PREFIX.crt and, unless --csr, PREFIX.key (mode 0600).
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Replace PREFIX.crt / PREFIX.key if they exist.
    #[arg(long)]
    force: bool,
}

/// Which certificate(s): a positional serial-or-CN, or --serial / --cn.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// Serial (hex, as `skerry ca list` prints it) or CN.
    #[arg(value_name = "SERIAL|CN")]
    target: Option<String>,
    /// The certificate with this serial.
    #[arg(long, value_name = "SERIAL", value_parser = parse_serial)]
    serial: Option<Serial>,
    /// The certificate(s) with this CN.
    #[arg(long, value_name = "CN")]
    cn: Option<String>,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Why, recorded in the index and the CRL.
    #[arg(long, default_value = "unspecified", value_parser = reason_parser())]
    reason: RevocationReason,
}

#[derive(Debug, Args)]
struct CrlArgs {
    /// Where to write the CRL (PEM). Default: crl.pem in the CA directory.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Days until next-update; relying parties reject the CRL after it.
    #[arg(long, default_value_t = skerry_certs::DEFAULT_CRL_DAYS, value_parser = days_parser())]
    days: u32,
}

#[derive(Debug, Args)]
struct RenewArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Validity of the new certificate in days.
    #[arg(long, default_value_t = skerry_certs::DEFAULT_LEAF_DAYS, value_parser = days_parser())]
    days: u32,
    /// Write PREFIX.crt and, for a CA-generated key, the new PREFIX.key.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Replace PREFIX.crt / PREFIX.key if they exist.
    #[arg(long)]
    force: bool,
}

fn key_kind_parser() -> impl clap::builder::TypedValueParser<Value = KeyKind> {
    PossibleValuesParser::new(KeyKind::NAMES).try_map(|s| s.parse::<KeyKind>())
}

fn reason_parser() -> impl clap::builder::TypedValueParser<Value = RevocationReason> {
    PossibleValuesParser::new(RevocationReason::NAMES).try_map(|s| s.parse::<RevocationReason>())
}

fn days_parser() -> impl clap::builder::TypedValueParser<Value = u32> {
    clap::value_parser!(u32).range(1..=MAX_DAYS)
}

fn parse_serial(s: &str) -> Result<Serial, skerry_certs::CaError> {
    s.parse()
}

pub(crate) fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    if let CaCommand::Show { file } = &args.command {
        output::show(file)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => crate::load_config(args.config.as_ref())?.ca.dir,
    };
    match args.command {
        CaCommand::Init(init) => run_init(&dir, init),
        CaCommand::Issue(IssueCommand::Server(a)) => run_issue(&dir, CertKind::Server, a),
        CaCommand::Issue(IssueCommand::Client(a)) => run_issue(&dir, CertKind::Client, a),
        CaCommand::List { json } => output::list(&open(&dir)?, json),
        CaCommand::Revoke(a) => run_revoke(&dir, a),
        CaCommand::Crl(a) => run_crl(&dir, a),
        CaCommand::Renew(a) => run_renew(&dir, a),
        CaCommand::Show { .. } => Ok(()),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn open(dir: &Path) -> anyhow::Result<Ca> {
    Ok(Ca::open(dir)?)
}

fn run_init(dir: &Path, args: InitArgs) -> anyhow::Result<()> {
    let opts = CaOptions {
        common_name: args.cn,
        organization: args.org,
        key_kind: args.key_type,
        validity: Validity::days(args.days),
    };
    let ca = Ca::create_in(dir, &opts).with_context(|| format!("creating a CA in {}", dir.display()))?;
    output::created(&ca)
}

fn run_issue(dir: &Path, kind: CertKind, args: IssueArgs) -> anyhow::Result<()> {
    let mut ca = open(dir)?;
    let key = match args.csr {
        Some(csr) => KeySource::CsrFile(csr),
        None => KeySource::Generate(args.key_type.unwrap_or_default()),
    };
    let mut req = IssueRequest::from_csr(kind, key);
    req.common_name = args.cn;
    req.ou = args.ou;
    req.sans = args
        .dns
        .into_iter()
        .map(San::Dns)
        .chain(args.ip.into_iter().map(San::Ip))
        .collect();
    req.validity = Some(Validity::days(args.days));
    req.out = Some(args.out);
    req.overwrite = args.force;
    let issued = ca.issue(&req)?;
    output::issued("issued", &issued);
    Ok(())
}

fn selector(t: TargetArgs) -> anyhow::Result<Selector> {
    match (t.serial, t.cn, t.target) {
        (Some(s), _, _) => Ok(Selector::Serial(s)),
        (_, Some(cn), _) => Ok(Selector::Cn(cn)),
        (_, _, Some(text)) => Ok(Selector::Either(text)),
        (None, None, None) => anyhow::bail!("name the certificate: SERIAL|CN, --serial or --cn"),
    }
}

fn run_revoke(dir: &Path, args: RevokeArgs) -> anyhow::Result<()> {
    let mut ca = open(dir)?;
    let revoked = ca.revoke(&selector(args.target)?, args.reason)?;
    for e in &revoked {
        println!(
            "revoked {} (CN {:?}, {}, reason {})",
            e.serial, e.cn, e.kind, args.reason
        );
    }
    println!("publish it: skerry ca crl --dir {}", dir.display());
    Ok(())
}

fn run_crl(dir: &Path, args: CrlArgs) -> anyhow::Result<()> {
    let mut ca = open(dir)?;
    let out = args.out.unwrap_or_else(|| dir.join(skerry_certs::CRL_FILE));
    let crl = ca.crl(time::Duration::days(i64::from(args.days)), Some(&out))?;
    println!(
        "wrote CRL number {} to {}: {} revoked certificate(s), next update {}",
        crl.number,
        out.display(),
        crl.revoked.len(),
        skerry_certs::format_time(crl.next_update)
    );
    Ok(())
}

fn run_renew(dir: &Path, args: RenewArgs) -> anyhow::Result<()> {
    let mut ca = open(dir)?;
    let validity = Some(Validity::days(args.days));
    let issued = ca.renew(&selector(args.target)?, validity, Some(args.out), args.force)?;
    output::issued("renewed", &issued);
    Ok(())
}
