//! Test binary for the pipeline with real components: config loading, fetch against a
//! misbehaving loopback server, polling with injected time, hostile input and the email oracle,
//! the rendered digest's snapshots, and whole cycles over HTTP and SMTP.

#[path = "support/support.rs"]
mod support;

#[path = "pipeline/config.rs"]
mod config;
#[path = "pipeline/delivery.rs"]
mod delivery;
#[path = "pipeline/end_to_end.rs"]
mod end_to_end;
#[path = "pipeline/fetch.rs"]
mod fetch;
#[path = "pipeline/hostile.rs"]
mod hostile;
#[path = "pipeline/hostile_oracle.rs"]
mod hostile_oracle;
#[path = "pipeline/polling.rs"]
mod polling;
#[path = "pipeline/polling_store.rs"]
mod polling_store;
#[path = "pipeline/render.rs"]
mod render;
