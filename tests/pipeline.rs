//! Test binary for the pipeline with real components: config loading, fetch against a
//! misbehaving loopback server, polling with injected time, hostile input and the email oracle,
//! and whole cycles over HTTP and SMTP.

#[path = "support/support.rs"]
mod support;

#[path = "pipeline/channels.rs"]
mod channels;
#[path = "pipeline/config.rs"]
mod config;
#[path = "pipeline/delivery.rs"]
mod delivery;
#[path = "pipeline/digest_reason.rs"]
mod digest_reason;
#[path = "pipeline/digest_selection.rs"]
mod digest_selection;
#[path = "pipeline/end_to_end.rs"]
mod end_to_end;
#[path = "pipeline/fetch.rs"]
mod fetch;
#[path = "pipeline/hostile.rs"]
mod hostile;
#[path = "pipeline/hostile_limits.rs"]
mod hostile_limits;
#[path = "pipeline/hostile_oracle.rs"]
mod hostile_oracle;
#[path = "pipeline/hostile_polls.rs"]
mod hostile_polls;
#[path = "pipeline/hostile_smtp.rs"]
mod hostile_smtp;
#[path = "pipeline/matrix.rs"]
mod matrix;
#[path = "pipeline/polling.rs"]
mod polling;
#[path = "pipeline/polling_store.rs"]
mod polling_store;
#[path = "pipeline/sources_full_text.rs"]
mod sources_full_text;
#[path = "pipeline/sources_lang.rs"]
mod sources_lang;
#[path = "pipeline/sources_request.rs"]
mod sources_request;
#[path = "pipeline/spikes.rs"]
mod spikes;
#[path = "pipeline/store_config.rs"]
mod store_config;
#[path = "pipeline/store_pg.rs"]
mod store_pg;
#[path = "pipeline/store_pg_writes.rs"]
mod store_pg_writes;
#[path = "pipeline/streaming.rs"]
mod streaming;

/// The stored matches no digest has carried (these tests configure none): what a digest composed
/// now would gather, read through a composition that is dropped uncommitted.
fn uncarried_matches(store: &mut newswatch::store::Store) -> Vec<newswatch::model::PendingMatch> {
    let mut tx = store.begin_compose().expect("begin");
    let rules: Vec<(String, String)> = tx
        .matched_rules()
        .expect("rules")
        .into_iter()
        .map(|r| (r.clone(), r))
        .collect();
    let batch = tx.gather_pending("any", &rules).expect("gather");
    tx.load_rows(&vec![usize::MAX; batch.groups.len()])
        .expect("rows")
}
