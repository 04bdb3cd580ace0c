//! salary-stream: live machine-learning predictions on Apache Kafka, in a terminal.
//!
//! The [`engine`] consumes, scores and publishes without any terminal code; [`app`] holds the
//! dashboard's state and [`ui`] draws it; [`headless`] runs the same engine without a view.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod backtest;
pub mod cli;
pub mod dash_feed;
pub mod engine;
pub mod formats;
pub mod headless;
pub mod kafka;
pub mod model;
pub mod observe;
pub mod runtime;
pub mod serving;
pub mod tui;
pub mod ui;
