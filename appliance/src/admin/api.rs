//! The JSON API: sessions, one session, disconnect, retained messages,
//! balancer backends and draining. Routes are matched by hand: there are
//! few and they never change.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::{reply, AdminState, Reply};

/// Dispatches `/api/...` requests.
pub(super) fn route(state: &AdminState, method: &Method, path: &str, query: &str) -> Reply {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["sessions"]) => ok(&sessions(state, &param(query, "search"))),
        (&Method::GET, ["sessions", id]) => match session(state, &decode(id)) {
            Some(v) => ok(&v),
            None => not_found("no such session"),
        },
        (&Method::POST, ["sessions", id, "disconnect"]) => {
            let id = decode(id);
            if state.nodes.iter().any(|n| n.disconnect(&id)) {
                ok(&json!({ "disconnected": id }))
            } else {
                not_found("client not connected")
            }
        }
        (&Method::GET, ["retained"]) => ok(&retained(state)),
        (&Method::GET, ["lb", "backends"]) => match &state.lb {
            Some(lb) => ok(&backends(lb)),
            None => not_found("this process runs no balancer"),
        },
        (&Method::POST, ["lb", "backends", pool, member, action @ ("drain" | "undrain")]) => match &state.lb {
            Some(lb) => {
                let drain = *action == "drain";
                match lb.drain(&decode(pool), &decode(member), drain) {
                    Ok(()) => ok(&json!({ "pool": decode(pool), "member": decode(member), "draining": drain })),
                    Err(e) => not_found(&e.to_string()),
                }
            }
            None => not_found("this process runs no balancer"),
        },
        _ => not_found("no such API route"),
    }
}

fn ok(v: &Value) -> Reply {
    reply(StatusCode::OK, "application/json", v.to_string())
}

fn not_found(what: &str) -> Reply {
    reply(
        StatusCode::NOT_FOUND,
        "application/json",
        json!({ "error": what }).to_string(),
    )
}

/// The value of `key` in a query string (percent-decoded), or "".
fn param(query: &str, key: &str) -> String {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
        .unwrap_or_default()
}

/// Percent-decoding for path segments and query values (client ids may hold `/`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn session_json(s: &skerry_broker::SessionInfo) -> Value {
    json!({
        "client_id": s.client_id,
        "node": s.node,
        "online": s.online,
        "username": s.username,
        "subscriptions": s.subscriptions,
        "queued": s.queued,
        "expiry_secs": s.expiry_secs,
        "offline_secs": s.offline_secs,
    })
}

fn sessions(state: &AdminState, search: &str) -> Value {
    let list: Vec<Value> = state
        .nodes
        .iter()
        .flat_map(|n| n.sessions(search))
        .map(|s| session_json(&s))
        .collect();
    json!({ "sessions": list })
}

fn session(state: &AdminState, id: &str) -> Option<Value> {
    state.nodes.iter().find_map(|n| n.session(id)).map(|s| session_json(&s))
}

fn retained(state: &AdminState) -> Value {
    let list: Vec<Value> = state
        .nodes
        .iter()
        .flat_map(|n| n.retained().into_iter().map(move |r| (n.name().to_owned(), r)))
        .map(|(node, r)| json!({ "node": node, "topic": r.topic, "qos": r.qos, "payload_bytes": r.payload_bytes }))
        .collect();
    json!({ "retained": list })
}

fn backends(lb: &skerry_lb::BalancerView) -> Value {
    let list: Vec<Value> = lb
        .backends()
        .into_iter()
        .map(|b| {
            json!({
                "pool": b.pool, "member": b.member, "address": b.address, "healthy": b.healthy,
                "draining": b.draining, "connections": b.active_connections,
                "total_connections": b.total_connections, "connect_failures": b.connect_failures,
            })
        })
        .collect();
    json!({ "backends": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_and_params() {
        assert_eq!(decode("dev%2F42"), "dev/42");
        assert_eq!(decode("a+b%zz"), "a b%zz");
        assert_eq!(param("x=1&search=dev%2D4", "search"), "dev-4");
        assert_eq!(param("x=1", "search"), "");
    }
}
