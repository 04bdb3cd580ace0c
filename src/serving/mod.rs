//! Serving: the scoring loop and everything it owns on the way from an input record to an
//! acknowledged prediction and a committed offset, and the synthetic producer that feeds it.
//!
//! - [`scorer`] runs the loop on its thread; [`scoring`] scores one record with no broker.
//! - [`scorer_setup`] holds the scorer's configuration and builds its clients from it.
//! - [`scorer_records`] handles one record: its prediction or dead letter, to the producer;
//!   [`dead_letters`] cuts a dead letter to what its topic takes.
//! - [`scorer_report`] counts what the scorer does and reports it to the sink;
//!   [`scorer_stop`] stops it within one deadline: the shutdown commit, leaving the group.
//! - [`offsets`] tracks predictions until they are acknowledged and says which input offsets may
//!   be committed; [`transactions`] does the same inside Kafka transactions (exactly-once),
//!   each call into librdkafka bounded by [`call_watch`].
//! - [`group`] serves the consumer group's rebalances; [`probe`] watches the broker's health.
//! - [`slots`] holds the serving model and the challenger; [`backtest`] scores a window of history.
//! - [`producer`] is the synthetic producer behind `p` and `salary-stream produce`;
//!   [`synthetic`] draws any model's events for it.
//!
//! It uses [`crate::kafka`], [`crate::formats`], [`crate::model`] and [`crate::observe`], and
//! reports through [`crate::engine`]'s sinks; nothing here draws or knows the terminal.

pub mod backtest;
pub mod call_watch;
pub mod dead_letters;
pub mod group;
pub mod offsets;
pub mod probe;
pub mod producer;
mod producer_acks;
pub mod scorer;
pub mod scorer_records;
pub mod scorer_report;
pub mod scorer_setup;
pub mod scorer_stop;
pub mod scoring;
pub mod slots;
pub mod synthetic;
pub mod transactions;
