//! newswatch: a news-monitoring alert daemon.
//!
//! Data flows one way: config and rules → fetch → parse → store (new items only) → match →
//! digest → deliver. `ARCHITECTURE.md` at the repository root maps the modules and their invariants.

pub mod alerts;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod digest;
pub mod digest_spec;
pub mod email_safety;
pub mod feed_health;
pub mod feed_text;
pub mod fetch;
pub mod health;
pub mod host_gate;
pub mod html;
pub mod identity;
pub mod lenient;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod netpolicy;
pub mod notify;
pub mod opml;
pub mod parse;
pub mod pipeline;
pub mod poll_policy;
pub mod rules;
pub mod schedule;
pub mod sniff;
pub mod status;
pub mod store;
