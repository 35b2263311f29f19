//! OPML, the feed list every RSS reader imports and exports: OPML → `[[feed]]` TOML blocks
//! (folder names become tags, repeated URLs are skipped) and config feeds → OPML 2.0.
//! Appending to a config keeps the user's file as written (comments, order) and refuses to write
//! anything that no longer parses. Export reads only the `[[feed]]` tables, so it needs neither
//! the rules nor the SMTP credential.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    #[error("{}:{line}: invalid OPML: {message}", .file.display())]
    Xml {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: not an OPML file: no <opml> root element", .0.display())]
    NotOpml(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
}

/// One feed, as OPML knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    pub title: String,
    pub xml_url: String,
    pub html_url: Option<String>,
    /// Enclosing folder names, outermost first.
    pub tags: Vec<String>,
}

/// The feeds of an OPML file, each URL once, and the URLs that appeared again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub feeds: Vec<OpmlFeed>,
    pub duplicates: Vec<String>,
    /// Feeds left out because the config would refuse their URL: why, in words that never
    /// repeat a password.
    pub refused: Vec<String>,
}

pub fn read(path: &Path) -> Result<Imported, OpmlError> {
    let text = std::fs::read_to_string(path).map_err(|source| OpmlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses OPML 1.0/2.0. An outline with `xmlUrl` is a feed; one without is a folder.
pub fn parse(file: &Path, text: &str) -> Result<Imported, OpmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let xml_error = |pos: u64, message: String| OpmlError::Xml {
        file: file.to_path_buf(),
        line: line_of(text, pos),
        message,
    };
    let mut out = Imported::default();
    let mut seen = HashSet::new();
    // One entry per open <outline>: Some(folder name), or None for a feed with children.
    let mut open: Vec<Option<String>> = Vec::new();
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error(reader.error_position(), e.to_string()))?;
        let pos = reader.buffer_position();
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "opml" => {
                saw_root = true;
            }
            Event::Start(e) if e.local_name().as_ref() == "outline" => {
                let outline = Outline::from_element(&e).map_err(|m| xml_error(pos, m))?;
                let folder = outline.xml_url.is_none().then(|| outline.label());
                push_feed(&mut out, &mut seen, &open, outline);
                open.push(folder);
            }
            Event::Empty(e) if e.local_name().as_ref() == "outline" => {
                let outline = Outline::from_element(&e).map_err(|m| xml_error(pos, m))?;
                push_feed(&mut out, &mut seen, &open, outline);
            }
            Event::End(e) if e.local_name().as_ref() == "outline" => {
                open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(OpmlError::NotOpml(file.to_path_buf()));
    }
    Ok(out)
}

struct Outline {
    title: Option<String>,
    text: Option<String>,
    xml_url: Option<String>,
    html_url: Option<String>,
    /// OPML 2.0 `category`: comma-separated, each `/`-prefixed.
    category: Option<String>,
}

impl Outline {
    fn from_element(e: &BytesStart<'_>) -> Result<Outline, String> {
        let mut o = Outline {
            title: None,
            text: None,
            xml_url: None,
            html_url: None,
            category: None,
        };
        for attr in e.attributes() {
            let attr = attr.map_err(|err| err.to_string())?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| err.to_string())?
                .trim()
                .to_string();
            if value.is_empty() {
                continue;
            }
            // Exporters disagree on case (`xmlUrl`, `xmlurl`, `XMLURL`).
            let name = attr.key.local_name();
            let slot = match name.as_ref().to_ascii_lowercase().as_str() {
                "title" => &mut o.title,
                "text" => &mut o.text,
                "xmlurl" => &mut o.xml_url,
                "htmlurl" => &mut o.html_url,
                "category" => &mut o.category,
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(o)
    }

    /// `text` is required by OPML 2.0; `title` is what most readers fill in.
    fn label(&self) -> String {
        self.title
            .clone()
            .or_else(|| self.text.clone())
            .unwrap_or_default()
    }
}

fn push_feed(
    out: &mut Imported,
    seen: &mut HashSet<String>,
    open: &[Option<String>],
    outline: Outline,
) {
    let Some(url) = outline.xml_url.clone() else {
        return;
    };
    // Only what a config accepts is imported: `--append` must never write a config that the
    // next load (or reload) refuses.
    let url = match crate::config::parse_remote_feed_url(url.trim()) {
        Ok(_) => url.trim().to_string(),
        Err(why) => {
            out.refused.push(why);
            return;
        }
    };
    if !seen.insert(url_key(&url)) {
        out.duplicates.push(url);
        return;
    }
    let mut title = outline.label();
    if title.is_empty() {
        title = url::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| url.clone());
    }
    // Folders are tags, and so are the OPML 2.0 `category` entries ("/a,/b") our export writes.
    let mut tags: Vec<String> = Vec::new();
    let folders = open.iter().flatten().map(String::as_str);
    let categories = outline.category.iter().flat_map(|c| c.split(','));
    for t in folders.chain(categories) {
        let t = t.trim().trim_start_matches('/');
        if !t.is_empty() && !tags.iter().any(|have| have == t) {
            tags.push(t.to_string());
        }
    }
    out.feeds.push(OpmlFeed {
        title,
        xml_url: url,
        html_url: outline.html_url,
        tags,
    });
}

/// URLs compare after parsing, so `HTTPS://Example.org/feed` and `https://example.org/feed` are one.
fn url_key(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.trim().to_string(), |u| u.to_string())
}

fn line_of(text: &str, pos: u64) -> usize {
    let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `[[feed]]` blocks for `feeds`, renaming any whose name is in `taken` (config names are unique).
pub fn feed_blocks(feeds: &[OpmlFeed], taken: &mut HashSet<String>) -> String {
    let mut out = String::new();
    for f in feeds {
        let mut name = f.title.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{} ({n})", f.title);
            n += 1;
        }
        taken.insert(name.clone());
        let _ = writeln!(out, "[[feed]]");
        let _ = writeln!(out, "name = {}", toml_str(&name));
        let _ = writeln!(out, "url = {}", toml_str(&f.xml_url));
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| toml_str(t)).collect();
            let _ = writeln!(out, "tags = [{}]", tags.join(", "));
        }
        out.push('\n');
    }
    out
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Only what export and append need from a config; everything else is ignored, not validated.
#[derive(Deserialize)]
struct FeedsOnly {
    #[serde(default)]
    feed: Vec<RawFeed>,
}

#[derive(Deserialize)]
struct RawFeed {
    name: String,
    url: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The `[[feed]]` tables of a config file's text.
pub fn feeds_from_config(path: &Path, text: &str) -> Result<Vec<OpmlFeed>, OpmlError> {
    let parsed: FeedsOnly = toml::from_str(text).map_err(|e| OpmlError::Config {
        path: path.to_path_buf(),
        message: e.message().trim_end().to_string(),
    })?;
    Ok(parsed
        .feed
        .into_iter()
        .map(|f| OpmlFeed {
            title: f.name,
            xml_url: f.url,
            html_url: None,
            tags: f.tags,
        })
        .collect())
}

/// What [`append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub added: usize,
    /// URLs the config already had.
    pub already_present: Vec<String>,
}

/// Appends the feeds the config lacks to the file at `config`, replacing it atomically.
pub fn append(config: &Path, imported: &Imported, source: &str) -> Result<Appended, OpmlError> {
    let text = std::fs::read_to_string(config).map_err(|source| OpmlError::Read {
        path: config.to_path_buf(),
        source,
    })?;
    let existing = feeds_from_config(config, &text)?;
    let before = existing.len();
    let present: HashSet<String> = existing.iter().map(|f| url_key(&f.xml_url)).collect();
    let mut taken: HashSet<String> = existing.into_iter().map(|f| f.title).collect();
    let (new, old): (Vec<&OpmlFeed>, Vec<&OpmlFeed>) = imported
        .feeds
        .iter()
        .partition(|f| !present.contains(&url_key(&f.xml_url)));
    let report = Appended {
        added: new.len(),
        already_present: old.into_iter().map(|f| f.xml_url.clone()).collect(),
    };
    if new.is_empty() {
        return Ok(report);
    }
    let new: Vec<OpmlFeed> = new.into_iter().cloned().collect();
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let _ = write!(
        out,
        "\n# Imported from {source}\n{}",
        feed_blocks(&new, &mut taken)
    );
    // A config that used `feed = [...]` inline, say, cannot take [[feed]] blocks: refuse.
    let after = feeds_from_config(config, &out)?;
    if after.len() != before + report.added {
        return Err(OpmlError::Config {
            path: config.to_path_buf(),
            message: "appending the imported feeds would not add them as [[feed]] tables; \
                      add the printed blocks by hand"
                .to_string(),
        });
    }
    write_atomically(config, &out)?;
    Ok(report)
}

/// Temp file in the same directory, then rename: a crash leaves the old file or the new, never half.
fn write_atomically(path: &Path, text: &str) -> Result<(), OpmlError> {
    let err = |source| OpmlError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".newswatch-{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, text).map_err(err)?;
    let perms = std::fs::metadata(path).map_err(err)?.permissions();
    let renamed = std::fs::set_permissions(&tmp, perms).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// OPML 2.0. Tags are flat, so they are never nested: a feed sits in the folder of its first tag
/// (what a feed reader shows), and every tag is in its `category` attribute ("/a,/b"), so
/// importing the result gives the same tags back. A feed URL is written without any user name or
/// password (a config the daemon refuses can still be exported).
pub fn export(feeds: &[OpmlFeed], title: &str) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n");
    let _ = writeln!(
        out,
        "  <head>\n    <title>{}</title>\n  </head>\n  <body>",
        esc(title)
    );
    // Folders in the order of their first feed; feeds keep config order within one.
    let mut folders: Vec<Option<&str>> = Vec::new();
    for f in feeds {
        let folder = f.tags.first().map(String::as_str);
        if !folders.contains(&folder) {
            folders.push(folder);
        }
    }
    for folder in folders {
        let depth = usize::from(folder.is_some());
        if let Some(tag) = folder {
            let _ = writeln!(
                out,
                "{}<outline text=\"{}\" title=\"{}\">",
                indent(0),
                esc(tag),
                esc(tag)
            );
        }
        for f in feeds
            .iter()
            .filter(|f| f.tags.first().map(String::as_str) == folder)
        {
            let _ = write!(
                out,
                "{}<outline type=\"rss\" text=\"{}\" title=\"{}\" xmlUrl=\"{}\"",
                indent(depth),
                esc(&f.title),
                esc(&f.title),
                esc(&without_userinfo(&f.xml_url))
            );
            if let Some(html) = &f.html_url {
                let _ = write!(out, " htmlUrl=\"{}\"", esc(html));
            }
            if !f.tags.is_empty() {
                let category: Vec<String> = f.tags.iter().map(|t| format!("/{t}")).collect();
                let _ = write!(out, " category=\"{}\"", esc(&category.join(",")));
            }
            out.push_str("/>\n");
        }
        if folder.is_some() {
            let _ = writeln!(out, "{}</outline>", indent(0));
        }
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

/// `url` with any user name and password taken out (unparsable: masked by text).
fn without_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => crate::config::redact_userinfo(url),
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth + 2)
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(xml: &str) -> Result<Imported, OpmlError> {
        parse(Path::new("t.opml"), xml)
    }

    /// title, xmlUrl, tags
    type Want = (&'static str, &'static str, &'static [&'static str]);

    #[test]
    fn parse_table() {
        let wrap = |body: &str| {
            format!("<?xml version=\"1.0\"?><opml version=\"2.0\"><body>{body}</body></opml>")
        };
        #[rustfmt::skip]
        let cases: &[(&str, &[Want])] = &[
            (r#"<outline text="A" xmlUrl="https://a.example/feed"/>"#, &[("A", "https://a.example/feed", &[])]),
            (r#"<outline title="T" text="X" xmlUrl="https://a.example/f"/>"#, &[("T", "https://a.example/f", &[])]),
            (r#"<outline xmlUrl="https://a.example/f"/>"#, &[("a.example", "https://a.example/f", &[])]),
            (r#"<outline text="Q &amp; A &#8217;s" xmlurl="https://a.example/f"/>"#, &[("Q & A ’s", "https://a.example/f", &[])]),
            (r#"<outline text="Top"><outline text="Sub"><outline text="F" xmlUrl="https://f.example/"/></outline></outline>"#, &[("F", "https://f.example/", &["Top", "Sub"])]),
            (r#"<outline text="A" xmlUrl="https://a.example/f"/><outline text="B" xmlUrl="HTTPS://A.example/f"/>"#, &[("A", "https://a.example/f", &[])]),
            (r#"<outline text="Empty folder"></outline>"#, &[]),
            (r#"<outline text="uk"><outline text="F" xmlUrl="https://f.example/" category="/uk,/defence"/></outline>"#, &[("F", "https://f.example/", &["uk", "defence"])]),
            // What the config would refuse is never imported (`--append` keeps a config valid).
            (r#"<outline text="Bad" xmlUrl="not a url"/><outline text="Ftp" xmlUrl="ftp://f.example/x"/>"#, &[]),
            (r#"<outline text="Login" xmlUrl="https://ann:s3cret@f.example/x"/>"#, &[]),
        ];
        for (body, want) in cases {
            let got = p(&wrap(body)).unwrap_or_else(|e| panic!("{body}: {e}"));
            let got: Vec<(&str, &str, Vec<&str>)> = got
                .feeds
                .iter()
                .map(|f| {
                    (
                        f.title.as_str(),
                        f.xml_url.as_str(),
                        f.tags.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            let want: Vec<(&str, &str, Vec<&str>)> =
                want.iter().map(|(t, u, g)| (*t, *u, g.to_vec())).collect();
            assert_eq!(got, want, "{body}");
        }
    }

    #[test]
    fn refused_urls_are_reported_without_their_password() {
        let got = p(
            r#"<opml><body><outline text="L" xmlUrl="https://ann:s3cret@f.example/x"/>
            <outline text="B" xmlUrl="not a url"/></body></opml>"#,
        )
        .expect("valid OPML");
        assert_eq!(got.refused.len(), 2, "{:?}", got.refused);
        assert!(
            got.refused[0].contains("https://f.example/x"),
            "{:?}",
            got.refused
        );
        assert!(
            got.refused[1].contains("\"not a url\""),
            "{:?}",
            got.refused
        );
        assert!(!got.refused.concat().contains("s3cret"));
    }

    #[test]
    fn export_puts_a_feed_in_its_first_tag_and_lists_every_tag() {
        let feed = |t: &str, tags: &[&str]| OpmlFeed {
            title: t.into(),
            xml_url: format!("https://ann:s3cret@{t}.example/feed"),
            html_url: None,
            tags: tags.iter().map(|&t| t.to_string()).collect(),
        };
        let feeds = [
            feed("a", &["uk", "defence"]),
            feed("b", &[]),
            feed("c", &["uk"]),
        ];
        let xml = export(&feeds, "t");
        let body = "  <body>\n    <outline text=\"uk\" title=\"uk\">\n      \
            <outline type=\"rss\" text=\"a\" title=\"a\" xmlUrl=\"https://a.example/feed\" category=\"/uk,/defence\"/>\n      \
            <outline type=\"rss\" text=\"c\" title=\"c\" xmlUrl=\"https://c.example/feed\" category=\"/uk\"/>\n    \
            </outline>\n    \
            <outline type=\"rss\" text=\"b\" title=\"b\" xmlUrl=\"https://b.example/feed\"/>\n  </body>";
        assert!(xml.contains(body), "{xml}");
        let back = p(&xml).expect("our own export parses");
        let tags: Vec<Vec<String>> = back.feeds.iter().map(|f| f.tags.clone()).collect();
        assert_eq!(
            tags,
            [
                vec!["uk".to_string(), "defence".to_string()],
                vec!["uk".to_string()],
                vec![]
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err =
            p("<opml>\n<body>\n<outline text=\"a & b\"/></body></opml>").expect_err("bad xml");
        assert!(
            err.to_string().starts_with("t.opml:3: invalid OPML"),
            "{err}"
        );
        let err = p("<rss><channel/></rss>").expect_err("not opml");
        assert!(matches!(err, OpmlError::NotOpml(_)), "{err}");
    }

    #[test]
    fn blocks_rename_taken_names_and_quote() {
        let f = |t: &str, u: &str| OpmlFeed {
            title: t.into(),
            xml_url: u.into(),
            html_url: None,
            tags: vec!["say \"hi\"".into()],
        };
        let mut taken = HashSet::from(["A".to_string()]);
        let text = feed_blocks(&[f("A", "https://a/1"), f("A", "https://a/2")], &mut taken);
        assert_eq!(
            text,
            "[[feed]]\nname = \"A (2)\"\nurl = \"https://a/1\"\ntags = ['say \"hi\"']\n\n\
             [[feed]]\nname = \"A (3)\"\nurl = \"https://a/2\"\ntags = ['say \"hi\"']\n\n"
        );
    }
}
