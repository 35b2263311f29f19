//! The channel commands as an operator meets them, on the built binary: `channels test` against
//! a loopback receiver (accepted, refused, unknown name), `status` listing each channel without
//! its URL's secret path, and config errors that name the channel but never the secret.

use std::path::{Path, PathBuf};

use crate::support::bin::command;
use crate::support::receiver::{Fault, Receiver, Service};

/// A config with the channels `tables` and a digest to `channel:hook`.
fn config(dir: &Path, tables: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(
        dir.join("rules/r.toml"),
        "[[rule]]\nid = \"r\"\nquery = \"Hegseth\"\n",
    )
    .expect("rules");
    let path = dir.join("newswatch.toml");
    std::fs::write(
        &path,
        format!(
            r#"
state_dir = "state"
rules = ["rules/*.toml"]

[delivery]
method = "file"
dir = "outbox"
from = "newswatch <newswatch@example.org>"

{tables}

[[digest]]
name = "desk"
to = ["channel:hook"]
"#
        ),
    )
    .expect("config");
    path
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run newswatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn channels_test_sends_one_message_and_reports_what_the_service_said() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start();
    rx.serve("/hook/SECRETPATH", Service::Webhook(Some("k".into())));
    rx.serve("/refuse/SECRETPATH", Service::Webhook(None));
    rx.faults("/refuse/SECRETPATH", &[Fault::Status(400)]);
    let tables = format!(
        "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"NW_HOOK_URL\"\nsecret_env = \"NW_HOOK_SECRET\"\n\n\
         [[channel]]\nname = \"refuse\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url("/refuse/SECRETPATH")
    );
    let cfg = config(tmp.path(), &tables);
    let cfg = cfg.to_str().expect("utf-8 path");
    let hook_url = rx.url("/hook/SECRETPATH");
    let env = [("NW_HOOK_URL", hook_url.as_str()), ("NW_HOOK_SECRET", "k")];

    let (code, out, err) = run(&["channels", "test", "hook", "--config", cfg], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("sent a test message through webhook hook"),
        "{out}"
    );
    let got = rx.processed("/hook/SECRETPATH");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"], "test");

    let (code, out, err) = run(&["channels", "test", "refuse", "--config", cfg], &env);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused the test message: HTTP 400"), "{err}");
    assert!(!err.contains("SECRETPATH"), "no URL path in errors: {err}");

    let (code, _, err) = run(&["channels", "test", "nope", "--config", cfg], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("configured: hook, refuse"), "{err}");

    // `status` before any run: each channel, its kind and host, no path.
    let (code, out, err) = run(&["status", "--config", cfg], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("channel hook (webhook http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("0 queued, 0 sent, 0 failed"), "{out}");
    assert!(!out.contains("SECRETPATH"), "{out}");
    let (_, json, _) = run(&["status", "--config", cfg, "--json"], &env);
    let v: serde_json::Value = serde_json::from_str(&json).expect("status JSON");
    assert_eq!(v["channels"][1]["name"], "refuse");
}

#[test]
fn channel_config_errors_name_the_channel_and_never_the_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // (tables, environment, what the error must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 6] = [
        (
            "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"NW_URL\"\n",
            &[("NW_URL", "not a url SECRETTOKEN")],
            "channel \"hook\": the url is not an http(s) URL with a host",
        ),
        (
            "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://h.example/x\"\nsecret_env = \"NW_UNSET_SECRET\"\n",
            &[],
            "channel \"hook\": environment variable NW_UNSET_SECRET is not set or empty (it should hold the HMAC secret)",
        ),
        (
            "[[channel]]\nname = \"hook\"\nkind = \"pager\"\nurl = \"https://h.example/x\"\n",
            &[],
            "channel \"hook\": unknown kind \"pager\": expected one of webhook, slack",
        ),
        (
            "[[channel]]\nname = \"hook\"\nkind = \"matrix\"\nurl = \"https://m.example\"\n",
            &[],
            "channel \"hook\" of kind matrix: needs `room`",
        ),
        (
            "[[channel]]\nname = \"hook\"\nkind = \"slack\"\nurl = \"https://h.example/x\"\nroom = \"!r:m\"\n",
            &[],
            "channel \"hook\": `room` does not apply to kind slack",
        ),
        (
            "[[channel]]\nname = \"other\"\nkind = \"slack\"\nurl = \"https://h.example/x\"\n",
            &[],
            "digest `to` names unknown channel \"hook\" (configured channels: other)",
        ),
    ];
    for (tables, env, want) in cases {
        let cfg = config(tmp.path(), tables);
        let (code, out, err) = run(&["check", "--config", cfg.to_str().expect("utf-8")], env);
        assert_eq!(code, 3, "{tables}\n{out}{err}");
        assert!(err.contains(want), "{tables}\nwant {want:?} in:\n{err}");
        assert!(
            err.contains("newswatch.toml:"),
            "names the file and line: {err}"
        );
        assert!(!err.contains("SECRETTOKEN"), "{err}");
    }
}
