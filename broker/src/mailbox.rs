//! The mailbox of an attached connection: deliveries from the publish path,
//! bounded by `max_online_messages`, and commands from the node (takeover,
//! operator disconnect).
//!
//! It takes the place of a bounded and an unbounded channel, for memory:
//! a tokio channel allocates a block of 32 slots up front, about 3.6 KB per
//! connection for the pair, where an idle mailbox holds no buffer at all
//! (about 170 bytes in all). The connection empties it in batches, and a
//! queue that grew under a burst is given back once drained.
//!
//! Wake-ups: the connection is woken when the delivery queue turns
//! non-empty, on every command and when the node shuts down; it takes what
//! is there at the start of each turn, so a wake-up is never needed twice.
//! The connection waits by polling ([`Mailbox::poll_arrived`]), with its
//! waker kept here: an idle connection's task holds no waiting future for
//! its mailbox. Publishers waiting for room are woken when the connection
//! takes from a full queue, and when it closes.

use std::collections::VecDeque;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use crate::message::Delivery;
use crate::session::Control;

/// A drained queue with more room than this gives its buffer back.
const SHRINK_ABOVE: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Mailbox {
    mail: Mutex<Mail>,
    /// Wakes publishers waiting for room.
    room: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Mail {
    deliveries: VecDeque<Delivery>,
    /// Boxed: commands are rare, and this is in every connection.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in every connection instead of 24; rarely used"
    )]
    commands: Option<Box<Vec<Control>>>,
    closed: bool,
    /// Something arrived since the connection last looked.
    arrived: bool,
    /// The connection's waker while it waits.
    waker: Option<Waker>,
}

/// Marks that something arrived and wakes the waiting connection, outside
/// the lock.
fn wake(mut mail: MutexGuard<'_, Mail>) {
    mail.arrived = true;
    let waker = mail.waker.take();
    drop(mail);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Why a delivery was not posted; it comes back.
#[derive(Debug)]
pub(crate) enum PostError {
    /// `max_online_messages` are waiting already.
    Full(Delivery),
    /// The connection is ending.
    Closed(Delivery),
}

impl Mailbox {
    /// An empty mailbox for at most `capacity` deliveries (at least one).
    pub(crate) fn new(capacity: usize) -> Mailbox {
        Mailbox {
            mail: Mutex::default(),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Posts `d` if there is room.
    pub(crate) fn try_post(&self, d: Delivery) -> Result<(), PostError> {
        let mut mail = self.mail.lock();
        if mail.closed {
            return Err(PostError::Closed(d));
        }
        if mail.deliveries.len() >= self.capacity {
            return Err(PostError::Full(d));
        }
        let was_empty = mail.deliveries.is_empty();
        mail.deliveries.push_back(d);
        if was_empty {
            wake(mail);
        }
        Ok(())
    }

    /// Posts `d`, waiting for room as long as it takes (bound the wait with
    /// a timeout); gives it back if the connection closes first.
    pub(crate) async fn post(&self, mut d: Delivery) -> Result<(), Delivery> {
        loop {
            // Registered before looking, so a wake-up between the look and
            // the wait is not missed.
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            match self.try_post(d) {
                Ok(()) => return Ok(()),
                Err(PostError::Closed(back)) => return Err(back),
                Err(PostError::Full(back)) => d = back,
            }
            room.await;
        }
    }

    /// Queues a command for the connection; `false` once it is closing.
    pub(crate) fn command(&self, c: Control) -> bool {
        let mut mail = self.mail.lock();
        if mail.closed {
            return false;
        }
        mail.commands.get_or_insert_with(Box::default).push(c);
        wake(mail);
        true
    }

    /// Wakes the connection without a command (the node is shutting down).
    pub(crate) fn wake(&self) {
        wake(self.mail.lock());
    }

    /// Ready when something may have arrived since the last time it was;
    /// otherwise the connection is woken when something does.
    pub(crate) fn poll_arrived(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut mail = self.mail.lock();
        if std::mem::take(&mut mail.arrived) {
            return Poll::Ready(());
        }
        match &mut mail.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Deliveries waiting.
    pub(crate) fn len(&self) -> usize {
        self.mail.lock().deliveries.len()
    }

    /// The oldest command, if any.
    pub(crate) fn take_command(&self) -> Option<Control> {
        let mut mail = self.mail.lock();
        let commands = mail.commands.as_mut()?;
        let first = commands.remove(0);
        if commands.is_empty() {
            mail.commands = None;
        }
        Some(first)
    }

    /// Moves up to `max` deliveries, oldest first, to the end of `into`.
    pub(crate) fn take_deliveries(&self, into: &mut VecDeque<Delivery>, max: usize) {
        let mut mail = self.mail.lock();
        let was_full = mail.deliveries.len() >= self.capacity;
        let n = mail.deliveries.len().min(max);
        into.extend(mail.deliveries.drain(..n));
        if mail.deliveries.is_empty() && mail.deliveries.capacity() > SHRINK_ABOVE {
            mail.deliveries = VecDeque::new();
        }
        drop(mail);
        if was_full && n > 0 {
            self.room.notify_waiters();
        }
    }

    /// Closes the mailbox: later posts and commands fail, waiting
    /// publishers are told. Returns the deliveries not taken; commands stay
    /// for [`Mailbox::take_command`].
    pub(crate) fn close(&self) -> VecDeque<Delivery> {
        let mut mail = self.mail.lock();
        mail.closed = true;
        let left = std::mem::take(&mut mail.deliveries);
        drop(mail);
        self.room.notify_waiters();
        left
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use skerry_codec::QoS;

    use super::*;
    use crate::message::Message;

    fn delivery(n: u8) -> Delivery {
        let msg = Arc::new(Message::new(
            skerry_codec::ByteStr::from("t"),
            bytes::Bytes::from(vec![n]),
            QoS::AtLeastOnce,
            false,
            skerry_codec::PublishProperties::default(),
            None,
        ));
        Delivery {
            msg,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            stored: None,
        }
    }

    fn payload(d: &Delivery) -> u8 {
        d.msg.payload[0]
    }

    #[tokio::test]
    async fn bounded_in_order_and_closed_mailboxes_give_back() {
        let mb = Mailbox::new(2);
        mb.try_post(delivery(1)).unwrap();
        mb.try_post(delivery(2)).unwrap();
        assert!(matches!(mb.try_post(delivery(3)), Err(PostError::Full(d)) if payload(&d) == 3));
        let mut got = VecDeque::new();
        mb.take_deliveries(&mut got, 1);
        assert_eq!(got.iter().map(payload).collect::<Vec<_>>(), [1]);
        mb.try_post(delivery(3)).unwrap();
        let left = mb.close();
        assert_eq!(left.iter().map(payload).collect::<Vec<_>>(), [2, 3]);
        assert!(matches!(mb.try_post(delivery(4)), Err(PostError::Closed(_))));
        assert!(!mb.command(Control::Disconnect(skerry_codec::ReasonCode::AdministrativeAction)));
    }

    #[tokio::test]
    async fn a_waiting_publisher_gets_room_or_its_delivery_back() {
        let mb = Arc::new(Mailbox::new(1));
        mb.try_post(delivery(1)).unwrap();
        let waiting = tokio::spawn({
            let mb = Arc::clone(&mb);
            async move { mb.post(delivery(2)).await.map_err(|d| payload(&d)) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "full: the publisher waits");
        let mut got = VecDeque::new();
        mb.take_deliveries(&mut got, 10);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        mb.take_deliveries(&mut got, 10);
        assert_eq!(got.iter().map(payload).collect::<Vec<_>>(), [1, 2]);

        mb.try_post(delivery(3)).unwrap();
        let refused = tokio::spawn({
            let mb = Arc::clone(&mb);
            async move { mb.post(delivery(4)).await.map_err(|d| payload(&d)) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = mb.close();
        assert_eq!(refused.await.unwrap(), Err(4), "closed: the delivery comes back");
    }

    /// Waits for `poll_arrived` in a task of its own, as the connection does.
    async fn woken_within(mb: &Arc<Mailbox>, wait: Duration, act: impl FnOnce(&Mailbox)) -> bool {
        let mut waiter = tokio::spawn({
            let mb = Arc::clone(mb);
            async move { std::future::poll_fn(|cx| mb.poll_arrived(cx)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        act(mb);
        let woken = tokio::time::timeout(wait, &mut waiter).await.is_ok();
        waiter.abort();
        woken
    }

    #[tokio::test]
    async fn the_connection_is_woken_by_a_first_delivery_by_commands_and_by_shutdown() {
        let mb = Arc::new(Mailbox::new(8));
        let quiet = Duration::from_millis(100);
        let soon = Duration::from_secs(5);
        assert!(!woken_within(&mb, quiet, |_| {}).await, "nothing arrived: it waits");
        assert!(woken_within(&mb, soon, |mb| mb.try_post(delivery(1)).unwrap()).await);
        assert!(
            !woken_within(&mb, quiet, |mb| mb.try_post(delivery(2)).unwrap()).await,
            "a queue that was not empty wakes nobody: the connection takes it all at its next turn"
        );
        let mut got = VecDeque::new();
        mb.take_deliveries(&mut got, 10);
        assert!(woken_within(&mb, soon, |mb| mb.try_post(delivery(3)).unwrap()).await);
        assert!(
            woken_within(&mb, soon, |mb| {
                assert!(mb.command(Control::Disconnect(skerry_codec::ReasonCode::AdministrativeAction)));
            })
            .await
        );
        assert!(matches!(mb.take_command(), Some(Control::Disconnect(_))));
        assert!(mb.take_command().is_none());
        assert!(woken_within(&mb, soon, Mailbox::wake).await);
        mb.wake();
        assert!(
            woken_within(&mb, soon, |_| {}).await,
            "a wake-up before the wait is kept for it"
        );
    }
}
