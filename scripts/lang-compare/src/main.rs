//! Compares language detectors on labelled headlines and summaries (issue 20): per language
//! accuracy of each detector on the headline alone and on headline + summary, and the time per
//! text. Prints a Markdown table. Items without a `lang` are skipped.

use std::collections::BTreeMap;
use std::time::Instant;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

const LANGS: [&str; 8] = ["de", "en", "es", "fr", "it", "pl", "ru", "uk"];

fn whatlang_code(text: &str) -> Option<&'static str> {
    let allow = vec![
        whatlang::Lang::Deu,
        whatlang::Lang::Eng,
        whatlang::Lang::Spa,
        whatlang::Lang::Fra,
        whatlang::Lang::Ita,
        whatlang::Lang::Pol,
        whatlang::Lang::Rus,
        whatlang::Lang::Ukr,
    ];
    let det = whatlang::Detector::with_allowlist(allow);
    det.detect_lang(text).map(|l| match l {
        whatlang::Lang::Deu => "de",
        whatlang::Lang::Eng => "en",
        whatlang::Lang::Spa => "es",
        whatlang::Lang::Fra => "fr",
        whatlang::Lang::Ita => "it",
        whatlang::Lang::Pol => "pl",
        whatlang::Lang::Rus => "ru",
        whatlang::Lang::Ukr => "uk",
        _ => "?",
    })
}

fn whatlang_all(text: &str) -> Option<&'static str> {
    whatlang::detect_lang(text).map(|l| match l {
        whatlang::Lang::Deu => "de",
        whatlang::Lang::Eng => "en",
        whatlang::Lang::Spa => "es",
        whatlang::Lang::Fra => "fr",
        whatlang::Lang::Ita => "it",
        whatlang::Lang::Pol => "pl",
        whatlang::Lang::Rus => "ru",
        whatlang::Lang::Ukr => "uk",
        _ => "?",
    })
}

fn lingua_code(det: &LanguageDetector, text: &str) -> Option<&'static str> {
    det.detect_language_of(text).map(|l| match l {
        Language::German => "de",
        Language::English => "en",
        Language::Spanish => "es",
        Language::French => "fr",
        Language::Italian => "it",
        Language::Polish => "pl",
        Language::Russian => "ru",
        Language::Ukrainian => "uk",
        #[allow(unreachable_patterns)]
        _ => "?",
    })
}

type Detect<'a> = Box<dyn Fn(&str) -> Option<&'static str> + 'a>;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "rules/eval/tune.jsonl".into());
    let text = std::fs::read_to_string(&path).expect("read the labelled file");
    let mut items: Vec<(String, String, String)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let Some(lang) = v["lang"].as_str() else { continue };
        let lang = lang.split('-').next().unwrap_or(lang).to_ascii_lowercase();
        let title = v["title"].as_str().unwrap_or("").to_string();
        let summary = v["summary"].as_str().unwrap_or("").to_string();
        items.push((lang, title, summary));
    }
    let langs = [
        Language::English,
        Language::German,
        Language::French,
        Language::Russian,
        Language::Ukrainian,
        Language::Polish,
        Language::Italian,
        Language::Spanish,
    ];
    let lingua_high = LanguageDetectorBuilder::from_languages(&langs).build();
    let lingua_low = LanguageDetectorBuilder::from_languages(&langs)
        .with_low_accuracy_mode()
        .build();
    let detectors: Vec<(&str, Detect)> = vec![
        ("whatlang (all 69 languages)", Box::new(whatlang_all)),
        ("whatlang (allow-list of 8)", Box::new(whatlang_code)),
        ("lingua low accuracy (8)", Box::new(|t| lingua_code(&lingua_low, t))),
        ("lingua high accuracy (8)", Box::new(|t| lingua_code(&lingua_high, t))),
    ];
    println!("items: {}", items.len());
    for (what, pick) in [("headline", 0), ("headline + summary", 1)] {
        println!("\n### {what}\n");
        let header: Vec<String> = LANGS.iter().map(|l| {
            let n = items.iter().filter(|i| i.0 == *l).count();
            format!("{l} ({n})")
        }).collect();
        println!("| detector | {} | all | µs/text |", header.join(" | "));
        println!("|---|{}---|---|", "---|".repeat(LANGS.len()));
        for (name, det) in &detectors {
            let mut right: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            // warm up (lingua loads its models on first use)
            let _ = det("warm up the models");
            let start = Instant::now();
            for (lang, title, summary) in &items {
                let t = if pick == 0 { title.clone() } else { format!("{title}. {summary}") };
                let got = det(&t);
                let e = right.entry(lang.as_str()).or_default();
                e.1 += 1;
                if got == Some(lang.as_str()) {
                    e.0 += 1;
                }
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / items.len() as f64;
            let cells: Vec<String> = LANGS.iter().map(|l| {
                let (r, n) = right.get(l).copied().unwrap_or((0, 0));
                format!("{:.1} %", 100.0 * r as f64 / n.max(1) as f64)
            }).collect();
            let (r, n) = right.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            println!("| {name} | {} | {:.1} % | {micros:.0} |", cells.join(" | "), 100.0 * r as f64 / n as f64);
        }
    }
}
