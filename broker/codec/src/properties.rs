//! The typed MQTT 5.0 property sets, one per packet type. A field exists
//! for each property the specification allows in that packet; anything
//! else in the packet is a protocol error. MQTT 3.x packets have no
//! properties: their sets stay empty and are never written.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use crate::property::{
    binary_value, flag_value, maximum_qos_value, nonzero_u16_value, nonzero_u32_value, not_allowed, once,
    payload_format_value, response_topic_value, string_value, subscription_id_value, u16_value, u32_value,
    user_property, visit_user_properties, Prop, PropertyId as P, PropertySet,
};
use crate::wire::Reader;
use crate::{DecodeError, PropertyId, QoS};

/// Payload Format Indicator: what the payload of a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PayloadFormat {
    /// Unspecified bytes.
    Unspecified = 0,
    /// UTF-8 encoded character data.
    Utf8 = 1,
}

type UserProperties = Vec<(String, String)>;

fn opt_str<'a>(f: &mut dyn FnMut(Prop<'a>), id: PropertyId, v: &'a Option<String>) {
    if let Some(s) = v {
        f(Prop::Str(id, s));
    }
}

fn opt_bin<'a>(f: &mut dyn FnMut(Prop<'a>), id: PropertyId, v: &'a Option<Bytes>) {
    if let Some(b) = v {
        f(Prop::Bin(id, b));
    }
}

fn opt_u32(f: &mut dyn FnMut(Prop<'_>), id: PropertyId, v: Option<u32>) {
    if let Some(v) = v {
        f(Prop::U32(id, v));
    }
}

fn opt_u16(f: &mut dyn FnMut(Prop<'_>), id: PropertyId, v: Option<u16>) {
    if let Some(v) = v {
        f(Prop::U16(id, v));
    }
}

fn opt_byte(f: &mut dyn FnMut(Prop<'_>), id: PropertyId, v: Option<u8>) {
    if let Some(v) = v {
        f(Prop::Byte(id, v));
    }
}

/// Properties of CONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Seconds the session outlives the connection (0 or absent: ends with it).
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1/2 publishes the client accepts unacknowledged.
    pub receive_maximum: Option<NonZeroU16>,
    /// Largest packet the client accepts.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Highest topic alias the client accepts from the server.
    pub topic_alias_maximum: Option<u16>,
    /// Whether the client wants Response Information in CONNACK.
    pub request_response_information: Option<bool>,
    /// Whether the client wants reason strings and user properties on failures.
    pub request_problem_information: Option<bool>,
    /// User properties, in order.
    pub user_properties: UserProperties,
    /// Extended authentication method.
    pub authentication_method: Option<String>,
    /// Extended authentication data.
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnectProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::SessionExpiryInterval => once(&mut self.session_expiry_interval, id, r, u32_value),
            P::ReceiveMaximum => once(&mut self.receive_maximum, id, r, nonzero_u16_value),
            P::MaximumPacketSize => once(&mut self.maximum_packet_size, id, r, nonzero_u32_value),
            P::TopicAliasMaximum => once(&mut self.topic_alias_maximum, id, r, u16_value),
            P::RequestResponseInformation => once(&mut self.request_response_information, id, r, flag_value),
            P::RequestProblemInformation => once(&mut self.request_problem_information, id, r, flag_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            P::AuthenticationMethod => once(&mut self.authentication_method, id, r, string_value),
            P::AuthenticationData => once(&mut self.authentication_data, id, r, binary_value),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_u32(f, P::SessionExpiryInterval, self.session_expiry_interval);
        opt_u16(f, P::ReceiveMaximum, self.receive_maximum.map(NonZeroU16::get));
        if let Some(v) = self.maximum_packet_size {
            f(Prop::U32(P::MaximumPacketSize, v.get()));
        }
        opt_u16(f, P::TopicAliasMaximum, self.topic_alias_maximum);
        let rri = self.request_response_information.map(u8::from);
        opt_byte(f, P::RequestResponseInformation, rri);
        let rpi = self.request_problem_information.map(u8::from);
        opt_byte(f, P::RequestProblemInformation, rpi);
        visit_user_properties(&self.user_properties, f);
        opt_str(f, P::AuthenticationMethod, &self.authentication_method);
        opt_bin(f, P::AuthenticationData, &self.authentication_data);
    }
}

/// Properties of the will message in CONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Seconds to wait after the connection ends before publishing the will.
    pub will_delay_interval: Option<u32>,
    /// What the will payload is.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Lifetime of the will message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Topic for a response (request/response pattern).
    pub response_topic: Option<String>,
    /// Data to correlate a response with its request.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: UserProperties,
}

impl PropertySet for WillProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::WillDelayInterval => once(&mut self.will_delay_interval, id, r, u32_value),
            P::PayloadFormatIndicator => once(&mut self.payload_format_indicator, id, r, payload_format_value),
            P::MessageExpiryInterval => once(&mut self.message_expiry_interval, id, r, u32_value),
            P::ContentType => once(&mut self.content_type, id, r, string_value),
            P::ResponseTopic => once(&mut self.response_topic, id, r, response_topic_value),
            P::CorrelationData => once(&mut self.correlation_data, id, r, binary_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_u32(f, P::WillDelayInterval, self.will_delay_interval);
        let pfi = self.payload_format_indicator.map(|p| p as u8);
        opt_byte(f, P::PayloadFormatIndicator, pfi);
        opt_u32(f, P::MessageExpiryInterval, self.message_expiry_interval);
        opt_str(f, P::ContentType, &self.content_type);
        opt_str(f, P::ResponseTopic, &self.response_topic);
        opt_bin(f, P::CorrelationData, &self.correlation_data);
        visit_user_properties(&self.user_properties, f);
    }
}

/// Properties of CONNACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// Session expiry the server settled on.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1/2 publishes the server accepts unacknowledged.
    pub receive_maximum: Option<NonZeroU16>,
    /// Highest QoS the server supports (absent: 2).
    pub maximum_qos: Option<QoS>,
    /// Whether the server supports retained messages.
    pub retain_available: Option<bool>,
    /// Largest packet the server accepts.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Client identifier the server assigned to an empty one.
    pub assigned_client_identifier: Option<String>,
    /// Highest topic alias the server accepts from the client.
    pub topic_alias_maximum: Option<u16>,
    /// Human-readable diagnostic.
    pub reason_string: Option<String>,
    /// User properties, in order.
    pub user_properties: UserProperties,
    /// Whether the server supports wildcard subscriptions.
    pub wildcard_subscription_available: Option<bool>,
    /// Whether the server supports subscription identifiers.
    pub subscription_identifiers_available: Option<bool>,
    /// Whether the server supports shared subscriptions.
    pub shared_subscription_available: Option<bool>,
    /// Keep-alive the server imposes instead of the client's.
    pub server_keep_alive: Option<u16>,
    /// Basis for response topics.
    pub response_information: Option<String>,
    /// Another server to use.
    pub server_reference: Option<String>,
    /// Extended authentication method.
    pub authentication_method: Option<String>,
    /// Extended authentication data.
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnAckProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::SessionExpiryInterval => once(&mut self.session_expiry_interval, id, r, u32_value),
            P::ReceiveMaximum => once(&mut self.receive_maximum, id, r, nonzero_u16_value),
            P::MaximumQoS => once(&mut self.maximum_qos, id, r, maximum_qos_value),
            P::RetainAvailable => once(&mut self.retain_available, id, r, flag_value),
            P::MaximumPacketSize => once(&mut self.maximum_packet_size, id, r, nonzero_u32_value),
            P::AssignedClientIdentifier => once(&mut self.assigned_client_identifier, id, r, string_value),
            P::TopicAliasMaximum => once(&mut self.topic_alias_maximum, id, r, u16_value),
            P::ReasonString => once(&mut self.reason_string, id, r, string_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            P::WildcardSubscriptionAvailable => once(&mut self.wildcard_subscription_available, id, r, flag_value),
            P::SubscriptionIdentifierAvailable => once(&mut self.subscription_identifiers_available, id, r, flag_value),
            P::SharedSubscriptionAvailable => once(&mut self.shared_subscription_available, id, r, flag_value),
            P::ServerKeepAlive => once(&mut self.server_keep_alive, id, r, u16_value),
            P::ResponseInformation => once(&mut self.response_information, id, r, string_value),
            P::ServerReference => once(&mut self.server_reference, id, r, string_value),
            P::AuthenticationMethod => once(&mut self.authentication_method, id, r, string_value),
            P::AuthenticationData => once(&mut self.authentication_data, id, r, binary_value),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_u32(f, P::SessionExpiryInterval, self.session_expiry_interval);
        opt_u16(f, P::ReceiveMaximum, self.receive_maximum.map(NonZeroU16::get));
        opt_byte(f, P::MaximumQoS, self.maximum_qos.map(|q| q as u8));
        opt_byte(f, P::RetainAvailable, self.retain_available.map(u8::from));
        if let Some(v) = self.maximum_packet_size {
            f(Prop::U32(P::MaximumPacketSize, v.get()));
        }
        opt_str(f, P::AssignedClientIdentifier, &self.assigned_client_identifier);
        opt_u16(f, P::TopicAliasMaximum, self.topic_alias_maximum);
        opt_str(f, P::ReasonString, &self.reason_string);
        visit_user_properties(&self.user_properties, f);
        let wildcard = self.wildcard_subscription_available.map(u8::from);
        opt_byte(f, P::WildcardSubscriptionAvailable, wildcard);
        let sub_ids = self.subscription_identifiers_available.map(u8::from);
        opt_byte(f, P::SubscriptionIdentifierAvailable, sub_ids);
        let shared = self.shared_subscription_available.map(u8::from);
        opt_byte(f, P::SharedSubscriptionAvailable, shared);
        opt_u16(f, P::ServerKeepAlive, self.server_keep_alive);
        opt_str(f, P::ResponseInformation, &self.response_information);
        opt_str(f, P::ServerReference, &self.server_reference);
        opt_str(f, P::AuthenticationMethod, &self.authentication_method);
        opt_bin(f, P::AuthenticationData, &self.authentication_data);
    }
}

/// Properties of PUBLISH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// What the payload is.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Lifetime of the message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic alias; with an empty topic name it stands for an earlier topic.
    pub topic_alias: Option<NonZeroU16>,
    /// Topic for a response (request/response pattern).
    pub response_topic: Option<String>,
    /// Data to correlate a response with its request.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: UserProperties,
    /// Identifiers of the subscriptions that matched (server to client
    /// only; each 1 to 268,435,455; may repeat).
    pub subscription_identifiers: Vec<u32>,
    /// MIME type of the payload.
    pub content_type: Option<String>,
}

impl PublishProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl PropertySet for PublishProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::PayloadFormatIndicator => once(&mut self.payload_format_indicator, id, r, payload_format_value),
            P::MessageExpiryInterval => once(&mut self.message_expiry_interval, id, r, u32_value),
            P::TopicAlias => once(&mut self.topic_alias, id, r, nonzero_u16_value),
            P::ResponseTopic => once(&mut self.response_topic, id, r, response_topic_value),
            P::CorrelationData => once(&mut self.correlation_data, id, r, binary_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            P::SubscriptionIdentifier => {
                let value = subscription_id_value(r, id)?;
                self.subscription_identifiers.push(value);
                Ok(())
            }
            P::ContentType => once(&mut self.content_type, id, r, string_value),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        let pfi = self.payload_format_indicator.map(|p| p as u8);
        opt_byte(f, P::PayloadFormatIndicator, pfi);
        opt_u32(f, P::MessageExpiryInterval, self.message_expiry_interval);
        opt_u16(f, P::TopicAlias, self.topic_alias.map(NonZeroU16::get));
        opt_str(f, P::ResponseTopic, &self.response_topic);
        opt_bin(f, P::CorrelationData, &self.correlation_data);
        visit_user_properties(&self.user_properties, f);
        for id in &self.subscription_identifiers {
            f(Prop::VarInt(P::SubscriptionIdentifier, *id));
        }
        opt_str(f, P::ContentType, &self.content_type);
    }
}

/// Properties of SUBSCRIBE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// Identifier echoed in every PUBLISH this subscription delivers
    /// (1 to 268,435,455).
    pub subscription_identifier: Option<u32>,
    /// User properties, in order.
    pub user_properties: UserProperties,
}

impl PropertySet for SubscribeProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::SubscriptionIdentifier => once(&mut self.subscription_identifier, id, r, subscription_id_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        if let Some(v) = self.subscription_identifier {
            f(Prop::VarInt(P::SubscriptionIdentifier, v));
        }
        visit_user_properties(&self.user_properties, f);
    }
}

/// Properties of UNSUBSCRIBE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// User properties, in order.
    pub user_properties: UserProperties,
}

impl PropertySet for UnsubscribeProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::UserProperty => user_property(&mut self.user_properties, r),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        visit_user_properties(&self.user_properties, f);
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Human-readable diagnostic.
    pub reason_string: Option<String>,
    /// User properties, in order.
    pub user_properties: UserProperties,
}

impl AckProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

impl PropertySet for AckProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::ReasonString => once(&mut self.reason_string, id, r, string_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_str(f, P::ReasonString, &self.reason_string);
        visit_user_properties(&self.user_properties, f);
    }
}

/// Properties of DISCONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// New session expiry, sent by the client only.
    pub session_expiry_interval: Option<u32>,
    /// Human-readable diagnostic.
    pub reason_string: Option<String>,
    /// User properties, in order.
    pub user_properties: UserProperties,
    /// Another server to use, sent by the server only.
    pub server_reference: Option<String>,
}

impl DisconnectProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl PropertySet for DisconnectProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::SessionExpiryInterval => once(&mut self.session_expiry_interval, id, r, u32_value),
            P::ReasonString => once(&mut self.reason_string, id, r, string_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            P::ServerReference => once(&mut self.server_reference, id, r, string_value),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_u32(f, P::SessionExpiryInterval, self.session_expiry_interval);
        opt_str(f, P::ReasonString, &self.reason_string);
        visit_user_properties(&self.user_properties, f);
        opt_str(f, P::ServerReference, &self.server_reference);
    }
}

/// Properties of AUTH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Extended authentication method.
    pub authentication_method: Option<String>,
    /// Extended authentication data.
    pub authentication_data: Option<Bytes>,
    /// Human-readable diagnostic.
    pub reason_string: Option<String>,
    /// User properties, in order.
    pub user_properties: UserProperties,
}

impl AuthProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl PropertySet for AuthProperties {
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            P::AuthenticationMethod => once(&mut self.authentication_method, id, r, string_value),
            P::AuthenticationData => once(&mut self.authentication_data, id, r, binary_value),
            P::ReasonString => once(&mut self.reason_string, id, r, string_value),
            P::UserProperty => user_property(&mut self.user_properties, r),
            _ => Err(not_allowed(id, r)),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(Prop<'_>)) {
        opt_str(f, P::AuthenticationMethod, &self.authentication_method);
        opt_bin(f, P::AuthenticationData, &self.authentication_data);
        opt_str(f, P::ReasonString, &self.reason_string);
        visit_user_properties(&self.user_properties, f);
    }
}
