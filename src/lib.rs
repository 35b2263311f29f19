//! newswatch: a news-monitoring alert daemon.
//!
//! Data flows one way: config and rules → fetch → parse → store (new items only) → match →
//! digest → deliver. `ARCHITECTURE.md` at the repository root maps the modules and their invariants.

pub mod article;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod health;
pub mod html;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod opml;
pub mod parse;
pub mod pipeline;
pub mod rules;
