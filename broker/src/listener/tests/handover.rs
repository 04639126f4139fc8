//! A `tcp` listener's `handover_socket`: a balancer in another process
//! passes client sockets over it (here the test plays the balancer, with
//! real sockets). The socket file's life, passed clients served as if
//! accepted and reported when they close, and what a broken balancer gets.

use std::io::IoSlice;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use skerry_codec::handover::{decode_closed, encode_pass};
use skerry_config::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_seqpacket::ancillary::AncillaryMessageWriter;
use tokio_seqpacket::UnixSeqpacket;

use super::{assert_closed, config, replays_then_reads_on, start, Running, PATIENCE};
use crate::listener::{ListenerError, MqttListener};

/// A listener taking passed clients at `dir/n.sock`.
fn passing(dir: &tempfile::TempDir) -> (Running, std::path::PathBuf) {
    let path = dir.path().join("n.sock");
    let mut cfg = config(Transport::Tcp);
    cfg.handover_socket = Some(path.clone());
    (start(&cfg), path)
}

/// Why a listener cannot take passed clients on `path`.
fn handover_bind_error(path: &std::path::Path) -> std::io::ErrorKind {
    let mut cfg = config(Transport::Tcp);
    cfg.handover_socket = Some(path.to_owned());
    match MqttListener::bind(&cfg) {
        Err(ListenerError::Handover { source, .. }) => source.kind(),
        other => panic!("a listener took passed clients on {}: {other:?}", path.display()),
    }
}

/// A connected TCP pair: the client's end and the end a balancer accepted.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (client, accepted)
}

/// Sends `msg` with `fd`, as the balancer does.
async fn send_with_fd(link: &UnixSeqpacket, msg: &[u8], fd: &TcpStream) {
    let mut cmsg = [0u8; 64];
    let mut ancillary = AncillaryMessageWriter::new(&mut cmsg);
    ancillary.add_fds(&[fd]).map_err(|_| "no room").unwrap();
    let sent = link
        .send_vectored_with_ancillary(&[IoSlice::new(msg)], &mut ancillary)
        .await
        .unwrap();
    assert_eq!(sent, msg.len());
}

/// The next closed-id message.
async fn closed_ids(link: &UnixSeqpacket) -> Vec<u64> {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, link.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    decode_closed(&buf[..n]).unwrap().collect()
}

#[tokio::test]
async fn a_passed_socket_is_served_as_accepted_and_its_close_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, path) = passing(&dir);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "only this user may pass clients"
    );

    let link = UnixSeqpacket::connect(&path).await.unwrap();
    let (mut client, balancer_end) = tcp_pair().await;
    let peer = "198.51.100.7:40001".parse().unwrap();
    send_with_fd(&link, &encode_pass(41, peer, b"CONNECT"), &balancer_end).await;
    // The balancer lets go of its copy; the node holds the socket now.
    drop(balancer_end);

    let mut accepted = running.next().await;
    assert_eq!(accepted.peer, peer);
    assert_eq!(accepted.local, running.addr);
    replays_then_reads_on(&mut client, &mut accepted).await;
    // The client's own socket, not a stream relayed through memory.
    assert!(accepted.stream.into_tcp().is_ok());
    // The connection is over once its permit goes.
    drop(accepted.permit);
    assert_eq!(closed_ids(&link).await, [41]);
    assert_closed(&mut client).await;
}

#[tokio::test]
async fn a_message_without_a_socket_is_reported_closed_and_garbage_cuts_the_balancer_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, path) = passing(&dir);
    let link = UnixSeqpacket::connect(&path).await.unwrap();
    link.send(&encode_pass(7, "10.0.0.1:1".parse().unwrap(), b""))
        .await
        .unwrap();
    assert_eq!(closed_ids(&link).await, [7]);

    let (_client, balancer_end) = tcp_pair().await;
    send_with_fd(&link, b"not a pass message", &balancer_end).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, link.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the node hangs up on a balancer it cannot understand");
    running.assert_no_connection(std::time::Duration::from_millis(50)).await;

    // Another balancer is still welcome, and the TCP side still accepts.
    let again = UnixSeqpacket::connect(&path).await.unwrap();
    let (_client, balancer_end) = tcp_pair().await;
    send_with_fd(
        &again,
        &encode_pass(8, "10.0.0.2:2".parse().unwrap(), b"x"),
        &balancer_end,
    )
    .await;
    assert_eq!(running.next().await.peer, "10.0.0.2:2".parse().unwrap());
    let _direct = TcpStream::connect(running.addr).await.unwrap();
    running.next().await;
}

#[tokio::test]
async fn a_live_handover_socket_is_not_taken_and_a_stale_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, path) = passing(&dir);
    assert_eq!(handover_bind_error(&path), std::io::ErrorKind::AddrInUse);
    running.stop.take().unwrap().send(()).unwrap();
    (&mut running.task).await.unwrap();
    assert!(!path.exists(), "a stopped listener removes its socket file");

    // A socket file nobody listens on, as a killed node leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (_running, path) = passing(&dir);
    assert!(UnixSeqpacket::connect(&path).await.is_ok());
}

#[tokio::test]
async fn a_cut_off_balancer_passes_no_more_but_hears_of_its_sessions_to_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, path) = passing(&dir);
    let link = UnixSeqpacket::connect(&path).await.unwrap();
    let (mut client, balancer_end) = tcp_pair().await;
    send_with_fd(
        &link,
        &encode_pass(1, "10.0.0.1:1".parse().unwrap(), b""),
        &balancer_end,
    )
    .await;
    drop(balancer_end);
    let mut accepted = running.next().await;

    let (_other, other_end) = tcp_pair().await;
    send_with_fd(&link, &[9; 40], &other_end).await;
    let cut_off = async {
        loop {
            let msg = encode_pass(2, "10.0.0.2:2".parse().unwrap(), b"");
            if link.send(&msg).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, cut_off)
        .await
        .expect("sends fail once cut off");
    running.assert_no_connection(std::time::Duration::from_millis(50)).await;

    // The session passed before the cut is still the node's; once it
    // ends, the link closes (reset, when passes the node never read were
    // left in its queue: their sockets close with it).
    client.write_all(b"still here").await.unwrap();
    let mut got = [0u8; 10];
    accepted.stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still here");
    drop(accepted);
    let mut buf = [0u8; 16];
    loop {
        match tokio::time::timeout(PATIENCE, link.recv(&mut buf))
            .await
            .expect("the link ends")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => assert_eq!(decode_closed(&buf[..n]).unwrap().collect::<Vec<_>>(), [1]),
        }
    }
    assert_closed(&mut client).await;
}

#[tokio::test]
async fn at_max_connections_a_passed_client_waits_its_handshake_time_then_is_reported_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.sock");
    let mut cfg = config(Transport::Tcp);
    cfg.handover_socket = Some(path.clone());
    // One place for the accept loop's next socket, one for a client.
    cfg.max_connections = std::num::NonZeroU32::new(2).unwrap();
    let mut running = start(&cfg);
    let link = UnixSeqpacket::connect(&path).await.unwrap();
    let (_first, first_end) = tcp_pair().await;
    send_with_fd(&link, &encode_pass(1, "10.0.0.1:1".parse().unwrap(), b""), &first_end).await;
    let first = running.next().await;

    let (mut second, second_end) = tcp_pair().await;
    send_with_fd(&link, &encode_pass(2, "10.0.0.2:2".parse().unwrap(), b""), &second_end).await;
    drop(second_end);
    // The handshake timeout of the test listener is 200 ms.
    assert_eq!(closed_ids(&link).await, [2]);
    assert_closed(&mut second).await;
    running.assert_no_connection(std::time::Duration::from_millis(20)).await;

    drop(first);
    assert_eq!(closed_ids(&link).await, [1]);
    let (_third, third_end) = tcp_pair().await;
    send_with_fd(&link, &encode_pass(3, "10.0.0.3:3".parse().unwrap(), b""), &third_end).await;
    assert_eq!(
        running.next().await.peer,
        "10.0.0.3:3".parse().unwrap(),
        "its place is free again"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    std::fs::write(&path, b"precious").unwrap();
    assert_eq!(handover_bind_error(&path), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}
