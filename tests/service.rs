//! Test binary for newswatch as a service, all on the built binary: the daemon under systemd's
//! protocol and signals, the operator edges (unit, `/metrics`, OPML, completions, packaging),
//! and survival (SIGKILL, mail-server faults, full/read-only/locked state, secrets).

#[path = "support/support.rs"]
mod support;

#[path = "service/browser.rs"]
mod browser;
#[path = "service/channel_cli.rs"]
mod channel_cli;
#[path = "service/channel_kill.rs"]
mod channel_kill;
#[path = "service/cluster.rs"]
mod cluster;
#[path = "service/cluster_hosts.rs"]
mod cluster_hosts;
#[path = "service/cluster_nodes.rs"]
mod cluster_nodes;
#[path = "service/cluster_restart.rs"]
mod cluster_restart;
#[path = "service/cluster_send.rs"]
mod cluster_send;
#[path = "service/console.rs"]
mod console;
#[path = "service/console_daemon.rs"]
mod console_daemon;
#[path = "service/console_labels.rs"]
mod console_labels;
#[path = "service/console_pg.rs"]
mod console_pg;
#[path = "service/daemon.rs"]
mod daemon;
#[path = "service/newcomer.rs"]
mod newcomer;
#[path = "service/operator.rs"]
mod operator;
#[path = "service/soak.rs"]
mod soak;
#[path = "service/state_faults.rs"]
mod state_faults;
#[path = "service/survive.rs"]
mod survive;
#[path = "service/systemd.rs"]
mod systemd;
#[path = "service/websub.rs"]
mod websub;
#[path = "service/websub_pg.rs"]
mod websub_pg;
#[path = "service/websub_real_hub.rs"]
mod websub_real_hub;
