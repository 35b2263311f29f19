//! The one reader for received mail: `.eml` files in a directory (the SMTP sink's, or the
//! `file` delivery method's outbox) and the parts a test looks at. Never decides what is right.

use std::path::{Path, PathBuf};

/// One message, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub message_id: String,
    /// The first text/plain part (empty when there is none).
    pub text: String,
    /// The first text/html part (empty when there is none).
    pub html: String,
    /// The header block as sent, up to the blank line.
    pub headers: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Mail {
        let msg = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("a received message is MIME that mail-parser reads");
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        Mail {
            subject: msg.subject().unwrap_or_default().to_string(),
            message_id: msg.message_id().unwrap_or_default().to_string(),
            text: msg.body_text(0).unwrap_or_default().into_owned(),
            html: msg.body_html(0).unwrap_or_default().into_owned(),
            headers: String::from_utf8_lossy(&raw[..head_end]).into_owned(),
        }
    }
}

/// The `.eml` files in `dir`, sorted by name (none when `dir` does not exist yet).
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The raw bytes of every `.eml` file in `dir`, in name order.
pub fn raw_messages(dir: &Path) -> Vec<Vec<u8>> {
    eml_files(dir)
        .iter()
        .map(|p| std::fs::read(p).expect("a listed .eml file is readable"))
        .collect()
}

/// Every `.eml` file in `dir`, parsed, in name order.
pub fn messages(dir: &Path) -> Vec<Mail> {
    raw_messages(dir)
        .iter()
        .map(|raw| Mail::parse(raw))
        .collect()
}
