//! `skerry`: the MQTT edge appliance in one binary. This file only parses
//! the command line and hands off; each subcommand lives in its own module.

mod admin;
mod bench;
mod ca;
mod config_cmd;
mod ctl;
mod lb_cmd;
mod local;
mod logging;
mod passwd;
mod run;
mod tls_auto;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Skerry: MQTT load balancer, broker nodes and certificate authority in one binary,
/// driven by one YAML file.
#[derive(Debug, Parser)]
#[command(name = "skerry", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance: the broker nodes, balancer and admin endpoint the
    /// YAML asks for (the embedded default without -c).
    Run(run::RunArgs),
    /// Check a configuration file, or print the documented reference configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// The bundled certificate authority: create a CA, issue server and device
    /// certificates, revoke them, publish a CRL.
    Ca(ca::CaArgs),
    /// Run only the load balancer (the `lb:` section of FILE) in front of
    /// brokers of any kind, until SIGTERM or SIGINT, then drain.
    Lb(lb_cmd::LbArgs),
    /// Operate a running appliance over its admin API: sessions, disconnects,
    /// retained messages, balancer backends.
    Ctl(ctl::CtlArgs),
    /// Generate MQTT load against a broker and measure throughput, loss and
    /// latency (conn, pub, sub, fanin, fanout, shared).
    Bench(bench::BenchArgs),
    /// Add a user to the broker's users file, change a password, or delete a user.
    Passwd(passwd::PasswdArgs),
}

/// Loads `path`, or the embedded defaults when no file is named.
pub(crate) fn load_config(path: Option<&PathBuf>) -> anyhow::Result<skerry_config::Config> {
    match path {
        Some(p) => Ok(skerry_config::load(p)?),
        None => Ok(skerry_config::Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_) | Command::Lb(_)) {
        // `run` and `lb` set logging up from their configuration.
        logging::init(&skerry_config::Logging::default());
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Config(cmd) => config_cmd::run(cmd),
        Command::Ca(args) => ca::run(args),
        Command::Passwd(args) => passwd::run(args),
        Command::Ctl(args) => ctl::run(&args),
        Command::Bench(args) => bench::run(args),
        Command::Lb(args) => lb_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: most of our error
/// types end their own message with their source's, which anyhow's `{:#}`
/// would then repeat for every level.
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
