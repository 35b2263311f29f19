//! The word index the playground searches through (`rules::index`, issue 18): for every shipped
//! rule's query and for tricky ones, the articles the index leaves as candidates hold every
//! article the rule matches, so evaluating the candidates finds exactly what a scan of every
//! article finds. Over a generated corpus built from the shipped rules' own examples (matches and
//! near misses) mixed with filler, in every field, in several scripts and cases.

use std::path::PathBuf;

use newswatch::model::{Article, FeedMeta};
use newswatch::rules::RuleSet;
use newswatch::rules::index::{WordBatch, WordIndex, article_words};

use crate::support::demo::shipped_rule_files;

/// Rules beside the shipped ones (whose lists they use): what the index must not get wrong.
const TRICKY: &str = r#"
[[rule]]
id = "not-only"
title = "t"
query = 'NOT Healey'
allow_broad = true

[[rule]]
id = "or-not"
title = "t"
query = 'Hegseth OR NOT Healey'
allow_broad = true

[[rule]]
id = "and-not"
title = "t"
query = '@healey AND NOT @hegseth'

[[rule]]
id = "minus"
title = "t"
query = 'Healey -Lammy'

[[rule]]
id = "prefix"
title = "t"
query = 'ukrain*'

[[rule]]
id = "prefix-short-words"
title = "t"
query = 'heg* AND "John Healey"'

[[rule]]
id = "inflected"
title = "t"
query = 'Зеленськ~ OR Hegseth~'

[[rule]]
id = "phrase"
title = "t"
query = '"John Healey" OR "minerals deal"'

[[rule]]
id = "near"
title = "t"
query = 'Healey NEAR/3 Hegseth'

[[rule]]
id = "onear"
title = "t"
query = '@healey ONEAR/10 @hegseth'

[[rule]]
id = "phrase-near"
title = "t"
query = '"Healey Hegseth"~4'

[[rule]]
id = "case"
title = "t"
query = 'case:Trump OR case:"US Army"'

[[rule]]
id = "lists"
title = "t"
query = '(@zelenskyy OR @starmer) AND (@trump OR @putin)'

[[rule]]
id = "regex"
title = "t"
query = '/minerals?\s+deal/i'

[[rule]]
id = "regex-and-word"
title = "t"
query = '/minerals?\s+deal/i AND Ukraine'

[[rule]]
id = "fields"
title = "t"
query = 'title:Healey OR author:smith OR category:defence OR feed:kyiv OR summary:"peace plan"'

[[rule]]
id = "url-lang"
title = "t"
query = 'url:example.org OR (lang:uk AND Київ)'

[[rule]]
id = "scripts"
title = "t"
query = 'Київ OR Ουκρανία OR 乌克兰 OR "міністр оборони"'

[[rule]]
id = "diacritics"
title = "t"
query = "Macrón OR Zełenski~ OR Straße OR \"l'Ukraine\""

[[rule]]
id = "hyphen"
title = "t"
query = 'cease-fire AND NOT "cease fire talks"'

[[rule]]
id = "nothing-holds-it"
title = "t"
query = 'Xylophonist AND Healey'
"#;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const FILLER: &[&str] = &[
    "talks",
    "the",
    "minister",
    "said",
    "Ukraine",
    "Ukrainian",
    "ukrainische",
    "Київ",
    "Україна",
    "Ουκρανία",
    "乌克兰",
    "Macron",
    "Straße",
    "Zełenski",
    "Zelenskiego",
    "cease-fire",
    "cease fire talks",
    "US Army",
    "us army",
    "TRUMP",
    "Trump",
    "trumps",
    "Healey",
    "HEALEY",
    "John",
    "Hegseth's",
    "Hegsethville",
    "Lammy",
    "peace plan",
    "minerals",
    "deal",
    "l'Ukraine",
    "d’Ukraine",
    "Heg\u{200b}seth",
    "Неgseth",
    "Хілі",
    "міністр оборони",
    "2025",
    "front",
    "Weimar",
    "Weimar+",
    ".",
    ",",
    "—",
];

/// Articles from the rules' examples (each a match or a near miss of some rule) cut and mixed
/// with filler across every field.
fn corpus(set: &RuleSet, n: usize) -> Vec<(Article, FeedMeta)> {
    let examples: Vec<&str> = set
        .rules()
        .iter()
        .flat_map(|r| r.examples.iter().map(|e| e.text.as_str()))
        .collect();
    assert!(examples.len() > 50, "the shipped rules have examples");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let text = |rng: &mut Rng, parts: u64| {
        let mut t = String::new();
        for _ in 0..rng.next() % parts {
            if rng.chance(40) {
                let ex = rng.pick(&examples);
                // Sometimes half an example: the other half's words go missing.
                let cut = if rng.chance(30) {
                    ex.char_indices()
                        .nth(ex.chars().count() / 2)
                        .map_or(ex.len(), |(i, _)| i)
                } else {
                    ex.len()
                };
                t.push_str(&ex[..cut]);
            } else {
                t.push_str(rng.pick(FILLER));
            }
            t.push(' ');
        }
        if rng.chance(10) {
            t = t.to_uppercase();
        }
        t
    };
    (0..n)
        .map(|i| {
            let article = Article {
                key: format!("k{i}"),
                link: rng
                    .chance(20)
                    .then(|| format!("https://news.example.org/{i}")),
                title: text(&mut rng, 3),
                summary: text(&mut rng, 4),
                content: text(&mut rng, 8),
                authors: if rng.chance(20) {
                    vec![rng.pick(&["Ann Smith", "Смит", "Healey"]).to_string()]
                } else {
                    Vec::new()
                },
                categories: if rng.chance(20) {
                    vec![rng.pick(&["Defence", "Ukraine", "politics"]).to_string()]
                } else {
                    Vec::new()
                },
                lang: rng
                    .chance(50)
                    .then(|| rng.pick(&["en", "uk", "de"]).to_string()),
                lang_detected: None,
                published: None,
            };
            let feed = FeedMeta {
                name: rng.pick(&["kyiv-independent", "wire", "bbc"]).to_string(),
                title: rng
                    .chance(50)
                    .then(|| rng.pick(&["Kyiv Post", "Healey Watch"]).to_string()),
                tags: Vec::new(),
            };
            (article, feed)
        })
        .collect()
}

fn shipped_and_tricky() -> RuleSet {
    let mut sources: Vec<(PathBuf, String)> = shipped_rule_files()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read a shipped rule file");
            (f, text)
        })
        .collect();
    sources.push((PathBuf::from("tricky.toml"), TRICKY.to_string()));
    match RuleSet::from_sources(&sources) {
        Ok(set) => set,
        Err(d) => panic!("{d}"),
    }
}

/// Indexes `docs` as numbers `first..` in batches of `batch` (as new polls arrive).
fn index(docs: &[(Article, FeedMeta)], first: u32, batch: usize) -> WordIndex {
    let mut index = WordIndex::default();
    for (c, chunk) in docs.chunks(batch).enumerate() {
        let mut b = WordBatch::default();
        for (k, (a, f)) in chunk.iter().enumerate() {
            let n = first + u32::try_from(c * batch + k).expect("small");
            b.add_article(n, a, f);
        }
        index.merge(b);
    }
    index
}

/// For each rule, the numbers of the articles it matches, by scanning every one (once).
fn scan(set: &RuleSet, docs: &[(Article, FeedMeta)], first: u32) -> Vec<Vec<u32>> {
    let mut by_rule = vec![Vec::new(); set.rules().len()];
    for (i, (a, f)) in docs.iter().enumerate() {
        let n = first + u32::try_from(i).expect("small");
        for m in set.match_article_unfiltered(a, f) {
            by_rule[m.rule].push(n);
        }
    }
    by_rule
}

#[test]
fn candidates_hold_every_match_of_every_shipped_and_tricky_query() {
    let set = shipped_and_tricky();
    let docs = corpus(&set, 3_000);
    let first = 7;
    let end = first + u32::try_from(docs.len()).expect("small");
    let index = index(&docs, first, 1_000);
    let mut restricted = 0;
    let matches = scan(&set, &docs, first);
    for (r, rule) in set.rules().iter().enumerate() {
        let all = &matches[r];
        let Some(cands) = set.candidates(r, &index, first, end) else {
            // No restriction: the playground evaluates every article, as the scan did.
            assert!(
                ["not-only", "or-not", "regex", "url-lang"].contains(&rule.id.as_str()),
                "{} needs no word?",
                rule.id
            );
            continue;
        };
        restricted += 1;
        let cands: Vec<u32> = cands.descending().collect();
        let missed: Vec<&u32> = all
            .iter()
            .filter(|&&n| cands.binary_search_by(|c| n.cmp(c)).is_err())
            .collect();
        assert!(
            missed.is_empty(),
            "rule {}: the candidates miss matches {missed:?}",
            rule.id
        );
        if rule.id == "nothing-holds-it" {
            assert!(cands.is_empty(), "{cands:?}");
        } else {
            assert!(!all.is_empty(), "rule {} matches nothing here", rule.id);
            assert!(
                cands.len() < docs.len(),
                "rule {}: the index ruled nothing out",
                rule.id
            );
        }
    }
    assert!(restricted >= 25, "{restricted}");
}

#[test]
fn forgotten_articles_are_no_candidates_and_new_ones_are() {
    let set = shipped_and_tricky();
    let docs = corpus(&set, 1_200);
    let r = set.find("phrase").expect("the phrase rule");
    // 1,000 articles, then 200 more arrive, and the oldest 300 are dropped.
    let mut index = index(&docs[..1_000], 0, 1_000);
    let mut more = WordBatch::default();
    for (k, (a, f)) in docs[1_000..].iter().enumerate() {
        more.add(
            1_000 + u32::try_from(k).expect("small"),
            &article_words(a, f),
        );
    }
    index.merge(more);
    index.forget_below(300);
    let want: Vec<u32> = scan(&set, &docs[300..], 300).swap_remove(r);
    assert!(want.iter().any(|&n| n >= 1_000), "some new article matches");
    let got = set.candidates(r, &index, 300, 1_200).expect("restricted");
    let mut got: Vec<u32> = got.descending().collect();
    got.reverse();
    assert!(got.iter().all(|&n| n >= 300), "nothing forgotten: {got:?}");
    for n in &want {
        assert!(got.binary_search(n).is_ok(), "{n} is a match");
    }
    let (words, entries) = index.size();
    let dropped = index.compact();
    assert!(dropped > 0);
    let (words_after, entries_after) = index.size();
    assert_eq!(entries_after, entries - dropped);
    assert!(words_after <= words);
    let again = set.candidates(r, &index, 300, 1_200).expect("restricted");
    let mut again: Vec<u32> = again.descending().collect();
    again.reverse();
    assert_eq!(again, got, "compacting changes no answer");
}
