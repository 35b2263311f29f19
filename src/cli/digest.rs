//! `newswatch digest preview|send`: render a digest from stored matches into files (sends and
//! consumes nothing), or compose it now whatever its schedule and deliver it (holding the
//! instance lock, so never beside a running daemon).
//! The pipeline does the work; this prints what it did.

use super::{DigestCommand, Exit, load_config, load_config_read_only, load_rules, runtime};
use crate::service::lock::InstanceLock;

pub(super) fn digest(action: DigestCommand) -> Exit {
    let config_path = match &action {
        DigestCommand::Preview { config, .. } | DigestCommand::Send { config, .. } => config,
    };
    // A preview reads only: it must work without the delivery secrets.
    let loaded = match &action {
        DigestCommand::Preview { .. } => load_config_read_only(config_path),
        DigestCommand::Send { .. } => load_config(config_path),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return e,
    };
    let rules = match load_rules(&config.rule_files) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let result = runtime.block_on(async {
        // Sending composes and delivers: never beside a daemon (or another send) on the same
        // state directory, which could deliver its in-flight message a second time. A preview
        // only reads what is stored.
        let _lock = match &action {
            DigestCommand::Send { .. } => Some(InstanceLock::acquire(&config.state_dir)?),
            DigestCommand::Preview { .. } => None,
        };
        let pipeline = crate::pipeline::Pipeline::open(&config, &rules).await?;
        let now = crate::clock::now();
        match action {
            DigestCommand::Preview {
                name, since, out, ..
            } => {
                let r = pipeline.preview_digest(&name, since, now).await?;
                std::fs::write(&out, &r.html)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
                let text_path = out.with_extension("txt");
                std::fs::write(&text_path, &r.text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", text_path.display()))?;
                outln!(
                    "subject: {}
{} stories shown, {} more articles; HTML {:.1} KB in {}, text in {}",
                    r.subject,
                    r.shown,
                    r.more,
                    r.html.len() as f64 / 1024.0,
                    out.display(),
                    text_path.display()
                );
                Ok(())
            }
            DigestCommand::Send { name, .. } => {
                let summary = pipeline.send_digest_now(&name, now).await?;
                outln!("{summary}");
                Ok::<(), anyhow::Error>(())
            }
        }
    });
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}
