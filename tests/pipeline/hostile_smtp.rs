//! The SMTP client against a hostile mail server (issue 16): a scripted loopback server answers
//! each step of the exchange with a proptest-chosen reply (the expected one, multi-line, a 4xx,
//! a 5xx, garbage, silence, a closed connection), and `deliver` must classify every script
//! without a panic, call a message sent exactly when the server answered 2xx to its final dot,
//! and give a message up for good only on a 5xx. `scripts/fuzz` runs `fuzz_smtp_replies` longer.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use newswatch::config::{Delivery, DeliveryMethod, Security, SmtpSettings};
use newswatch::deliver::{Deliverer, SendOutcome};
use newswatch::model::{OutboxMessage, OutboxStatus};
use proptest::prelude::*;

use crate::hostile::fuzz;

/// The steps of one exchange, in order; each gets one reply from the script.
/// (the command that starts the step, the code that lets the exchange go on)
const STEPS: [(&str, u16); 6] = [
    ("", 220),
    ("EHLO", 250),
    ("MAIL", 250),
    ("RCPT", 250),
    ("DATA", 354),
    ("", 250),
];
const FINAL_DOT: usize = 5;

/// One server reply.
#[derive(Debug, Clone)]
enum Reply {
    /// The step's expected code, on one line.
    Expected(String),
    /// The expected code over several lines (`250-…`, then `250 …`).
    MultiLine(Vec<String>),
    /// A transient refusal.
    Temporary(u16, String),
    /// A permanent refusal.
    Permanent(u16, String),
    /// A line that is no SMTP reply at all.
    Garbage(Vec<u8>),
    /// No answer: the client's deadline must end it.
    Silence,
    /// The connection closed instead of an answer.
    Close,
}

fn reply_text() -> impl Strategy<Value = String> {
    // Printable text, with the odd non-ASCII letter; never a line break (one reply line).
    "[ -~àéøЖ€]{0,40}"
}

/// A reply that lets the exchange go on.
fn good_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        3 => reply_text().prop_map(Reply::Expected),
        1 => prop::collection::vec(reply_text(), 2..5).prop_map(Reply::MultiLine),
    ]
}

/// A reply that ends the exchange.
fn bad_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        2 => (prop::sample::select(vec![421u16, 450, 451, 452, 454]), reply_text())
            .prop_map(|(c, t)| Reply::Temporary(c, t)),
        2 => (prop::sample::select(vec![500u16, 501, 502, 503, 550, 552, 553, 554]), reply_text())
            .prop_map(|(c, t)| Reply::Permanent(c, t)),
        // Starts with a letter, so it can never read as a reply code.
        2 => ("[a-zA-Z]", prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..60))
            .prop_map(|(first, rest)| Reply::Garbage([first.into_bytes(), rest].concat())),
        1 => Just(Reply::Silence),
        1 => Just(Reply::Close),
    ]
}

/// A script: good replies, with one step (or, a quarter of the time, none) misbehaving.
fn script() -> impl Strategy<Value = Vec<Reply>> {
    (
        prop::collection::vec(good_reply(), STEPS.len()),
        0..STEPS.len() + 2,
        bad_reply(),
    )
        .prop_map(|(mut script, at, bad)| {
            if let Some(step) = script.get_mut(at) {
                *step = bad;
            }
            script
        })
}

/// What the server did: whether it answered the final dot with its 250, and whether it ever
/// refused permanently.
#[derive(Debug, Default)]
struct Seen {
    accepted: bool,
    refused_for_good: bool,
    /// The client's greeting line, `EHLO name`.
    ehlo: String,
}

/// Serves one connection on `listener` by `script`, one reply per step.
fn serve(listener: &TcpListener, script: &[Reply]) -> std::io::Result<Seen> {
    let mut seen = Seen::default();
    let (stream, _) = listener.accept()?;
    // The client's deadlines end every exchange well before this one.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut line = Vec::new();
    for (step, ((verb, code), reply)) in STEPS.iter().zip(script).enumerate() {
        if step == FINAL_DOT {
            // The message itself, up to the line holding only a dot.
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line)? == 0 {
                    return Ok(seen);
                }
                if line == b".\r\n" {
                    break;
                }
            }
        } else if step > 0 {
            line.clear();
            // The client left the script (it gave up on the last reply: RSET, QUIT, or just
            // closed): nothing it says now is this step's.
            if input.read_until(b'\n', &mut line)? == 0 || !line.starts_with(verb.as_bytes()) {
                return Ok(seen);
            }
            if *verb == "EHLO" {
                seen.ehlo = String::from_utf8_lossy(&line).trim_end().to_string();
            }
        }
        let bytes = match reply {
            Reply::Expected(text) => format!("{code} {text}\r\n").into_bytes(),
            Reply::MultiLine(lines) => {
                let (last, first) = lines.split_last().expect("at least two lines");
                let mut s: String = first.iter().map(|l| format!("{code}-{l}\r\n")).collect();
                s.push_str(&format!("{code} {last}\r\n"));
                s.into_bytes()
            }
            Reply::Temporary(c, text) | Reply::Permanent(c, text) => {
                format!("{c} {text}\r\n").into_bytes()
            }
            Reply::Garbage(bytes) => [bytes.as_slice(), b"\r\n"].concat(),
            Reply::Silence => {
                // Wait for the client to give up (it closes the connection).
                let mut rest = Vec::new();
                let _ = input.read_until(b'\n', &mut rest);
                return Ok(seen);
            }
            Reply::Close => return Ok(seen),
        };
        out.write_all(&bytes)?;
        match reply {
            Reply::Expected(_) | Reply::MultiLine(_) if step == FINAL_DOT => seen.accepted = true,
            Reply::Expected(_) | Reply::MultiLine(_) => {}
            Reply::Permanent(..) => {
                seen.refused_for_good = true;
                return Ok(seen);
            }
            // Whatever the client does next, this exchange is over for the script.
            Reply::Temporary(..) | Reply::Garbage(_) | Reply::Silence | Reply::Close => {
                return Ok(seen);
            }
        }
    }
    Ok(seen)
}

fn message() -> OutboxMessage {
    OutboxMessage {
        id: 1,
        digest_name: "fuzz".into(),
        message_id: "<fuzz.1@example.org>".into(),
        sender: "newswatch <newswatch@example.org>".into(),
        recipients: vec!["Analyst <analyst@example.org>".into()],
        raw: b"Message-ID: <fuzz.1@example.org>\r\nSubject: fuzz\r\n\r\nbody\r\n.dot-stuffed line\r\n"
            .to_vec(),
        status: OutboxStatus::Queued,
        attempts: 0,
        next_attempt: chrono::DateTime::UNIX_EPOCH,
        last_error: None,
    }
}

/// One script against the real client: the outcome must say what the server did.
fn exchange(rt: &tokio::runtime::Runtime, script: &[Reply]) -> Result<(), String> {
    exchange_as(rt, script, None).map(|_| ())
}

/// [`exchange`] with the client greeting as `helo_name`; what the server saw.
fn exchange_as(
    rt: &tokio::runtime::Runtime,
    script: &[Reply],
    helo_name: Option<&str>,
) -> Result<Seen, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let delivery = Delivery {
        from: "newswatch <newswatch@example.org>".into(),
        method: DeliveryMethod::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
            username: None,
            password: None,
            password_file: None,
            timeout: Duration::from_millis(200),
            final_reply_timeout: Duration::from_millis(200),
            ca_file: None::<PathBuf>,
            helo_name: helo_name.map(str::to_string),
        }),
    };
    let deliverer = Deliverer::new(&delivery).map_err(|e| e.to_string())?;
    let (seen, outcome) = std::thread::scope(|s| {
        let server = s.spawn(|| serve(&listener, script));
        let attempt = rt.block_on(deliverer.send(&message()));
        let outcome = attempt.outcome.clone();
        rt.block_on(attempt.quit.send());
        (server.join(), outcome)
    });
    let seen = seen
        .map_err(|_| "the server thread panicked".to_string())?
        .map_err(|e| format!("server: {e}"))?;
    match (&outcome, seen.accepted, seen.refused_for_good) {
        (SendOutcome::Sent, true, _) | (SendOutcome::Retry(_), false, false) => Ok(seen),
        (SendOutcome::Failed(_), false, true) => Ok(seen),
        _ => Err(format!(
            "outcome {outcome:?} for a server that did {seen:?}"
        )),
    }
}

#[test]
fn fuzz_smtp_replies() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    fuzz("smtp", script(), |script| exchange(&rt, &script));
}

/// What `fuzz_smtp_replies` found (seed 20261212): lettre 0.11 unwraps the first word of every
/// EHLO line, so a continuation line of blanks (`250-A`, `250  `) panicked inside `send`, and
/// the daemon exited 101 on it, again after every restart, with the message still due. Now it
/// is a garbled reply like any other: retried after the back-off.
#[test]
fn a_blank_line_in_the_ehlo_reply_is_a_retry_not_a_crash() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let blank_ehlo_line = [
        Reply::Expected(String::new()),
        Reply::MultiLine(vec!["A".into(), " ".into()]),
        Reply::Expected(String::new()),
        Reply::Expected(String::new()),
        Reply::Expected(String::new()),
        Reply::Expected(String::new()),
    ];
    exchange(&rt, &blank_ehlo_line).unwrap_or_else(|e| panic!("{e}"));
}

/// `[delivery] helo_name` is the name the client greets with (a relay may check it against the
/// sender's DNS); without it, the machine's host name.
#[test]
fn the_greeting_uses_the_configured_helo_name() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let all_good = vec![Reply::Expected("ok".to_string()); STEPS.len()];
    let seen = exchange_as(&rt, &all_good, Some("mail.newswatch.example.org"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(seen.accepted);
    assert_eq!(seen.ehlo, "EHLO mail.newswatch.example.org");
    let seen = exchange_as(&rt, &all_good, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(seen.ehlo.starts_with("EHLO "), "{seen:?}");
    assert_ne!(seen.ehlo, "EHLO mail.newswatch.example.org");
}
