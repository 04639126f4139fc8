//! `skerry ctl`: the operator's view of a running appliance, over the admin
//! API, printed as tables (or the raw JSON with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Talk to a running appliance's admin API.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// Admin endpoint (host:port) of the appliance.
    #[arg(long, env = "SKERRY_ADMIN", default_value = "127.0.0.1:8888", global = true)]
    admin: String,
    /// File with the bearer token, when the appliance requires one.
    #[arg(long, env = "SKERRY_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// List sessions (online and offline), optionally those whose client id contains TEXT.
    Sessions {
        /// Only client ids containing this text.
        #[arg(long, value_name = "TEXT", default_value = "")]
        search: String,
    },
    /// One session in detail.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Close a client's connection (its session stays).
    Disconnect {
        /// The client id.
        client_id: String,
    },
    /// Retained messages.
    Retained,
    /// The balancer's backends.
    #[command(subcommand)]
    Lb(LbCommand),
    /// Exit 0 when the appliance answers its liveness probe (/health), 1
    /// otherwise; for container HEALTHCHECKs and scripts.
    Health,
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Subscriptions, queue depth, node and state of one client's session.
    Show {
        /// The client id.
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum LbCommand {
    /// Every backend with its health, drain state and connections.
    Backends,
    /// Stop sending new clients to a backend (existing ones stay).
    Drain {
        /// The pool.
        pool: String,
        /// The member's name.
        member: String,
        /// Take the backend back into rotation instead.
        #[arg(long)]
        undo: bool,
    },
}

pub(crate) fn run(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let token = match &args.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let Some((method, path)) = api_call(&args.command) else {
        return Ok(health(&runtime, &args.admin));
    };
    let body = runtime.block_on(call(&args.admin, method, &path, token.as_deref()))?;
    let out = if args.json {
        format!("{body}\n")
    } else {
        render(&args.command, &body)
    };
    // A closed pipe (`skerry ctl sessions | head`) is not an error worth a word.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

async fn call(admin: &str, method: Method, path: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let (status, bytes) = request(admin, method, path, token).await?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != StatusCode::OK {
        let why = body.get("error").and_then(Value::as_str).unwrap_or("unexpected answer");
        bail!("{status}: {why}");
    }
    Ok(body)
}

/// The API request behind a command; `None` for `health`, which asks the
/// liveness probe instead.
fn api_call(cmd: &CtlCommand) -> Option<(Method, String)> {
    Some(match cmd {
        CtlCommand::Health => return None,
        CtlCommand::Sessions { search } => (Method::GET, format!("/api/v1/sessions?search={}", encode(search))),
        CtlCommand::Session(SessionCommand::Show { client_id }) => {
            (Method::GET, format!("/api/v1/sessions/{}", encode(client_id)))
        }
        CtlCommand::Disconnect { client_id } => (
            Method::POST,
            format!("/api/v1/sessions/{}/disconnect", encode(client_id)),
        ),
        CtlCommand::Retained => (Method::GET, "/api/v1/retained".to_owned()),
        CtlCommand::Lb(LbCommand::Backends) => (Method::GET, "/api/v1/lb/backends".to_owned()),
        CtlCommand::Lb(LbCommand::Drain { pool, member, undo }) => {
            let action = if *undo { "undrain" } else { "drain" };
            (
                Method::POST,
                format!("/api/v1/lb/backends/{}/{}/{action}", encode(pool), encode(member)),
            )
        }
    })
}

/// `skerry ctl health`: 0 when `/health` answers 200.
fn health(runtime: &tokio::runtime::Runtime, admin: &str) -> ExitCode {
    match runtime.block_on(request(admin, Method::GET, "/health", None)) {
        Ok((StatusCode::OK, _)) => ExitCode::SUCCESS,
        Ok((status, _)) => {
            eprintln!("unhealthy: {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {}", crate::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// One HTTP/1.1 request to the admin endpoint: status and body.
async fn request(admin: &str, method: Method, path: &str, token: Option<&str>) -> anyhow::Result<(StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(admin).await.with_context(|| {
        format!("cannot reach the admin endpoint at {admin} (is skerry running? --admin sets the address)")
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, admin);
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = sender.send_request(req.body(Empty::<Bytes>::new())?).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn table(header: &[&str], rows: &[Value], keys: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    for row in rows {
        t.add_row(keys.iter().map(|k| text(&row[*k])).collect::<Vec<_>>());
    }
    t
}

fn render(cmd: &CtlCommand, body: &Value) -> String {
    let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    let mut lines: Vec<String> = Vec::new();
    match cmd {
        CtlCommand::Sessions { .. } => {
            let keys = ["client_id", "node", "online", "username", "queued", "subscriptions"];
            let header = ["CLIENT ID", "NODE", "ONLINE", "USERNAME", "QUEUED", "SUBSCRIPTIONS"];
            lines.push(table(&header, &list("sessions"), &keys).to_string());
        }
        CtlCommand::Session(_) => {
            for key in [
                "client_id",
                "node",
                "online",
                "username",
                "queued",
                "expiry_secs",
                "offline_secs",
                "subscriptions",
            ] {
                lines.push(format!("{key:<14} {}", text(&body[key])));
            }
        }
        CtlCommand::Disconnect { client_id } => lines.push(format!("disconnected {client_id}")),
        CtlCommand::Retained => {
            let keys = ["node", "topic", "qos", "payload_bytes"];
            lines.push(table(&["NODE", "TOPIC", "QOS", "BYTES"], &list("retained"), &keys).to_string());
        }
        CtlCommand::Lb(LbCommand::Backends) => {
            let keys = ["pool", "member", "address", "healthy", "draining", "connections"];
            let header = ["POOL", "MEMBER", "ADDRESS", "HEALTHY", "DRAINING", "CONNECTIONS"];
            lines.push(table(&header, &list("backends"), &keys).to_string());
        }
        CtlCommand::Health => {}
        CtlCommand::Lb(LbCommand::Drain { pool, member, undo }) => {
            lines.push(format!(
                "{pool}/{member}: {}",
                if *undo { "back in rotation" } else { "draining" }
            ));
        }
    }
    lines.push(String::new());
    lines.join("\n")
}
