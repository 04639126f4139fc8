//! MQTT 5.0 reason codes, which packets may carry which, and the mapping
//! to the return codes of MQTT 3.x CONNACK and SUBACK.
//!
//! Every decoding error maps to one of these (see
//! [`DecodeError::reason_code`](crate::DecodeError::reason_code)), so a
//! broker can always tell a client why it is being disconnected.

use std::fmt;

use crate::{PacketType, QoS};

/// Declares [`ReasonCode`] from one table of variant, byte and text, so the
/// three can never drift apart.
macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)+) => {
        /// An MQTT 5.0 reason code.
        ///
        /// Byte 0x00 has three names in the specification (Success, Normal
        /// disconnection, Granted QoS 0); the enum has one variant,
        /// [`ReasonCode::Success`], and the other names are associated
        /// constants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)+
        }

        impl ReasonCode {
            /// The reason code with this byte value, if there is one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$name),)+
                    _ => None,
                }
            }

            /// The specification's name for this code, in lower case.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)+
                }
            }
        }
    };
}

reason_codes! {
    /// Success; also Normal disconnection and Granted QoS 0.
    Success = 0x00, "success";
    /// Subscription granted with QoS 1.
    GrantedQoS1 = 0x01, "granted QoS 1";
    /// Subscription granted with QoS 2.
    GrantedQoS2 = 0x02, "granted QoS 2";
    /// Disconnect, and publish the will message.
    DisconnectWithWillMessage = 0x04, "disconnect with will message";
    /// Accepted, but nobody subscribes to the topic.
    NoMatchingSubscribers = 0x10, "no matching subscribers";
    /// Unsubscribe from a filter that had no subscription.
    NoSubscriptionExisted = 0x11, "no subscription existed";
    /// Continue the authentication exchange.
    ContinueAuthentication = 0x18, "continue authentication";
    /// Start a re-authentication.
    ReAuthenticate = 0x19, "re-authenticate";
    /// Failure without a more specific code.
    UnspecifiedError = 0x80, "unspecified error";
    /// The packet does not follow the specification's encoding.
    MalformedPacket = 0x81, "malformed packet";
    /// The packet is well formed but breaks a protocol rule.
    ProtocolError = 0x82, "protocol error";
    /// Valid, but refused by this implementation.
    ImplementationSpecificError = 0x83, "implementation specific error";
    /// The CONNECT protocol name or level is not supported.
    UnsupportedProtocolVersion = 0x84, "unsupported protocol version";
    /// The client identifier is not allowed.
    ClientIdentifierNotValid = 0x85, "client identifier not valid";
    /// Wrong user name or password.
    BadUserNameOrPassword = 0x86, "bad user name or password";
    /// The client may not do this.
    NotAuthorized = 0x87, "not authorized";
    /// The server cannot serve now.
    ServerUnavailable = 0x88, "server unavailable";
    /// The server is too busy; try later.
    ServerBusy = 0x89, "server busy";
    /// The client is banned.
    Banned = 0x8A, "banned";
    /// The server is shutting down.
    ServerShuttingDown = 0x8B, "server shutting down";
    /// The authentication method is not supported.
    BadAuthenticationMethod = 0x8C, "bad authentication method";
    /// No packet within 1.5 times the keep-alive.
    KeepAliveTimeout = 0x8D, "keep alive timeout";
    /// Another connection took this session over.
    SessionTakenOver = 0x8E, "session taken over";
    /// The topic filter is not valid or not accepted.
    TopicFilterInvalid = 0x8F, "topic filter invalid";
    /// The topic name is not valid or not accepted.
    TopicNameInvalid = 0x90, "topic name invalid";
    /// The packet identifier is already in use.
    PacketIdentifierInUse = 0x91, "packet identifier in use";
    /// The packet identifier is not known.
    PacketIdentifierNotFound = 0x92, "packet identifier not found";
    /// More unacknowledged QoS 1/2 publishes than Receive Maximum.
    ReceiveMaximumExceeded = 0x93, "receive maximum exceeded";
    /// The topic alias is 0, too large or unknown.
    TopicAliasInvalid = 0x94, "topic alias invalid";
    /// The packet exceeds the maximum packet size.
    PacketTooLarge = 0x95, "packet too large";
    /// The message rate is too high.
    MessageRateTooHigh = 0x96, "message rate too high";
    /// A quota was exceeded.
    QuotaExceeded = 0x97, "quota exceeded";
    /// Closed by an administrator.
    AdministrativeAction = 0x98, "administrative action";
    /// The payload does not match its payload format indicator.
    PayloadFormatInvalid = 0x99, "payload format invalid";
    /// Retained messages are not supported.
    RetainNotSupported = 0x9A, "retain not supported";
    /// The QoS is above the server's maximum.
    QoSNotSupported = 0x9B, "QoS not supported";
    /// Connect to another server, temporarily.
    UseAnotherServer = 0x9C, "use another server";
    /// Connect to another server, permanently.
    ServerMoved = 0x9D, "server moved";
    /// Shared subscriptions are not supported.
    SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported";
    /// Too many connection attempts.
    ConnectionRateExceeded = 0x9F, "connection rate exceeded";
    /// The maximum connection time was reached.
    MaximumConnectTime = 0xA0, "maximum connect time";
    /// Subscription identifiers are not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported";
    /// Wildcard subscriptions are not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported";
}

/// Reason codes each packet type may carry, from the tables of MQTT 5.0.
const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];
const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

impl ReasonCode {
    /// Byte 0x00 in a DISCONNECT.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// Byte 0x00 in a SUBACK.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The byte on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this code reports a failure (0x80 and above).
    pub const fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// The SUBACK code that grants `qos`.
    pub const fn granted(qos: QoS) -> Self {
        match qos {
            QoS::AtMostOnce => Self::Success,
            QoS::AtLeastOnce => Self::GrantedQoS1,
            QoS::ExactlyOnce => Self::GrantedQoS2,
        }
    }

    /// The QoS a SUBACK code grants, `None` for a failure.
    pub const fn granted_qos(self) -> Option<QoS> {
        match self {
            Self::Success => Some(QoS::AtMostOnce),
            Self::GrantedQoS1 => Some(QoS::AtLeastOnce),
            Self::GrantedQoS2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// Whether MQTT 5.0 allows this code in a packet of type `packet`.
    /// Packets without a reason code (CONNECT, PUBLISH, SUBSCRIBE, ...)
    /// allow none.
    pub fn is_valid_for(self, packet: PacketType) -> bool {
        let allowed = match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK,
            PacketType::PubRel | PacketType::PubComp => PUBREL,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => &[],
        };
        allowed.contains(&self.as_u8())
    }

    /// The MQTT 3.x CONNACK return code closest to this reason code.
    ///
    /// 3.x has six codes: 0 accepted, 1 unacceptable protocol version,
    /// 2 identifier rejected, 3 server unavailable, 4 bad user name or
    /// password, 5 not authorized. Failures without a closer match report
    /// "server unavailable".
    pub const fn v3_connack_code(self) -> u8 {
        match self {
            Self::Success => 0x00,
            Self::UnsupportedProtocolVersion => 0x01,
            Self::ClientIdentifierNotValid => 0x02,
            Self::BadUserNameOrPassword | Self::BadAuthenticationMethod => 0x04,
            Self::NotAuthorized | Self::Banned => 0x05,
            _ => 0x03,
        }
    }

    /// The reason code for an MQTT 3.x CONNACK return code, `None` for the
    /// reserved values 6-255.
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Success,
            0x01 => Self::UnsupportedProtocolVersion,
            0x02 => Self::ClientIdentifierNotValid,
            0x03 => Self::ServerUnavailable,
            0x04 => Self::BadUserNameOrPassword,
            0x05 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 3.x SUBACK return code: the granted QoS, or 0x80 for any
    /// failure.
    pub const fn v3_suback_code(self) -> u8 {
        match self.granted_qos() {
            Some(qos) => qos as u8,
            None => 0x80,
        }
    }

    /// The reason code for an MQTT 3.x SUBACK return code (0, 1, 2 or
    /// 0x80, which becomes [`ReasonCode::UnspecifiedError`]).
    pub const fn from_v3_suback(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Success,
            0x01 => Self::GrantedQoS1,
            0x02 => Self::GrantedQoS2,
            0x80 => Self::UnspecifiedError,
            _ => return None,
        })
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.description(), self.as_u8())
    }
}

impl From<ReasonCode> for u8 {
    fn from(code: ReasonCode) -> Self {
        code.as_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for byte in 0..=u8::MAX {
            if let Some(code) = ReasonCode::from_u8(byte) {
                assert_eq!(code.as_u8(), byte);
            }
        }
        assert_eq!(ReasonCode::from_u8(0x03), None);
    }

    #[test]
    fn v3_connack_mapping() {
        use ReasonCode as R;
        let cases = [
            (R::Success, 0),
            (R::UnsupportedProtocolVersion, 1),
            (R::ClientIdentifierNotValid, 2),
            (R::BadUserNameOrPassword, 4),
            (R::NotAuthorized, 5),
            (R::ServerUnavailable, 3),
            (R::ServerBusy, 3),
            (R::QuotaExceeded, 3),
            (R::ConnectionRateExceeded, 3),
        ];
        for (code, v3) in cases {
            assert_eq!(code.v3_connack_code(), v3, "{code}");
        }
        for v3 in 0..=5 {
            let code = R::from_v3_connack(v3).expect("defined return code");
            assert_eq!(code.v3_connack_code(), v3);
        }
        assert_eq!(R::from_v3_connack(6), None);
    }

    #[test]
    fn v3_suback_mapping() {
        assert_eq!(ReasonCode::GrantedQoS2.v3_suback_code(), 2);
        assert_eq!(ReasonCode::NotAuthorized.v3_suback_code(), 0x80);
        assert_eq!(ReasonCode::from_v3_suback(0x80), Some(ReasonCode::UnspecifiedError));
        assert_eq!(ReasonCode::from_v3_suback(3), None);
    }

    #[test]
    fn per_packet_sets() {
        assert!(ReasonCode::PacketIdentifierNotFound.is_valid_for(PacketType::PubRel));
        assert!(!ReasonCode::NotAuthorized.is_valid_for(PacketType::PubRel));
        assert!(ReasonCode::ContinueAuthentication.is_valid_for(PacketType::Auth));
        assert!(!ReasonCode::Success.is_valid_for(PacketType::Publish));
    }
}
