//! The pure "when" policies: when a feed is next due (`poll`), when a feed counts as failing,
//! silent or recovered (`feed_health`), when a digest's schedule fires (`schedule`), and when a
//! rule's matches surge (`spike`).
//! Each takes `now` and its inputs as arguments: no IO, no clock, no store.

pub mod feed_health;
pub mod poll;
pub mod schedule;
pub mod spike;
