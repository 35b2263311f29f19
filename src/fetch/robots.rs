//! robots.txt (RFC 9309) for the article pages newswatch fetches for full text (issue 20): the
//! group for our product token, else `*`; the longest matching `Allow`/`Disallow` path wins, `Allow`
//! on a tie; `*` and `$` in paths. Pure: the text in, a verdict per path out. Feeds themselves are
//! not subject to it (a feed URL is the publisher's invitation).

/// The rules of the one group that applies to us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Robots {
    /// (allow, pattern), in file order.
    rules: Vec<(bool, String)>,
}

/// At most this much of a robots.txt is read (RFC 9309 §2.5 asks for at least 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 512 * 1024;

impl Robots {
    /// Everything allowed: no robots.txt (4xx), per RFC 9309 §2.3.1.3.
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// Everything disallowed: the server could not answer (5xx, unreachable), §2.3.1.4.
    pub fn disallow_all() -> Robots {
        Robots {
            rules: vec![(false, "/".into())],
        }
    }

    /// The group for `product` (case-insensitive, `newswatch`), else the `*` group.
    pub fn parse(text: &str, product: &str) -> Robots {
        let text = &text[..floor(text, MAX_ROBOTS_BYTES)];
        let product = product.to_ascii_lowercase();
        let (mut ours, mut any) = (None::<Vec<(bool, String)>>, None::<Vec<(bool, String)>>);
        // The agents of the group being read, and whether its rules have started.
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        let mut rules: Vec<(bool, String)> = Vec::new();
        let mut close = |agents: &mut Vec<String>, rules: &mut Vec<(bool, String)>| {
            if agents.contains(&product) {
                ours.get_or_insert_with(Vec::new)
                    .extend(rules.iter().cloned());
            } else if agents.iter().any(|a| a == "*") {
                any.get_or_insert_with(Vec::new)
                    .extend(rules.iter().cloned());
            }
            agents.clear();
            rules.clear();
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        close(&mut agents, &mut rules);
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    // An empty Disallow allows everything; it adds no rule.
                    if !value.is_empty() {
                        rules.push((key == "allow", value.to_string()));
                    }
                }
                _ => {}
            }
        }
        close(&mut agents, &mut rules);
        Robots {
            rules: ours.or(any).unwrap_or_default(),
        }
    }

    /// Whether `path` (with its query) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// `pattern` matches a prefix of `path`; `*` is any run of characters, a final `$` anchors.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && anchored {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    !anchored || rest.is_empty() || (parts.is_empty() && rest.is_empty())
}

fn floor(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Robots;

    const TXT: &str = "\
# example
User-agent: *
Disallow: /private/
Disallow: /*.pdf$
Allow: /private/press/

User-agent: Googlebot
User-agent: newswatch
Disallow: /live/
Allow: /live/open
";

    #[test]
    fn the_group_and_the_longest_rule_decide() {
        let ours = Robots::parse(TXT, "newswatch");
        let other = Robots::parse(TXT, "otherbot");
        for (path, for_us, for_others) in [
            ("/world/story-1", true, true),
            ("/private/x", true, false),
            ("/private/press/release", true, true),
            ("/live/blog", false, true),
            ("/live/open-letter", true, true),
            ("/report.pdf", true, false),
            ("/report.pdf?x=1", true, true),
        ] {
            assert_eq!(ours.allows(path), for_us, "newswatch {path}");
            assert_eq!(other.allows(path), for_others, "otherbot {path}");
        }
        assert!(Robots::allow_all().allows("/anything"));
        assert!(!Robots::disallow_all().allows("/anything"));
        assert!(Robots::parse("User-agent: *\nDisallow:\n", "newswatch").allows("/x"));
        assert!(Robots::parse("garbage\n\0\u{1}", "newswatch").allows("/x"));
    }
}
