//! Sending composed messages from the outbox: SMTP (STARTTLS, TLS or plain, with AUTH), sendmail,
//! or `.eml` files in a directory. The only module that speaks SMTP. Each attempt is classified
//! (sent / retry later / failed for good); what to do with the outbox row is the caller's business.
//! Never logs the SMTP password.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::FutureExt;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{AsyncSendmailTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{Delivery, DeliveryMethod, Security};
use crate::model::OutboxMessage;

/// A message that failed transiently this many times is given up on (kept, marked failed).
pub const MAX_ATTEMPTS: u32 = 10;
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted (2xx), or written.
    Sent,
    /// 4xx, timeout, dropped connection: the same message may succeed later.
    Retry(String),
    /// 5xx or a message that can never be sent: keep it, do not retry.
    Failed(String),
}

/// One attempt: its outcome, and the session's courtesy QUIT, owed once the caller has recorded
/// a `Sent` (the 250 to the final dot is the commit point; nothing the server says later may
/// delay its record, RFC 5321 §4.5.3.2 gives QUIT no part in acceptance).
pub struct Attempt {
    pub outcome: SendOutcome,
    pub quit: Quit,
}

/// An SMTP session that accepted its message and is still owed a QUIT (nothing for the other
/// transports and for failed attempts). Dropping it closes the connection without one.
pub struct Quit(Option<Box<AsyncSmtpConnection>>);

impl Quit {
    /// Sends QUIT and waits at most `QUIT_WAIT` for the answer, which changes nothing.
    pub async fn send(self) {
        if let Some(mut conn) = self.0 {
            let _ = tokio::time::timeout(QUIT_WAIT, conn.quit()).await;
        }
    }
}

impl From<SendOutcome> for Attempt {
    fn from(outcome: SendOutcome) -> Attempt {
        Attempt {
            outcome,
            quit: Quit(None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot set up SMTP to {host}: {source}")]
    Smtp {
        host: String,
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A configured transport; build once, reuse for every message.
pub struct Deliverer {
    transport: Transport,
}

enum Transport {
    Smtp(Box<Smtp>),
    Sendmail {
        mailer: AsyncSendmailTransport<Tokio1Executor>,
        command: PathBuf,
    },
    File {
        dir: PathBuf,
    },
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("target", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    pub fn new(delivery: &Delivery) -> Result<Deliverer, DeliverError> {
        let transport = match &delivery.method {
            DeliveryMethod::Smtp(s) => {
                let smtp_err = |source| DeliverError::Smtp {
                    host: s.host.clone(),
                    source,
                };
                let tls = match s.security {
                    Security::None => None,
                    Security::Starttls | Security::Tls => {
                        let mut params = TlsParameters::builder(s.host.clone());
                        if let Some(ca) = &s.ca_file {
                            // A private CA (a company relay, or the tests' self-signed sink) on
                            // top of the usual web roots; verification stays on.
                            let pem = std::fs::read(ca).map_err(|source| DeliverError::CaFile {
                                path: ca.clone(),
                                source,
                            })?;
                            params = params.add_root_certificate(
                                Certificate::from_pem(&pem).map_err(smtp_err)?,
                            );
                        }
                        Some(params.build().map_err(smtp_err)?)
                    }
                };
                Transport::Smtp(Box::new(Smtp {
                    host: s.host.clone(),
                    port: s.port,
                    security: s.security,
                    tls,
                    credentials: match (&s.username, &s.password) {
                        (Some(user), Some(password)) => Some(Credentials::new(
                            user.clone(),
                            password.expose_secret().to_string(),
                        )),
                        _ => None,
                    },
                    timeout: s.timeout,
                    final_reply_timeout: s.final_reply_timeout,
                    // The configured name, else lettre's default: the machine's host name.
                    hello: s
                        .helo_name
                        .clone()
                        .map_or_else(ClientId::default, ClientId::Domain),
                    target: format!("smtp {}:{}", s.host, s.port),
                }))
            }
            DeliveryMethod::Sendmail { command } => Transport::Sendmail {
                mailer: AsyncSendmailTransport::<Tokio1Executor>::new_with_command(command),
                command: command.clone(),
            },
            DeliveryMethod::File { dir } => Transport::File { dir: dir.clone() },
        };
        Ok(Deliverer { transport })
    }

    /// Where messages go, for summaries and logs: `smtp host:port`, `sendmail /usr/sbin/sendmail`,
    /// `files in /var/lib/newswatch/outbox`.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(smtp) => smtp.target.clone(),
            Transport::Sendmail { command, .. } => format!("sendmail {}", command.display()),
            Transport::File { dir } => format!("files in {}", tidy(dir).display()),
        }
    }

    /// The longest one attempt can take when the server answers slowly but within every
    /// deadline (SMTP: the exchange's timeout, the final reply's, and QUIT's second); `None`
    /// where no deadline bounds it (sendmail, files). The daemon's health counts a send within
    /// this bound as progress.
    pub fn longest_attempt(&self) -> Option<Duration> {
        match &self.transport {
            Transport::Smtp(smtp) => Some(smtp.timeout + smtp.final_reply_timeout + QUIT_WAIT),
            Transport::Sendmail { .. } | Transport::File { .. } => None,
        }
    }

    /// One attempt at one message. Record a `Sent` first, then send its `quit`.
    pub async fn send(&self, msg: &OutboxMessage) -> Attempt {
        let envelope = match envelope(msg) {
            Ok(e) => e,
            Err(reason) => return SendOutcome::Failed(reason).into(),
        };
        let outcome = match &self.transport {
            Transport::Smtp(smtp) => {
                // lettre 0.11 panics on some malformed replies (an EHLO line of blanks: its
                // `ServerInfo::from_response` unwraps the line's first word), which took the
                // daemon down on every start. A garbled reply is the server's fault and
                // transient like any other; nothing shared is left half-changed by the unwind
                // (the attempt owns its connection; `self` is only read).
                return AssertUnwindSafe(smtp.send(&envelope, &msg.raw))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        SendOutcome::Retry(format!(
                            "the SMTP client failed on a malformed reply from {}",
                            smtp.target
                        ))
                        .into()
                    });
            }
            Transport::Sendmail { mailer, .. } => {
                match mailer.send_raw(&envelope, &msg.raw).await {
                    Ok(()) => SendOutcome::Sent,
                    // sendmail's exit status does not tell a full queue from a bad address reliably;
                    // retries are bounded by MAX_ATTEMPTS.
                    Err(e) => SendOutcome::Retry(format!("sendmail: {e}")),
                }
            }
            Transport::File { dir } => match write_eml(dir, &msg.message_id, &msg.raw).await {
                Ok(_) => SendOutcome::Sent,
                Err(e) => SendOutcome::Retry(format!("cannot write to {}: {e}", dir.display())),
            },
        };
        outcome.into()
    }
}

/// How long a server may take to answer QUIT after it accepted the message. The message is sent
/// whatever the answer: QUIT is a courtesy, never a reason to wait or to send again.
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// An SMTP relay and how to talk to it. One connection per message, driven command by command so
/// that the 250 after the final dot, and nothing later, marks the message sent.
struct Smtp {
    host: String,
    port: u16,
    security: Security,
    /// Certificate checks for `Tls` (implicit) and `Starttls`; `None` for plain SMTP.
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    final_reply_timeout: Duration,
    /// The EHLO name.
    hello: ClientId,
    target: String,
}

impl Smtp {
    /// One attempt: the exchange up to DATA under `timeout` (lettre's own timeout bounds each read,
    /// not the exchange; a server that trickles bytes must not hold the outbox), then the message
    /// and its final reply under `final_reply_timeout`. A 250 there is the commit point: the
    /// session comes back owing its QUIT, for after the caller has recorded the message sent.
    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Attempt {
        let mut conn = match tokio::time::timeout(self.timeout, self.open(envelope, raw)).await {
            Err(_) => {
                return SendOutcome::Retry(format!(
                    "SMTP exchange timed out after {:?} before the message was sent",
                    self.timeout
                ))
                .into();
            }
            Ok(Err(outcome)) => return outcome.into(),
            Ok(Ok(conn)) => conn,
        };
        match tokio::time::timeout(self.final_reply_timeout, conn.message(raw)).await {
            // Unknown whether the server took it: RFC 5321 §6.1 accepts a possible duplicate
            // over a possible loss, after the server's full time to answer.
            Err(_) => SendOutcome::Retry(format!(
                "no reply to the end of the message within {:?}",
                self.final_reply_timeout
            ))
            .into(),
            Ok(Err(e)) => classify_smtp(&e).into(),
            Ok(Ok(_accepted)) => Attempt {
                outcome: SendOutcome::Sent,
                quit: Quit(Some(Box::new(conn))),
            },
        }
    }

    /// Connects (implicit TLS or STARTTLS as configured), authenticates, and gives MAIL, RCPT and
    /// DATA, leaving the connection ready for the message itself; on failure, what it means.
    async fn open(
        &self,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<AsyncSmtpConnection, SendOutcome> {
        let failed = |e: lettre::transport::smtp::Error| classify_smtp(&e);
        let hello = &self.hello;
        let implicit = match self.security {
            Security::Tls => self.tls.clone(),
            Security::Starttls | Security::None => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            hello,
            implicit,
            None,
        )
        .await
        .map_err(failed)?;
        if let (Security::Starttls, Some(tls)) = (self.security, &self.tls) {
            if !conn.can_starttls() {
                // Never fall back to plain text when TLS was asked for; retrying cannot help.
                conn.abort().await;
                return Err(SendOutcome::Failed(format!(
                    "{} does not offer STARTTLS, which `security = \"starttls\"` requires",
                    self.target
                )));
            }
            conn.starttls(tls.clone(), hello).await.map_err(failed)?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(failed)?;
        }
        let mut options = Vec::new();
        let non_ascii = |a: &Address| !AsRef::<str>::as_ref(a).is_ascii();
        if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
            options.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(Mail::new(envelope.from().cloned(), options))
            .await
            .map_err(failed)?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), Vec::new()))
                .await
                .map_err(failed)?;
        }
        conn.command(Data).await.map_err(failed)?;
        Ok(conn)
    }
}

fn envelope(msg: &OutboxMessage) -> Result<Envelope, String> {
    let addr = |s: &str| -> Result<Address, String> {
        s.parse::<lettre::message::Mailbox>()
            .map(|m| m.email)
            .map_err(|e| format!("invalid address {s:?}: {e}"))
    };
    let from = addr(&msg.sender)?;
    let to = msg
        .recipients
        .iter()
        .map(|r| addr(r))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to).map_err(|e| format!("invalid envelope: {e}"))
}

fn classify_smtp(e: &lettre::transport::smtp::Error) -> SendOutcome {
    let text = e.to_string();
    if e.is_permanent() {
        SendOutcome::Failed(text)
    } else if e.is_client() {
        // Our side refused to send (e.g. the server offers no STARTTLS): retrying cannot help.
        SendOutcome::Failed(text)
    } else {
        // 4xx, timeouts, TLS handshakes, dropped connections, garbled responses.
        SendOutcome::Retry(text)
    }
}

/// Delay before attempt `attempts + 1`, after `attempts` transient failures: 1 min, doubling,
/// capped at 6 h.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
}

/// Writes `<message-id>.eml` into `dir` (created when missing), via a temporary name and a rename
/// so a reader never sees half a message.
pub async fn write_eml(dir: &Path, message_id: &str, raw: &[u8]) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{}.eml", file_stem(message_id)));
    let tmp = dir.join(format!(".{}.eml.tmp", file_stem(message_id)));
    tokio::fs::write(&tmp, raw).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(path)
}

/// `config/../outbox` as `outbox`, for people reading a summary. Lexical only: a symlinked
/// directory could make it differ from what the OS resolves, so it is never used to open files.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// A Message-ID as a file name: angle brackets dropped, anything unusual replaced.
fn file_stem(message_id: &str) -> String {
    message_id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        // (failures so far, delay)
        let cases = [
            (0, 60),
            (1, 60),
            (2, 120),
            (3, 240),
            (4, 480),
            (9, 15_360),
            (10, 6 * 3600),
            (40, 6 * 3600),
        ];
        for (attempts, secs) in cases {
            let want = Duration::from_secs(secs).min(MAX_RETRY);
            assert_eq!(backoff(attempts), want, "after {attempts} failures");
        }
    }

    #[test]
    fn summary_paths_are_tidied() {
        let cases = [
            ("config/../outbox", "outbox"),
            ("./config/../../outbox", "../outbox"),
            ("/srv/nw/config/../outbox", "/srv/nw/outbox"),
            ("a/./b", "a/b"),
            ("config/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(tidy(Path::new(input)), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn message_ids_become_safe_file_names() {
        let cases = [
            (
                "<digest-7.main.1741608000@example.org>",
                "digest-7.main.1741608000@example.org",
            ),
            ("<../../etc/passwd@x>", ".._.._etc_passwd@x"),
            ("<a b/c@x>", "a_b_c@x"),
        ];
        for (id, stem) in cases {
            assert_eq!(file_stem(id), stem, "{id}");
        }
    }
}
