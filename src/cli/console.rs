//! `newswatch console`: the web console alone over a state directory (beside a running daemon or
//! without one), until SIGINT or SIGTERM; and `console passwd NAME`, which sets a user's argon2
//! hash in the users file from a password read on stdin.

use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Exit, load_config_read_only, load_rules, runtime};
use crate::console::{Console, Users, hash_password};

/// Serves the console of the config at `path` on `listen` (else `[console] listen`).
pub(super) fn serve(path: &Path, listen: Option<SocketAddr>) -> Exit {
    let config = match load_config_read_only(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let rules = match load_rules(&config.rule_files) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let addr = listen.unwrap_or(config.console.listen);
    let console = match Console::open(Arc::new(config), Arc::new(rules), addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let result = rt.block_on(async {
        let listener = crate::console::bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        println!("console: http://{local}/");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let signals = async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => {}
            }
            stop.cancel();
        };
        tokio::select! {
            r = crate::console::serve(listener, console, shutdown.clone()) => r,
            () = signals => Ok(()),
        }
    });
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Sets `user`'s password in the users file of the config at `path` (read from stdin, one line).
pub(super) fn passwd(path: &Path, user: &str) -> Exit {
    let config = match load_config_read_only(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let file = &config.console.users_file;
    let mut users = match Users::load(file) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    if std::io::stdin().is_terminal() {
        eprintln!("password for {user} (one line; it is shown as typed, pipe it to hide it):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return Exit::Failure;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        eprintln!("error: the password must have at least 8 characters");
        return Exit::Usage;
    }
    let result = hash_password(password).and_then(|h| users.set(file, user, h));
    match result {
        Ok(()) => {
            println!("{user}: password set in {}", file.display());
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
