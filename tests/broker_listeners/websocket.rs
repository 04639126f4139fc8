//! WebSocket listeners: `ws` and `wss`, the `mqtt` subprotocol, packets
//! split over frames and frames carrying several packets.

use std::num::NonZeroU16;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use skerry_codec::{decode_packet, Ack, Connect, Packet, QoS, ReasonCode, Subscribe, SubscriptionOptions};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::WAIT;
use skerry_tests::stream::qos1;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::tls::{tls_listener, tls_stream, Pki};
use super::{encoded, tcp_client, yaml, DEVICE_ACL, TCP_LISTENER, V5};

/// MQTT over a WebSocket client: binary frames out, packets decoded from
/// whatever frames come in.
struct WsClient<S> {
    ws: tokio_tungstenite::WebSocketStream<S>,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// The upgrade to `/mqtt` on `stream`, offering `protocol`.
    async fn open(stream: S, scheme: &str, protocol: Option<&str>) -> Result<WsClient<S>, String> {
        let mut request = format!("{scheme}://127.0.0.1/mqtt")
            .into_client_request()
            .expect("request");
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse().expect("header"));
        }
        let (ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqtt");
        Ok(WsClient {
            ws,
            buf: BytesMut::new(),
        })
    }

    async fn send_frame(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .expect("send frame");
    }

    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = decode_packet(&mut self.buf, V5, u32::MAX).expect("valid packet") {
                return Some(p);
            }
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
            {
                Some(Ok(Message::Binary(data))) => self.buf.extend_from_slice(&data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => {
                    assert!(
                        !matches!(other, Some(Ok(Message::Text(_)))),
                        "text frame from the broker"
                    );
                    return None;
                }
            }
        }
    }
}

#[tokio::test]
async fn websocket_listener_round_trips_a_publish() {
    let listeners =
        format!("        - name: ws\n          bind: 127.0.0.1:0\n          transport: ws\n          websocket_path: /mqtt\n{TCP_LISTENER}");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listeners), Path::new(".")).await;
    let tcp = || async { TcpStream::connect(broker.addr("ws")).await.expect("connect") };
    let refused = WsClient::open(tcp().await, "ws", None).await;
    assert!(refused.is_err(), "the `mqtt` subprotocol is required");

    let mut ws = WsClient::open(tcp().await, "ws", Some("mqtt")).await.expect("upgrade");
    // CONNECT split over two frames, then SUBSCRIBE and PINGREQ in one.
    let connect = encoded(&[Packet::Connect(Connect::new(V5, "ws-client"))]);
    ws.send_frame(&connect[..3]).await;
    ws.send_frame(&connect[3..]).await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success));
    let filters = vec![("ws/#".to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
    let sub = Packet::Subscribe(Subscribe {
        packet_id: NonZeroU16::MIN,
        filters,
        properties: Default::default(),
    });
    ws.send_frame(&encoded(&[sub, Packet::PingReq])).await;
    assert!(matches!(ws.recv().await, Some(Packet::SubAck(a)) if a.return_codes == [ReasonCode::GrantedQoS1]));
    assert_eq!(ws.recv().await, Some(Packet::PingResp));

    let (mut tcp, _) = tcp_client(broker.addr("tcp"), b"", "tcp-pub").await;
    assert_eq!(tcp.subscribe("tcp/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(tcp.publish("ws/in", "to ws").await, ReasonCode::Success);
    match ws.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!((p.topic.as_str(), &p.payload[..]), ("ws/in", &b"to ws"[..]));
            ws.send_frame(&encoded(&[Packet::PubAck(Ack::new(p.packet_id.expect("QoS 1")))]))
                .await;
        }
        other => panic!("expected PUBLISH over WebSocket, got {other:?}"),
    }
    ws.send_frame(&encoded(&[Packet::Publish(qos1("tcp/out", "from ws"))]))
        .await;
    assert!(matches!(ws.recv().await, Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success));
    assert_eq!(tcp.received().await, ("tcp/out".to_owned(), Bytes::from("from ws")));
    // MQTT travels in binary frames only; a text frame ends the connection.
    ws.ws.send(Message::text("PINGREQ")).await.expect("send text");
    assert_eq!(ws.recv().await, None, "closed after a text frame");
    broker.stop().await;
}

#[tokio::test]
async fn wss_with_an_optional_client_certificate() {
    let mut pki = Pki::new();
    let device = pki.client("dev-5");
    let listener = tls_listener(
        "wss",
        "            client_ca: ca/ca.crt\n            use_identity_as_username: true\n",
    )
    .replace("transport: tls", "transport: wss");
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &listener), pki.base()).await;
    let addr = broker.addr("wss");
    let tls = tls_stream(addr, b"", &pki.connector(Some(&device))).await.expect("TLS");
    let mut ws = WsClient::open(tls, "wss", Some("mqtt")).await.expect("upgrade");
    ws.send_frame(&encoded(&[Packet::Connect(Connect::new(V5, "wss-dev"))]))
        .await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success));
    ws.send_frame(&encoded(&[Packet::Publish(qos1("devices/dev-5/up", "hi"))]))
        .await;
    assert!(
        matches!(ws.recv().await, Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success),
        "CN is the username"
    );

    // No certificate is allowed here, but then nothing vouches for the client.
    let tls = tls_stream(addr, b"", &pki.connector(None))
        .await
        .expect("TLS without a certificate");
    let mut ws = WsClient::open(tls, "wss", Some("mqtt")).await.expect("upgrade");
    ws.send_frame(&encoded(&[Packet::Connect(Connect::new(V5, "wss-anon"))]))
        .await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::NotAuthorized));
    broker.stop().await;
}
