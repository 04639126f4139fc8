//! The file as written: serde types that mirror the YAML one to one, with
//! unknown keys rejected. Values with units or addresses stay text here and
//! are parsed by `validate`, so that every bad value in a file is reported,
//! not only the first one serde meets.

use std::fmt;
use std::path::PathBuf;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::lb::{Balance, Compat, HealthKind, OnMarkedDown, ProxyMode, Scheduling};
use crate::model::{Access, LogFormat, QueueType, SharedPolicy, StoreDurability, StoreEngine, Transport};

/// A scalar kept as the text the operator wrote (`30s`, `1883`, `0.0.0.0:1883`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (text or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) logging: Option<RawLogging>,
    pub(crate) ca: Option<RawCa>,
    pub(crate) broker: Option<RawBroker>,
    pub(crate) lb: Option<RawLb>,
    pub(crate) admin: Option<RawAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) bind: Option<Text>,
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub(crate) level: Option<String>,
    pub(crate) format: Option<LogFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCa {
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBroker {
    pub(crate) max_message_rate: Option<Text>,
    pub(crate) max_message_size: Option<Text>,
    pub(crate) max_keep_alive: Option<Text>,
    pub(crate) topic_alias_maximum: Option<u16>,
    pub(crate) shared_subscription_policy: Option<SharedPolicy>,
    pub(crate) sys_interval: Option<Text>,
    pub(crate) allow_anonymous: Option<bool>,
    pub(crate) users_file: Option<PathBuf>,
    pub(crate) acl: Option<Vec<RawAclRule>>,
    pub(crate) sessions: Option<RawSessions>,
    pub(crate) store: Option<RawStore>,
    pub(crate) nodes: Option<Vec<RawNode>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) engine: Option<StoreEngine>,
    pub(crate) durability: Option<StoreDurability>,
    pub(crate) fsync_interval: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAclRule {
    pub(crate) access: Access,
    pub(crate) topic: String,
    pub(crate) users: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub(crate) max_offline_messages: Option<u32>,
    pub(crate) max_online_messages: Option<u32>,
    pub(crate) max_inflight_messages: Option<u16>,
    pub(crate) queue_type: Option<QueueType>,
    pub(crate) max_session_expiry: Option<Text>,
    pub(crate) persistent_client_expiration: Option<Text>,
    pub(crate) hibernate_after: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) name: String,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) listeners: Vec<RawListener>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) name: Option<String>,
    pub(crate) bind: Text,
    pub(crate) transport: Option<Transport>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) handshake_timeout: Option<Text>,
    pub(crate) max_packet_size: Option<Text>,
    pub(crate) send_buffer: Option<Text>,
    pub(crate) receive_buffer: Option<Text>,
    pub(crate) websocket_path: Option<String>,
    pub(crate) tls: Option<RawTlsSpec>,
    pub(crate) proxy_protocol: Option<RawProxy>,
    pub(crate) handover_socket: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub(crate) trusted: Vec<Text>,
    pub(crate) use_cn_as_username: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) auto: Option<bool>,
    pub(crate) names: Option<Vec<String>>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) require_certificate: Option<bool>,
    pub(crate) use_identity_as_username: Option<bool>,
    pub(crate) crl: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLb {
    pub(crate) sniff_timeout: Option<Text>,
    pub(crate) max_connect_size: Option<Text>,
    pub(crate) grace_period: Option<Text>,
    pub(crate) drain_window: Option<Text>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) max_connections_per_ip: Option<u32>,
    pub(crate) connect_rate: Option<Text>,
    pub(crate) connect_rate_per_ip: Option<Text>,
    pub(crate) listeners: Vec<RawLbListener>,
    pub(crate) pools: Vec<RawPool>,
    pub(crate) rate_classes: Option<Vec<RawRateClass>>,
    pub(crate) scheduling: Option<Scheduling>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLbListener {
    pub(crate) name: Option<String>,
    pub(crate) bind: Text,
    pub(crate) pool: String,
    pub(crate) tls: Option<RawTlsSpec>,
    pub(crate) proxy_protocol: Option<RawProxy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) name: String,
    pub(crate) balance: Option<Balance>,
    pub(crate) balance_factor: Option<u32>,
    pub(crate) proxy_protocol: Option<ProxyMode>,
    pub(crate) compat: Option<Compat>,
    pub(crate) send_client_cert: Option<bool>,
    pub(crate) connect_timeout: Option<Text>,
    pub(crate) on_marked_down: Option<OnMarkedDown>,
    pub(crate) health_check: Option<RawHealthCheck>,
    pub(crate) members: Vec<RawMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub(crate) kind: Option<HealthKind>,
    pub(crate) interval: Option<Text>,
    pub(crate) timeout: Option<Text>,
    pub(crate) rise: Option<u32>,
    pub(crate) fall: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub(crate) name: String,
    pub(crate) address: Text,
    pub(crate) handover_socket: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateClass {
    pub(crate) name: String,
    #[serde(rename = "match")]
    pub(crate) matches: Option<RawClassMatch>,
    pub(crate) bandwidth_in: Option<Text>,
    pub(crate) bandwidth_out: Option<Text>,
    pub(crate) connect_rate: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClassMatch {
    pub(crate) cn: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) client_id_prefix: Option<String>,
}

/// `tls: auto`, or a mapping of TLS settings (which may itself say `auto: true`).
#[derive(Debug)]
pub(crate) struct RawTlsSpec(pub(crate) RawTls);

impl<'de> Deserialize<'de> for RawTlsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = RawTlsSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("auto, or a mapping with cert and key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTlsSpec, E> {
                if v != "auto" {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                let auto = RawTls {
                    auto: Some(true),
                    names: None,
                    cert: None,
                    key: None,
                    client_ca: None,
                    require_certificate: None,
                    use_identity_as_username: None,
                    crl: None,
                };
                Ok(RawTlsSpec(auto))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTlsSpec, A::Error> {
                RawTls::deserialize(MapAccessDeserializer::new(map)).map(RawTlsSpec)
            }
        }
        d.deserialize_any(SpecVisitor)
    }
}
