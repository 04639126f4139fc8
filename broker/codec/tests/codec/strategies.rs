//! proptest strategies for every packet of every version. A generated
//! packet is always one the version can carry, so encode -> decode must
//! give it back unchanged.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use skerry_codec::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, LastWill, Packet, PacketType, PayloadFormat, ProtocolVersion, Publish, PublishProperties,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    Unsubscribe, UnsubscribeProperties, WillProperties,
};

pub(crate) fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|n| NonZeroU16::new(n).expect("non-zero"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

pub(crate) fn topic_name() -> impl Strategy<Value = String> {
    "[^+#\u{0}]{1,24}"
}

fn filter_level() -> impl Strategy<Value = String> {
    prop_oneof![Just("+".to_owned()), "[^+#/\u{0}]{0,6}"]
}

fn plain_filter() -> impl Strategy<Value = String> {
    (vec(filter_level(), 1..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut filter = levels.join("/");
        if filter.is_empty() {
            filter.push('x');
        }
        if hash {
            filter.push_str("/#");
        }
        filter
    })
}

pub(crate) fn topic_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => plain_filter(),
        1 => Just("#".to_owned()),
        1 => ("[a-z0-9]{1,6}", plain_filter()).prop_map(|(group, f)| format!("$share/{group}/{f}")),
    ]
}

fn user_properties() -> impl Strategy<Value = Vec<(String, String)>> {
    vec((text(), text()), 0..3)
}

/// Reason codes MQTT 5.0 allows in `packet`.
fn reason(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|c| c.is_valid_for(packet))
        .collect();
    prop::sample::select(codes)
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    packet_id()
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|n| NonZeroU32::new(n).expect("non-zero"))
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

fn subscription_id() -> impl Strategy<Value = u32> {
    1..=268_435_455u32
}

/// `strategy` on MQTT 5.0, the empty default on 3.x.
fn v5_only<T: Default + Clone + std::fmt::Debug + 'static>(
    version: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (option::of(any::<u32>()), option::of(nz16()), option::of(nz32())),
        (
            option::of(any::<u16>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        ),
        (user_properties(), option::of(text()), option::of(binary())),
    )
        .prop_map(|((sei, rm, mps), (tam, rri, rpi), (user, method, data))| {
            ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: user,
                // Authentication Data needs an Authentication Method.
                authentication_data: method.as_ref().and(data),
                authentication_method: method,
            }
        })
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(payload_format()),
            option::of(any::<u32>()),
        ),
        (option::of(text()), option::of(topic_name()), option::of(binary())),
        user_properties(),
    )
        .prop_map(|((delay, pfi, expiry), (ct, rt, cd), user)| WillProperties {
            will_delay_interval: delay,
            payload_format_indicator: pfi,
            message_expiry_interval: expiry,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: user,
        })
}

fn will(version: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        v5_only(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic: topic.into(),
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        (any::<bool>(), any::<u16>(), "[^\u{0}]{0,23}"),
        option::of(will(version)),
        (option::of(text()), option::of(binary())),
        v5_only(version, connect_properties()),
    )
        .prop_map(move |((clean, keep_alive, id), will, (user, pass), properties)| {
            let client_id = match version {
                ProtocolVersion::V31 if id.is_empty() => "c".to_owned(),
                _ => id,
            };
            let empty_id_needs_clean = version == ProtocolVersion::V311 && client_id.is_empty();
            let password_needs_user = !version.is_v5() && user.is_none();
            Packet::Connect(Connect {
                protocol: version,
                clean_start: clean || empty_id_needs_clean,
                keep_alive,
                client_id,
                will,
                username: user,
                password: if password_needs_user { None } else { pass },
                properties,
            })
        })
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let flags = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    );
    let max_qos = option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]);
    (
        (
            option::of(any::<u32>()),
            option::of(nz16()),
            max_qos,
            option::of(nz32()),
        ),
        (option::of(text()), option::of(any::<u16>()), option::of(text())),
        (user_properties(), flags, option::of(any::<u16>())),
        (
            option::of(text()),
            option::of(text()),
            option::of(text()),
            option::of(binary()),
        ),
    )
        .prop_map(
            |((sei, rm, mq, mps), (aci, tam, rs), (user, f, ska), (ri, sr, am, ad))| ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: f.0,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                user_properties: user,
                wildcard_subscription_available: f.1,
                subscription_identifiers_available: f.2,
                shared_subscription_available: f.3,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_data: am.as_ref().and(ad),
                authentication_method: am,
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        reason(PacketType::ConnAck).boxed()
    } else {
        (0..=5u8)
            .prop_map(|c| ReasonCode::from_v3_connack(c).expect("defined"))
            .boxed()
    };
    let present = version != ProtocolVersion::V31;
    (any::<bool>(), code, v5_only(version, connack_properties())).prop_map(
        move |(session_present, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: session_present && present,
                reason,
                properties,
            })
        },
    )
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        (
            option::of(payload_format()),
            option::of(any::<u32>()),
            option::of(nz16()),
        ),
        (option::of(topic_name()), option::of(binary()), user_properties()),
        (vec(subscription_id(), 0..3), option::of(text())),
    )
        .prop_map(|((pfi, mei, alias), (rt, cd, user), (ids, ct))| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: alias,
            response_topic: rt,
            correlation_data: cd,
            user_properties: user,
            subscription_identifiers: ids,
            content_type: ct,
        })
}

pub(crate) fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    (
        (qos(), any::<bool>(), any::<bool>(), packet_id()),
        (topic_name(), any::<bool>()),
        vec(any::<u8>(), 0..64),
        v5_only(version, publish_properties()),
    )
        .prop_map(move |((qos, dup, retain, id), (topic, aliased), payload, properties)| {
            // An empty topic stands for a topic alias, on 5.0 only.
            let empty = aliased && properties.topic_alias.is_some();
            Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic: if empty { String::new() } else { topic }.into(),
                packet_id: (qos != QoS::AtMostOnce).then_some(id),
                payload: payload.into(),
                properties,
            }
        })
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(text()), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn ack(version: ProtocolVersion, packet: PacketType) -> impl Strategy<Value = Ack> {
    let code = if version.is_v5() {
        reason(packet).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (packet_id(), code, v5_only(version, ack_properties())).prop_map(|(packet_id, reason, properties)| Ack {
        packet_id,
        reason,
        properties,
    })
}

fn subscription_options(version: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    if !version.is_v5() {
        return qos().prop_map(SubscriptionOptions::new).boxed();
    }
    let rh = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    (qos(), any::<bool>(), any::<bool>(), rh)
        .prop_map(|(qos, no_local, rap, rh)| SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: rap,
            retain_handling: rh,
        })
        .boxed()
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = (option::of(subscription_id()), user_properties()).prop_map(|(id, user)| SubscribeProperties {
        subscription_identifier: id,
        user_properties: user,
    });
    let filters = vec((topic_filter(), subscription_options(version)), 1..4);
    (packet_id(), filters, v5_only(version, props)).prop_map(|(packet_id, filters, properties)| {
        let filters = filters
            .into_iter()
            .map(|(f, mut o)| {
                // No Local is a protocol error on a shared subscription.
                o.no_local &= !f.starts_with("$share/");
                (f, o)
            })
            .collect();
        Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        })
    })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        reason(PacketType::SubAck).boxed()
    } else {
        prop::sample::select(vec![0u8, 1, 2, 0x80])
            .prop_map(|c| ReasonCode::from_v3_suback(c).expect("defined"))
            .boxed()
    };
    (packet_id(), vec(code, 0..4), v5_only(version, ack_properties())).prop_map(
        |(packet_id, return_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
                properties,
            })
        },
    )
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties });
    (packet_id(), vec(topic_filter(), 1..4), v5_only(version, props)).prop_map(|(packet_id, filters, properties)| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = v5_only(version, vec(reason(PacketType::UnsubAck), 0..4));
    (packet_id(), codes, v5_only(version, ack_properties())).prop_map(|(packet_id, reason_codes, properties)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        })
    })
}

fn disconnect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !version.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    let props = (
        option::of(any::<u32>()),
        option::of(text()),
        user_properties(),
        option::of(text()),
    )
        .prop_map(|(sei, rs, user, sr)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: user,
            server_reference: sr,
        });
    (reason(PacketType::Disconnect), props)
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    let props = (
        option::of(text()),
        option::of(binary()),
        option::of(text()),
        user_properties(),
    )
        .prop_map(|(am, ad, rs, user)| AuthProperties {
            authentication_data: am.as_ref().and(ad),
            authentication_method: am,
            reason_string: rs,
            user_properties: user,
        });
    (reason(PacketType::Auth), props).prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any packet `version` can carry.
pub(crate) fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v = version;
    let mut all = vec![
        connect(v).boxed(),
        connack(v).boxed(),
        publish(v).prop_map(Packet::Publish).boxed(),
        ack(v, PacketType::PubAck).prop_map(Packet::PubAck).boxed(),
        ack(v, PacketType::PubRec).prop_map(Packet::PubRec).boxed(),
        ack(v, PacketType::PubRel).prop_map(Packet::PubRel).boxed(),
        ack(v, PacketType::PubComp).prop_map(Packet::PubComp).boxed(),
        subscribe(v).boxed(),
        suback(v).boxed(),
        unsubscribe(v).boxed(),
        unsuback(v).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(v),
    ];
    if v.is_v5() {
        all.push(auth().boxed());
    }
    prop::strategy::Union::new(all).boxed()
}

/// A version with a packet of that version.
pub(crate) fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}
