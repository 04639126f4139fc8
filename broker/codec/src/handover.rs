//! The messages of a socket handover between `skerry lb` and a broker node
//! in another process on the same host, over a Unix `SOCK_SEQPACKET`
//! socket (one message per packet, never split or merged).
//!
//! - Balancer to node, one per client, with the client's TCP socket as
//!   `SCM_RIGHTS`: [`encode_pass`] / [`decode_pass`]. Version byte, the
//!   balancer's id for the session, the client's address, then the bytes
//!   the node reads first (the PROXY header the pool sends, if any, then
//!   the client's CONNECT and whatever followed it).
//! - Node to balancer, when handed-over connections close:
//!   [`encode_closed`] / [`decode_closed`], the ids, eight bytes each.
//!
//! Integers are little-endian: both ends are on one host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version byte of a pass message.
pub const HANDOVER_VERSION: u8 = 1;

/// Bytes before the first bytes: version, id, address family, IP, port.
pub const PASS_HEADER_LEN: usize = 1 + 8 + 1 + 16 + 2;

const V4: u8 = 4;
const V6: u8 = 6;

/// One client passed to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass<'a> {
    /// The balancer's id for the session, echoed when it closes.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// What the node reads before the socket.
    pub first_bytes: &'a [u8],
}

/// A handover message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// Shorter than its fixed part.
    #[error("handover message of {0} bytes is too short")]
    Short(usize),
    /// A version this build does not speak.
    #[error("handover message version {0} (this node speaks {HANDOVER_VERSION})")]
    Version(u8),
    /// An address family other than 4 and 6.
    #[error("handover message with address family {0}")]
    Family(u8),
    /// A list of ids whose length is not a multiple of eight.
    #[error("closed-id message of {0} bytes (expected a multiple of 8)")]
    Ids(usize),
}

/// Whether the process at the other end of a handover socket, running as
/// `peer_uid`, may be trusted by one running as `own_uid`: the same user,
/// or root. Both ends check (`SO_PEERCRED`): the node, that no other user
/// passes it clients; the balancer, that no other user receives them.
pub fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

/// The message passing one client; its socket goes alongside.
pub fn encode_pass(id: u64, peer: SocketAddr, first_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PASS_HEADER_LEN + first_bytes.len());
    out.push(HANDOVER_VERSION);
    out.extend_from_slice(&id.to_le_bytes());
    let (family, ip) = match peer.ip() {
        IpAddr::V4(ip) => (V4, ip.to_ipv6_mapped().octets()),
        IpAddr::V6(ip) => (V6, ip.octets()),
    };
    out.push(family);
    out.extend_from_slice(&ip);
    out.extend_from_slice(&peer.port().to_le_bytes());
    out.extend_from_slice(first_bytes);
    out
}

/// Reads a pass message.
pub fn decode_pass(msg: &[u8]) -> Result<Pass<'_>, HandoverError> {
    let Some((head, first_bytes)) = msg.split_first_chunk::<PASS_HEADER_LEN>() else {
        return Err(HandoverError::Short(msg.len()));
    };
    if head[0] != HANDOVER_VERSION {
        return Err(HandoverError::Version(head[0]));
    }
    let id = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
    let octets: [u8; 16] = head[10..26].try_into().expect("16 bytes");
    let ip = match head[9] {
        V4 => IpAddr::V4(Ipv6Addr::from(octets).to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        V6 => IpAddr::V6(Ipv6Addr::from(octets)),
        other => return Err(HandoverError::Family(other)),
    };
    let port = u16::from_le_bytes([head[26], head[27]]);
    Ok(Pass {
        id,
        peer: SocketAddr::new(ip, port),
        first_bytes,
    })
}

/// The message telling the balancer that these sessions closed.
pub fn encode_closed(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// The ids of a closed-id message.
pub fn decode_closed(msg: &[u8]) -> Result<impl Iterator<Item = u64> + '_, HandoverError> {
    if !msg.len().is_multiple_of(8) {
        return Err(HandoverError::Ids(msg.len()));
    }
    Ok(msg
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_reads_back_for_both_families() {
        for peer in ["10.1.2.3:40000", "[2001:db8::7]:1883", "[::ffff:10.0.0.1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let msg = encode_pass(u64::MAX - 5, peer, b"\x10\x0fMQTT");
            assert_eq!(msg.len(), PASS_HEADER_LEN + 6);
            let pass = decode_pass(&msg).unwrap();
            assert_eq!(pass.id, u64::MAX - 5);
            assert_eq!(pass.peer, peer);
            assert_eq!(pass.first_bytes, b"\x10\x0fMQTT");
        }
    }

    #[test]
    fn bad_pass_messages_are_errors() {
        let peer: SocketAddr = "10.1.2.3:1".parse().unwrap();
        let good = encode_pass(1, peer, b"");
        assert_eq!(decode_pass(&good[..PASS_HEADER_LEN - 1]), Err(HandoverError::Short(27)));
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(decode_pass(&version), Err(HandoverError::Version(2)));
        let mut family = good;
        family[9] = 5;
        assert_eq!(decode_pass(&family), Err(HandoverError::Family(5)));
    }

    #[test]
    fn only_the_same_user_or_root_is_trusted() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(1000, 0), "root trusts only root");
    }

    #[test]
    fn closed_ids_read_back_and_a_torn_list_is_an_error() {
        let msg = encode_closed(&[7, 0, u64::MAX]);
        assert_eq!(decode_closed(&msg).unwrap().collect::<Vec<_>>(), [7, 0, u64::MAX]);
        assert_eq!(decode_closed(&msg[..9]).err(), Some(HandoverError::Ids(9)));
        assert_eq!(decode_closed(&[]).unwrap().count(), 0);
    }
}
