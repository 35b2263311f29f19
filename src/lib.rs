//! newswatch: a news-monitoring alert daemon.
//!
//! Data flows one way: config and rules → fetch → parse → store (new items only) → match →
//! digest → deliver. `ARCHITECTURE.md` at the repository root maps the modules and their invariants.

pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod deliver;
pub mod diagnostic;
pub mod digest;
pub mod fetch;
pub mod labels;
pub mod live;
pub mod model;
pub mod opml;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod rules;
pub mod service;
pub mod store;
pub mod units;
