//! The `lb` section: listeners that name existing pools, pools with
//! members, limits and rate classes.

use std::collections::HashSet;
use std::num::NonZeroU32;

use super::broker::proxy;
use super::tls::tls;
use super::{claim_port, Ctx};
use crate::lb::{Balance, Compat, HealthCheck, Lb, LbListener, Member, OnMarkedDown, Pool, ProxyMode, RateClass};
use crate::raw::{RawHealthCheck, RawLb, RawLbListener, RawMember, RawPool, RawRateClass};
use crate::span::join;
use crate::units::{Bandwidth, Duration, Rate};

pub(super) fn lb(cx: &mut Ctx<'_>, raw: RawLb) -> Lb {
    let pools: Vec<Pool> = raw.pools.into_iter().enumerate().map(|(i, p)| pool(cx, i, p)).collect();
    let names = unique_names(cx, "lb.pools", pools.iter().map(|p| p.name.as_str()));
    if raw.listeners.is_empty() {
        cx.error("lb.listeners", "the balancer needs at least one listener");
    }
    let listeners = raw
        .listeners
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| listener(cx, &format!("lb.listeners[{i}]"), l, &names))
        .collect();
    let rate = |cx: &mut Ctx<'_>, key: &str, t: Option<crate::raw::Text>| {
        t.and_then(|t| cx.unit::<Rate>(&join("lb", key), &t))
    };
    Lb {
        listeners,
        pools,
        sniff_timeout: cx.unit_or("lb.sniff_timeout", raw.sniff_timeout, Lb::DEFAULT_SNIFF_TIMEOUT),
        max_connect_size: cx.unit_or(
            "lb.max_connect_size",
            raw.max_connect_size,
            Lb::DEFAULT_MAX_CONNECT_SIZE,
        ),
        grace_period: cx.unit_or("lb.grace_period", raw.grace_period, Lb::DEFAULT_GRACE_PERIOD),
        drain_window: cx.unit_or("lb.drain_window", raw.drain_window, Lb::DEFAULT_DRAIN_WINDOW),
        max_connections: nonzero(cx, "lb.max_connections", raw.max_connections),
        max_connections_per_ip: nonzero(cx, "lb.max_connections_per_ip", raw.max_connections_per_ip),
        connect_rate: rate(cx, "connect_rate", raw.connect_rate),
        connect_rate_per_ip: rate(cx, "connect_rate_per_ip", raw.connect_rate_per_ip),
        rate_classes: raw
            .rate_classes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| class(cx, i, c))
            .collect(),
        scheduling: raw.scheduling.unwrap_or_default(),
    }
}

/// A cap that, when given, must allow at least one.
fn nonzero(cx: &mut Ctx<'_>, path: &str, value: Option<u32>) -> Option<NonZeroU32> {
    let v = value?;
    let n = NonZeroU32::new(v);
    if n.is_none() {
        cx.error(
            path,
            "0 would refuse every connection (expected at least 1, or leave it out for no cap)",
        );
    }
    n
}

/// Reports names used twice under `list` and returns the set of names.
fn unique_names<'a>(cx: &mut Ctx<'_>, list: &str, names: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name.to_owned()) {
            cx.error(
                &format!("{list}[{i}].name"),
                format_args!("name {name:?} is used twice in {list}"),
            );
        }
    }
    seen
}

fn listener(cx: &mut Ctx<'_>, path: &str, raw: RawLbListener, pools: &HashSet<String>) -> Option<LbListener> {
    let bind_path = join(path, "bind");
    let bind = cx.socket_addr(&bind_path, &raw.bind);
    if let Some(addr) = bind {
        claim_port(cx, bind_path, addr);
    }
    if !pools.contains(&raw.pool) {
        let known: Vec<&str> = pools.iter().map(String::as_str).collect();
        cx.error(
            &join(path, "pool"),
            format_args!("no pool is named {:?} (pools: {})", raw.pool, known.join(", ")),
        );
    }
    let name = raw
        .name
        .unwrap_or_else(|| bind.map(|b| format!("lb-{}", b.port())).unwrap_or_default());
    let tls = raw.tls.and_then(|t| {
        let files = tls(cx, &join(path, "tls"), &name, t)?;
        if files.use_identity_as_username {
            let message =
                "the balancer does not log clients in: pass the CN on with a pool proxy_protocol of v2_ssl_cn";
            cx.error(&join(path, "tls.use_identity_as_username"), message);
        }
        Some(files)
    });
    let proxy_protocol = raw
        .proxy_protocol
        .as_ref()
        .map(|p| proxy(cx, &join(path, "proxy_protocol"), p));
    let bind = bind?;
    Some(LbListener {
        name,
        bind,
        pool: raw.pool,
        tls,
        proxy_protocol,
    })
}

fn pool(cx: &mut Ctx<'_>, i: usize, raw: RawPool) -> Pool {
    let path = format!("lb.pools[{i}]");
    if raw.members.is_empty() {
        cx.error(&join(&path, "members"), "a pool needs at least one member");
    }
    let list = join(&path, "members");
    unique_names(cx, &list, raw.members.iter().map(|m| m.name.as_str()));
    let members = raw
        .members
        .into_iter()
        .enumerate()
        .filter_map(|(m, raw)| member(cx, &format!("{list}[{m}]"), raw))
        .collect();
    if let Some(f) = raw.balance_factor.filter(|f| *f < 100) {
        cx.error(
            &join(&path, "balance_factor"),
            format_args!("{f} is below 100 (percent of the average load; 150 allows 1.5x)"),
        );
    }
    let connect_timeout = cx.unit_or(&join(&path, "connect_timeout"), raw.connect_timeout, Duration::secs(3));
    let health_check = raw
        .health_check
        .map(|h| health(cx, &join(&path, "health_check"), h))
        .unwrap_or_default();
    Pool {
        name: raw.name,
        balance: raw.balance.unwrap_or(Balance::ClientId),
        balance_factor: raw.balance_factor,
        proxy_protocol: raw.proxy_protocol.unwrap_or(ProxyMode::None),
        compat: raw.compat.unwrap_or(Compat::None),
        send_client_cert: raw.send_client_cert.unwrap_or(false),
        connect_timeout,
        on_marked_down: raw.on_marked_down.unwrap_or(OnMarkedDown::Keep),
        health_check,
        members,
    }
}

fn member(cx: &mut Ctx<'_>, path: &str, raw: RawMember) -> Option<Member> {
    let address = raw.address.0;
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        cx.error(
            &join(path, "address"),
            format_args!("{address:?} is not host:port (e.g. 10.0.0.5:1883 or node-0.skerry:1883)"),
        );
        return None;
    }
    let handover_socket = raw
        .handover_socket
        .and_then(|p| cx.unix_socket(&join(path, "handover_socket"), &p));
    Some(Member {
        name: raw.name,
        address,
        handover_socket,
    })
}

fn health(cx: &mut Ctx<'_>, path: &str, raw: RawHealthCheck) -> HealthCheck {
    let d = HealthCheck::default();
    let count = |cx: &mut Ctx<'_>, key: &str, v: Option<u32>, default: NonZeroU32| match v {
        None => default,
        Some(v) => NonZeroU32::new(v).unwrap_or_else(|| {
            cx.error(
                &join(path, key),
                "0 would never change a backend's state (expected at least 1)",
            );
            default
        }),
    };
    HealthCheck {
        kind: raw.kind.unwrap_or(d.kind),
        interval: cx.unit_or(&join(path, "interval"), raw.interval, d.interval),
        timeout: cx.unit_or(&join(path, "timeout"), raw.timeout, d.timeout),
        rise: count(cx, "rise", raw.rise, d.rise),
        fall: count(cx, "fall", raw.fall, d.fall),
    }
}

fn class(cx: &mut Ctx<'_>, i: usize, raw: RawRateClass) -> RateClass {
    let path = format!("lb.rate_classes[{i}]");
    let m = raw.matches;
    let bw = |cx: &mut Ctx<'_>, key: &str, t: Option<crate::raw::Text>| {
        t.and_then(|t| cx.unit::<Bandwidth>(&join(&path, key), &t))
    };
    RateClass {
        bandwidth_in: bw(cx, "bandwidth_in", raw.bandwidth_in),
        bandwidth_out: bw(cx, "bandwidth_out", raw.bandwidth_out),
        connect_rate: raw
            .connect_rate
            .and_then(|t| cx.unit::<Rate>(&join(&path, "connect_rate"), &t)),
        name: raw.name,
        match_cn: m.as_ref().and_then(|m| m.cn.clone()),
        match_username: m.as_ref().and_then(|m| m.username.clone()),
        match_client_id_prefix: m.and_then(|m| m.client_id_prefix),
    }
}
