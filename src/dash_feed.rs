//! What feeds the dashboard's frames: the channel from the engine to the view (per-record
//! samples bounded and counted when dropped, changes of state never lost, both merged back into
//! the order they were emitted) and when the next frame is due (frame-rate slots while busy, the
//! next second when idle). No terminal here: `tui.rs` draws.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::app::Message;
use crate::engine::{EngineEvent, EventSink};

/// Capacity of the engine-to-view channel for per-record samples, in reports.
const SAMPLE_CAPACITY: usize = 256;

/// The dashboard's sink. Per-record samples (scoring reports, lag) go through a bounded channel
/// and what does not fit is counted, never blocked on; every other event is a change of state
/// (assignment, model, broker health, a stopped thread) and goes through an unbounded one, so it
/// always arrives.
/// Each event numbered as emitted, so the two channels are merged back into one order (a report
/// made before a model swap must not be applied after it).
pub struct ChannelSink {
    samples: mpsc::Sender<(u64, EngineEvent)>,
    changes: mpsc::UnboundedSender<(u64, EngineEvent)>,
    dropped: Arc<AtomicU64>,
    sequence: AtomicU64,
}

impl EventSink for ChannelSink {
    fn emit(&self, event: EngineEvent) {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        match event {
            EngineEvent::Scored(_) | EngineEvent::Lag(_) => {
                if self.samples.try_send((n, event)).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Fails only once the view is gone, when nobody is left to tell.
            change => {
                let _ = self.changes.send((n, change));
            }
        }
    }
}

/// The receiving ends of [`ChannelSink`], drained once per frame.
pub struct EngineEvents {
    samples: mpsc::Receiver<(u64, EngineEvent)>,
    changes: mpsc::UnboundedReceiver<(u64, EngineEvent)>,
    dropped: Arc<AtomicU64>,
    /// Taken off a channel by [`EngineEvents::arrival`], kept for the next drain.
    held: Vec<(u64, EngineEvent)>,
    /// Each channel's senders are all gone (the engine has stopped): nothing more will come.
    samples_closed: bool,
    changes_closed: bool,
}

impl EngineEvents {
    pub fn channel() -> (Arc<ChannelSink>, EngineEvents) {
        let (samples_tx, samples) = mpsc::channel(SAMPLE_CAPACITY);
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = ChannelSink {
            samples: samples_tx,
            changes: changes_tx,
            dropped: dropped.clone(),
            sequence: AtomicU64::new(0),
        };
        (
            Arc::new(sink),
            EngineEvents {
                samples,
                changes,
                dropped,
                held: Vec::new(),
                samples_closed: false,
                changes_closed: false,
            },
        )
    }

    /// Whether an event is held for the next drain.
    pub fn holds_any(&self) -> bool {
        !self.held.is_empty()
    }

    /// Waits until an event arrives, and holds it for the next drain; never ends once both
    /// channels are closed. Cancel-safe: an event taken is held before this returns.
    pub async fn arrival(&mut self) {
        loop {
            tokio::select! {
                event = self.changes.recv(), if !self.changes_closed => match event {
                    Some(event) => return self.held.push(event),
                    None => self.changes_closed = true,
                },
                event = self.samples.recv(), if !self.samples_closed => match event {
                    Some(event) => return self.held.push(event),
                    None => self.samples_closed = true,
                },
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// Every event waiting, as messages, in the order they were emitted.
    pub fn drain(&mut self, mut apply: impl FnMut(Message)) {
        let mut waiting = std::mem::take(&mut self.held);
        while let Ok(event) = self.changes.try_recv() {
            waiting.push(event);
        }
        while let Ok(event) = self.samples.try_recv() {
            waiting.push(event);
        }
        waiting.sort_unstable_by_key(|(n, _)| *n);
        for (_, event) in waiting {
            apply(Message::Engine(event));
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            apply(Message::Dropped(lost));
        }
    }
}

/// When the second after the one of `last_drawn_ms` (ms since `started`) begins.
pub fn next_second(started: Instant, last_drawn_ms: u64) -> Instant {
    started + Duration::from_millis((last_drawn_ms / 1000 + 1) * 1000)
}

/// The first frame slot (`slots` + k × `frame`) at or after `due`.
pub fn slot_from(slots: Instant, frame: Duration, due: Instant) -> Instant {
    let frame = frame.as_nanos().max(1);
    let since = due.saturating_duration_since(slots).as_nanos();
    u64::try_from(since.div_ceil(frame) * frame)
        .ok()
        .and_then(|slot| slots.checked_add(Duration::from_nanos(slot)))
        .unwrap_or(due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{BrokerHealth, ModelEvent, ScoreReport};

    #[test]
    fn state_changes_arrive_even_when_samples_overflow() {
        let (sink, mut events) = EngineEvents::channel();
        let report = ScoreReport {
            scored: 1,
            ..ScoreReport::default()
        };
        for _ in 0..SAMPLE_CAPACITY + 40 {
            sink.emit(EngineEvent::Scored(report.clone()));
        }
        sink.emit(EngineEvent::Assigned(vec![0, 2]));
        sink.emit(EngineEvent::Broker(BrokerHealth::Up));
        sink.emit(EngineEvent::Model(ModelEvent::Rejected("bad".into())));
        sink.emit(EngineEvent::Failed("gone".into()));
        let mut seen = Vec::new();
        events.drain(|m| seen.push(m));
        let state: Vec<&Message> = seen
            .iter()
            .filter(|m| !matches!(m, Message::Engine(EngineEvent::Scored(_))))
            .collect();
        assert_eq!(
            state,
            [
                &Message::Engine(EngineEvent::Assigned(vec![0, 2])),
                &Message::Engine(EngineEvent::Broker(BrokerHealth::Up)),
                &Message::Engine(EngineEvent::Model(ModelEvent::Rejected("bad".into()))),
                &Message::Engine(EngineEvent::Failed("gone".into())),
                &Message::Dropped(40),
            ]
        );
        assert_eq!(seen.len(), SAMPLE_CAPACITY + 5);
    }

    #[test]
    fn an_event_that_wakes_the_view_is_drained_in_order_and_a_stopped_engine_never_wakes_it() {
        use futures_util::FutureExt;
        let (sink, mut events) = EngineEvents::channel();
        let report = ScoreReport {
            scored: 1,
            ..ScoreReport::default()
        };
        sink.emit(EngineEvent::Assigned(vec![1]));
        sink.emit(EngineEvent::Scored(report.clone()));
        sink.emit(EngineEvent::Broker(BrokerHealth::Up));
        assert_eq!(events.arrival().now_or_never(), Some(()));
        assert!(events.holds_any());
        let mut seen = Vec::new();
        events.drain(|m| seen.push(m));
        assert_eq!(
            seen,
            [
                Message::Engine(EngineEvent::Assigned(vec![1])),
                Message::Engine(EngineEvent::Scored(report)),
                Message::Engine(EngineEvent::Broker(BrokerHealth::Up)),
            ]
        );
        assert!(!events.holds_any());
        drop(sink);
        assert_eq!(events.arrival().now_or_never(), None);
        assert!(!events.holds_any());
    }

    #[test]
    fn frames_fall_on_the_frame_rate_s_slots_and_an_idle_one_on_the_next_second() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let frame = ms(50);
        assert_eq!(slot_from(t0, frame, t0), t0);
        assert_eq!(slot_from(t0 + ms(10), frame, t0), t0 + ms(10));
        assert_eq!(slot_from(t0, frame, t0 + ms(1)), t0 + ms(50));
        assert_eq!(slot_from(t0, frame, t0 + ms(50)), t0 + ms(50));
        assert_eq!(slot_from(t0, frame, t0 + ms(1001)), t0 + ms(1050));
        assert_eq!(next_second(t0, 0), t0 + ms(1000));
        assert_eq!(next_second(t0, 1999), t0 + ms(2000));
        assert_eq!(next_second(t0, 2000), t0 + ms(3000));
    }
}
