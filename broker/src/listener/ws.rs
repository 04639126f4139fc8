//! MQTT over WebSocket (`ws`, `wss`): the HTTP upgrade, and [`WsStream`],
//! which turns the message stream back into the byte stream MQTT expects.
//!
//! MQTT over WebSocket (MQTT 5.0 section 6, 3.1.1 section 6) carries MQTT in
//! binary frames; a packet may span frames and a frame may carry several
//! packets, so the adapter hides frame boundaries entirely. The client must
//! offer the `mqtt` subprotocol and the server must select it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::error::HandshakeError;

/// The only subprotocol MQTT over WebSocket defines.
const SUBPROTOCOL: &str = "mqtt";
/// Room for a few small packets sharing a frame with a packet of the
/// largest allowed size.
const FRAME_SLACK: usize = 16 * 1024;
/// tungstenite's read and write buffers; its 128 KiB defaults would cost
/// gigabytes across a full listener of idle devices.
const BUFFER_SIZE: usize = 8 * 1024;

/// Answers the HTTP upgrade on `stream` if it asks for `path` with the
/// `mqtt` subprotocol; other requests get a 404 or 400 and fail.
// The large error is the HTTP refusal tungstenite's `Callback` returns.
#[allow(clippy::result_large_err)]
pub(super) async fn upgrade<S>(stream: S, path: &str, max_packet_size: u32) -> Result<WsStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = usize::try_from(max_packet_size)
        .unwrap_or(usize::MAX)
        .saturating_add(FRAME_SLACK);
    let config = WebSocketConfig::default()
        .read_buffer_size(BUFFER_SIZE)
        .write_buffer_size(BUFFER_SIZE)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let callback = |request: &Request, response: Response| check_request(path, request, response);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream {
        ws,
        pending: Bytes::new(),
    })
}

/// Accepts only `path`, and only with `mqtt` among the offered subprotocols.
#[allow(clippy::result_large_err)]
fn check_request(path: &str, request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != path {
        return Err(refusal(StatusCode::NOT_FOUND, "no MQTT endpoint at this path"));
    }
    let offers_mqtt = request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim() == SUBPROTOCOL);
    if !offers_mqtt {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "the `mqtt` WebSocket subprotocol is required",
        ));
    }
    response
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    Ok(response)
}

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// A WebSocket connection seen as a byte stream: binary frames in and out,
/// pings answered, text frames refused, a close frame read as end of stream.
#[derive(Debug)]
pub(super) struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary frame.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> super::Io for WsStream<S> {
    fn into_tcp(self: Box<Self>) -> Result<tokio::net::TcpStream, super::BoxedStream> {
        Err(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        while this.pending.is_empty() {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame on an MQTT WebSocket",
                    )))
                }
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let ws = &mut self.ws;
        ready!(Pin::new(&mut *ws).poll_ready(cx)).map_err(to_io)?;
        let message = Message::Binary(Bytes::copy_from_slice(buf));
        Pin::new(ws).start_send(message).map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.ws).poll_close(cx)).map_err(to_io)?;
        Pin::new(self.ws.get_mut()).poll_shutdown(cx)
    }
}

fn to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, protocols: &[&str]) -> Request {
        let mut builder = Request::builder().uri(path);
        for p in protocols {
            builder = builder.header(SEC_WEBSOCKET_PROTOCOL, *p);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn mqtt_subprotocol_is_selected() {
        let response = check_request("/mqtt", &request("/mqtt", &["mqttv3.1, mqtt"]), Response::new(())).unwrap();
        assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "mqtt");
        let response = check_request("/mqtt", &request("/mqtt?x=1", &["foo", "mqtt"]), Response::new(())).unwrap();
        assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "mqtt");
    }

    #[test]
    fn other_subprotocols_and_paths_are_refused() {
        let refused = check_request("/mqtt", &request("/mqtt", &["mqttv3.1"]), Response::new(())).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let refused = check_request("/mqtt", &request("/mqtt", &[]), Response::new(())).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let refused = check_request("/mqtt", &request("/other", &["mqtt"]), Response::new(())).unwrap_err();
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }
}
