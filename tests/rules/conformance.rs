//! The rule language against its spec (`docs/rules.md`): a conformance table (one line per case),
//! diagnostics, rule-file checks, explain output and spans. Pure: no process, no network.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use newswatch::model::{Article, FeedMeta};
use newswatch::rules::{Field, RuleSet};

/// Lists every conformance case may use.
const LISTS: &str = r#"
[lists]
healey = ['"John Healey"', 'Healey']
hegseth = ['"Pete Hegseth"', 'Hegseth']
zelenskyy = ['Zelenskyy', 'Zelensky', 'Zelenskiy', 'Selenskyj', 'Зеленський']
people = ['@healey', '@hegseth']
"#;

fn set_for(query: &str, allow_broad: bool) -> Result<RuleSet, String> {
    let toml = format!(
        "{LISTS}\n[[rule]]\nid = \"r\"\nquery = '''{query}'''\nallow_broad = {allow_broad}\n"
    );
    RuleSet::from_sources(&[(PathBuf::from("case.toml"), toml)]).map_err(|d| d.to_string())
}

/// `t=title|s=summary|c=content|a=author|g=category|u=link|l=lang|f=feed name|F=feed title`;
/// a part without a prefix is content. Content containing `<` is HTML.
fn article(spec: &str) -> (Article, FeedMeta) {
    let mut a = Article::default();
    let mut f = FeedMeta::default();
    for part in spec.split('|').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_at_checked(2) {
            Some((k, v)) if k.ends_with('=') => (k.chars().next().unwrap_or('c'), v),
            _ => ('c', part),
        };
        let v = v.to_string();
        match k {
            't' => a.title = v,
            's' => a.summary = v,
            'a' => a.authors.push(v),
            'g' => a.categories.push(v),
            'u' => a.link = Some(v),
            'l' => a.lang = Some(v),
            'f' => f.name = v,
            'F' => f.title = Some(v),
            _ if v.contains('<') => a.content = newswatch::parse::html::html_to_text(&v),
            _ => a.content = v,
        }
    }
    (a, f)
}

/// `-` no match; `*` a match without hits; else `field=text` hits joined by `|`, in field order.
fn outcome(set: &RuleSet, spec: &str) -> String {
    let (a, f) = article(spec);
    let now = Utc
        .with_ymd_and_hms(2025, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    match set.match_article(&a, &f, now).pop() {
        None => "-".to_string(),
        Some(m) if m.hits.is_empty() => "*".to_string(),
        Some(m) => m
            .hits
            .iter()
            .map(|h| format!("{}={}", h.field.as_str(), h.text))
            .collect::<Vec<_>>()
            .join("|"),
    }
}

#[rustfmt::skip]
const CASES: &[(&str, &str, &str)] = &[
    // --- terms: whole tokens, case- and accent-insensitive
    ("Healey", "Healey met", "content=Healey"),
    ("Healey", "HEALEY met", "content=HEALEY"),
    ("Healey", "healey", "content=healey"),
    ("Healey", "Healey's visit", "content=Healey"),
    ("Healey", "Healey’s visit", "content=Healey"),
    ("Healey", "HEALEY'S", "content=HEALEY"),
    ("Healey", "Healeyville", "-"),
    ("Healey", "MacHealey", "-"),
    ("Healey", "t=Healey", "title=Healey"),
    ("Healey", "s=Healey", "summary=Healey"),
    ("Healey", "a=Healey", "-"),
    ("Healey", "g=Healey", "-"),
    ("Healey", "f=Healey", "-"),
    ("Hegseth", "Heg\u{200B}seth", "content=Heg\u{200B}seth"),
    ("Hegseth", "Heg\u{00AD}seth", "content=Heg\u{00AD}seth"),
    ("Hegseth", "Heg\u{2060}seth", "content=Heg\u{2060}seth"),
    ("Healey", "\u{FEFF}Healey", "content=Healey"),
    ("Macron", "Macrón", "content=Macrón"),
    ("Macrón", "Macron", "content=Macron"),
    ("Macron", "Macro\u{301}n", "content=Macro\u{301}n"),
    ("Zelenskyy", "Zelénskyy", "content=Zelénskyy"),
    ("Strasse", "Straße", "content=Straße"),
    ("straße", "STRASSE", "content=STRASSE"),
    ("MASSE", "Maße", "content=Maße"),
    ("ΟΔΟΣ", "οδος", "content=οδος"),
    ("istanbul", "İstanbul", "content=İstanbul"),
    ("Ｈｅａｌｅｙ", "Healey", "content=Healey"),
    ("Healey", "Ｈｅａｌｅｙ", "content=Ｈｅａｌｅｙ"),
    ("ceasefire", "ceaseﬁre", "content=ceaseﬁre"),
    ("Зеленський", "Зеленський заявив", "content=Зеленський"),
    ("ЗЕЛЕНСЬКИЙ", "Зеленський", "content=Зеленський"),
    ("Zelensky", "Zelenskyy", "-"),
    ("перемир'я", "перемир’я на морі", "content=перемир’я"),
    ("морі", "перемир'я на морі", "content=морі"),
    ("北京", "在北京开会", "content=北京"),
    ("بوتين", "قال بوتين", "content=بوتين"),
    ("O'Neill", "O'Neill said", "content=O'Neill"),
    ("O'Neill", "O’Neill said", "content=O’Neill"),
    ("O'Neill", "O‘Neill said", "content=O‘Neill"),
    ("Neill", "O'Neill said", "-"),
    ("bbc.co.uk", "see bbc.co.uk now", "content=bbc.co.uk"),
    ("bbc", "see bbc.co.uk now", "-"),
    ("30", "a 30-day truce", "content=30"),
    ("30-day", "a 30-day truce", "content=30-day"),
    ("Hegseth's", "Hegseth", "content=Hegseth"),
    ("and", "Healey and Hegseth", "content=and"),
    ("not", "this is not it", "content=not"),
    ("near", "near the border", "content=near"),
    // --- revision 2: elision (French, Italian, Catalan), both apostrophe forms
    ("Ukraine", "soutien à l'Ukraine", "content=Ukraine"),
    ("Ukraine", "soutien à l’Ukraine", "content=Ukraine"),
    ("Ukraine", "président d'Ukraine", "content=Ukraine"),
    ("Ucraina", "il sostegno dell'Ucraina", "content=Ucraina"),
    ("Ucraina", "nell’Ucraina", "content=Ucraina"),
    ("Ukraine", "jusqu'Ukraine", "content=Ukraine"),
    ("\"soutien à l'Ukraine\"", "le soutien à l’Ukraine", "content=soutien à l’Ukraine"),
    ("\"l'Ukraine\"", "pour l’Ukraine", "content=l’Ukraine"),
    ("l'Ukraine", "D'Ukraine", "-"),
    ("Neill", "O'Neill said", "-"),
    ("Brien", "O’Brien said", "-"),
    ("O'Brien", "O’Brien said", "content=O’Brien"),
    ("Healey", "Healey's visit", "content=Healey"),
    ("case:Ukraine", "l'Ukraine", "content=Ukraine"),
    ("Ukraine NEAR/0 soutien", "soutien à l'Ukraine", "-"),
    ("Ukraine NEAR/2 soutien", "soutien à l'Ukraine", "content=soutien|content=Ukraine"),
    // --- revision 2: letters with a stroke and ligatures fold to their base
    ("Radoslaw", "Radosław Sikorski", "content=Radosław"),
    ("RADOSŁAW", "Radoslaw", "content=Radoslaw"),
    ("Store", "Jonas Gahr Støre", "content=Støre"),
    ("\"Gahr Store\"", "Jonas GAHR STØRE", "content=GAHR STØRE"),
    ("Dokovic", "Đoković", "content=Đoković"),
    ("Dordur", "Ðorður", "content=Ðorður"),
    ("hamrun", "Ħamrun", "content=Ħamrun"),
    ("istanbul", "ıstanbul", "content=ıstanbul"),
    ("aerial", "ÆRIAL", "content=ÆRIAL"),
    ("oeuvre", "chef-d’œuvre", "content=œuvre"),
    ("Strasse", "STRAẞE", "content=STRAẞE"),
    ("thorn", "Þorn", "content=Þorn"),
    ("Støre", "Store", "content=Store"),
    ("case:Støre", "Store", "-"),
    ("case:Støre", "Støre", "content=Støre"),
    ("case:Store", "Støre", "-"),
    ("Sikorski", "Radosław Sikorski", "content=Sikorski"),
    ("Rados*", "Radosław", "content=Radosław"),
    // --- revision 2: inflected forms, `word~` = the word plus at most 3 letters
    ("Гегсет~", "з Гегсетом", "content=Гегсетом"),
    ("Гегсет~", "Гегсета", "content=Гегсета"),
    ("Гегсет~", "Гегсету", "content=Гегсету"),
    ("Гегсет~", "Гегсет", "content=Гегсет"),
    ("Гегсет~", "Гегсетовими", "-"),
    ("Selenskyj~", "Selenskyjs Besuch", "content=Selenskyjs"),
    ("Hegseth~", "Hegsetha", "content=Hegsetha"),
    ("Hegseth~", "Hegsethovych", "-"),
    ("Hegset~", "Hegsetha", "content=Hegsetha"),
    ("Hegseth~", "Hegseth's", "content=Hegseth"),
    ("Hegseth~", "MacHegseth", "-"),
    ("Зеленськ~", "Зеленського", "content=Зеленського"),
    ("Зеленськ~", "ЗЕЛЕНСЬКИМ", "content=ЗЕЛЕНСЬКИМ"),
    ("Radosław~", "Radosławem", "content=Radosławem"),
    ("Store~", "Støres", "content=Støres"),
    ("deal~ OR deal*", "dealerships", "content=dealerships"),
    ("deal~", "dealerships", "-"),
    ("Гегсет~ NEAR/1 Гілі", "Гегсетом і Гілі", "content=Гегсетом|content=Гілі"),
    ("title:Гегсет~", "c=Гегсетом", "-"),
    // --- revision 2: syntax from other tools
    ("\"Healey Hegseth\"~10", "Healey spoke. Later that day Hegseth", "content=Healey|content=Hegseth"),
    ("\"Healey Hegseth\"~2", "Hegseth met with Healey", "content=Hegseth|content=Healey"),
    ("\"Healey Hegseth\"~1", "Healey met with Hegseth", "-"),
    ("\"Healey Hegseth\"~10", "Healey 10 Hegseth", "content=Healey|content=Hegseth"),
    ("\"Healey Hegseth\"~10", "Healey", "-"),
    ("\"Healey Hegseth Lammy\"~2", "Healey Hegseth Lammy", "content=Healey|content=Hegseth|content=Lammy"),
    ("\"Healey Hegseth Lammy\"~2", "Healey Hegseth a b c Lammy", "-"),
    ("Healey NEAR/2f Hegseth", "Hegseth met with Healey", "-"),
    ("Healey NEAR/2f Hegseth", "Healey met with Hegseth", "content=Healey|content=Hegseth"),
    ("Healey -Lammy", "Healey and Lammy", "-"),
    ("Healey -Lammy", "Healey alone", "content=Healey"),
    ("-Lammy Healey", "Healey alone", "content=Healey"),
    ("Healey -(Lammy OR Starmer)", "Healey and Starmer", "-"),
    ("Healey -\"Jane Healey\"", "Jane Healey", "-"),
    ("Healey -@hegseth", "Healey met Hegseth", "-"),
    ("Healey (-Lammy)", "Healey Lammy", "-"),
    ("cease-fire", "a cease fire now", "content=cease fire"),
    ("site:bbc.co.uk", "u=https://www.bbc.co.uk/news/1", "url=www.bbc.co.uk"),
    ("site:bbc.co.uk", "u=https://example.com/", "-"),
    ("author:Doe title:Healey", "a=Jane Doe|t=Healey", "title=Healey|author=Doe"),
    // --- revision 2: lower-case operators stay words
    ("Healey near Hegseth", "Healey near Hegseth", "content=Healey|content=near|content=Hegseth"),
    ("Healey and Hegseth", "Healey Hegseth", "-"),
    // --- markup is never text
    ("Center", "<div class=\"center-wrap\">text</div>", "-"),
    ("Hegseth", "<b>Heg</b>seth", "content=Hegseth"),
    ("Healey", "<script>var Healey = 1;</script>x", "-"),
    ("Healey", "<style>.Healey{}</style>x", "-"),
    ("Healey", "x<!-- Healey -->y", "-"),
    ("Healey", "<a title=\"Healey\">x</a>", "-"),
    ("Healeymet", "<p>Healey</p><p>met</p>", "-"),
    ("\"Healey met\"", "<p>Healey</p><p>met</p>", "content=Healey met"),
    ("\"Tom Jerry\"", "<p>Tom &amp; Jerry</p>", "content=Tom & Jerry"),
    ("Macron", "<p>Macr&oacute;n</p>", "content=Macrón"),
    // --- phrases: consecutive tokens, punctuation and sentence ends ignored, one field
    ("\"minerals deal\"", "the minerals deal was", "content=minerals deal"),
    ("\"minerals deal\"", "Minerals Deal", "content=Minerals Deal"),
    ("\"minerals deal\"", "minerals and deal", "-"),
    ("\"minerals deal\"", "minerals deals", "-"),
    ("\"minerals deal\"", "t=minerals|c=deal", "-"),
    ("\"minerals deal\"", "t=minerals|s=deal", "-"),
    ("\"Kyiv talks\"", "to Kyiv. Talks began", "content=Kyiv. Talks"),
    ("\"John Healey\"", "John  Healey", "content=John  Healey"),
    ("\"John Healey\"", "John, Healey", "content=John, Healey"),
    ("\"cease fire\"", "a cease-fire now", "content=cease-fire"),
    ("\"cease fire\"", "a cease–fire now", "content=cease–fire"),
    ("\"cease fire\"", "a cease—fire now", "content=cease—fire"),
    ("cease-fire", "a cease fire now", "content=cease fire"),
    ("cease-fire", "a ceasefire now", "-"),
    ("ceasefire", "a cease fire now", "-"),
    ("ceasefire", "a cease-fire now", "-"),
    ("\"Hegseth's visit\"", "Hegseth visit", "content=Hegseth visit"),
    ("\"10:30\"", "at 10:30 today", "content=10:30"),
    ("\"US Army\"", "the us army", "content=us army"),
    ("\"Weimar+\"", "the Weimar+ group", "content=Weimar"),
    // --- prefixes
    ("mineral*", "minerals", "content=minerals"),
    ("mineral*", "mineral", "content=mineral"),
    ("mineral*", "MINERALS", "content=MINERALS"),
    ("mineral*", "nonmineral", "-"),
    ("mineral*", "t=Minerals", "title=Minerals"),
    ("paus*", "US pauses aid", "content=pauses"),
    ("deal", "two deals", "-"),
    ("deal*", "two deals", "content=deals"),
    ("Зелен*", "За словами Зеленського", "content=Зеленського"),
    ("guarantee*", "security guarantees", "content=guarantees"),
    // --- exact case
    ("case:US", "the US said", "content=US"),
    ("case:US", "give us back", "-"),
    ("case:US", "Us and them", "-"),
    ("US", "give us back", "content=us"),
    ("case:US", "the ＵＳ said", "content=ＵＳ"),
    ("case:US", "the US's view", "content=US"),
    ("case:\"US Army\"", "the US Army", "content=US Army"),
    ("case:\"US Army\"", "the US army", "-"),
    ("case:Macrón", "Macron", "-"),
    ("case:Macrón", "Macrón", "content=Macrón"),
    ("case:Trump", "a trump card", "-"),
    ("case:Trump", "Trump's plan", "content=Trump"),
    ("case:U.S.", "the U.S. said", "content=U.S"),
    // --- lists
    ("@healey", "John Healey", "content=John Healey|content=Healey"),
    ("@healey", "Healey", "content=Healey"),
    ("@healey", "Denis", "-"),
    ("@zelenskyy", "Zelenskiy", "content=Zelenskiy"),
    ("@zelenskyy", "Selenskyj", "content=Selenskyj"),
    ("@zelenskyy", "Зеленський", "content=Зеленський"),
    ("@zelenskyy", "Zelenskyyy", "-"),
    ("@people", "Pete Hegseth", "content=Pete Hegseth|content=Hegseth"),
    ("title:@healey", "t=Healey", "title=Healey"),
    ("title:@healey", "c=Healey", "-"),
    // --- and, or, not, precedence
    ("Healey AND Hegseth", "Healey Hegseth", "content=Healey|content=Hegseth"),
    ("Healey Hegseth", "Healey and Hegseth", "content=Healey|content=Hegseth"),
    ("Healey AND Hegseth", "Healey", "-"),
    ("Healey AND Hegseth", "t=Healey|c=Hegseth", "title=Healey|content=Hegseth"),
    ("Healey OR Hegseth", "Hegseth", "content=Hegseth"),
    ("Healey OR Hegseth", "Lammy", "-"),
    ("Healey AND NOT Lammy", "Healey", "content=Healey"),
    ("Healey AND NOT Lammy", "Healey Lammy", "-"),
    ("Healey NOT Lammy", "Healey Lammy", "-"),
    ("Healey and Hegseth", "Healey Hegseth", "-"),
    ("Healey or Hegseth", "Healey", "-"),
    ("Healey AND NOT Lammy NEAR/3 Hegseth", "Healey Lammy met Hegseth", "-"),
    ("Healey AND NOT Lammy NEAR/3 Hegseth", "Healey Lammy a b c d Hegseth", "content=Healey"),
    ("Healey OR Hegseth AND Lammy", "Healey", "content=Healey"),
    ("Healey OR Hegseth AND Lammy", "Hegseth", "-"),
    ("(Healey OR Hegseth) AND Lammy", "Healey", "-"),
    ("(Healey OR Hegseth) AND Lammy", "Hegseth Lammy", "content=Hegseth|content=Lammy"),
    ("NOT Healey", "nothing here", "*"),
    ("NOT Healey", "Healey", "-"),
    ("Healey OR NOT Hegseth", "nothing", "*"),
    ("NOT (Healey OR Hegseth)", "Lammy", "*"),
    ("NOT NOT Healey", "Healey", "*"),
    // --- proximity
    ("Healey NEAR/2 Hegseth", "Healey met with Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/1 Hegseth", "Healey met with Hegseth", "-"),
    ("Healey NEAR/2 Hegseth", "Hegseth met with Healey", "content=Hegseth|content=Healey"),
    ("Healey ONEAR/2 Hegseth", "Hegseth met with Healey", "-"),
    ("Healey ONEAR/2 Hegseth", "Healey met with Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/0 Hegseth", "Healey Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/0 Hegseth", "Healey, Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/0 Hegseth", "Healey met Hegseth", "-"),
    ("Healey NEAR Hegseth", "Healey a b c d e Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR Hegseth", "Healey a b c d e f Hegseth", "-"),
    ("Healey ONEAR Hegseth", "Healey a b c d e Hegseth", "content=Healey|content=Hegseth"),
    ("Healey ONEAR Hegseth", "Hegseth a Healey", "-"),
    ("Healey NEAR/1 Hegseth", "Healey. Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/3 Hegseth", "t=Healey|c=Hegseth", "-"),
    ("Healey NEAR/3 Hegseth", "t=Healey|s=Hegseth", "-"),
    ("Healey NEAR/1 fire", "Healey cease-fire", "content=Healey|content=fire"),
    ("Healey NEAR/0 fire", "Healey cease-fire", "-"),
    ("\"John Healey\" NEAR/1 Hegseth", "John Healey met Hegseth", "content=John Healey|content=Hegseth"),
    ("@healey NEAR/1 @hegseth", "John Healey met Pete Hegseth", "content=John Healey|content=Healey|content=Pete Hegseth"),
    ("(Healey OR Lammy) NEAR/1 Hegseth", "Lammy and Hegseth", "content=Lammy|content=Hegseth"),
    ("mineral* NEAR/1 deal", "minerals deal", "content=minerals|content=deal"),
    ("case:US NEAR/2 backstop", "give us a backstop", "-"),
    ("case:US NEAR/2 backstop", "a US backstop", "content=US|content=backstop"),
    ("Healey NEAR/2 Healey", "Healey", "-"),
    ("Healey NEAR/2 Healey", "Healey x Healey", "content=Healey|content=Healey"),
    ("title:(Healey NEAR/2 Hegseth)", "t=Healey and Hegseth", "title=Healey|title=Hegseth"),
    ("title:(Healey NEAR/2 Hegseth)", "c=Healey and Hegseth", "-"),
    ("Healey NEAR/2 Hegseth", "Healey's talks with Hegseth", "content=Healey|content=Hegseth"),
    ("Healey NEAR/1 Hegseth", "Healey's talks with Hegseth", "-"),
    ("Healey NEAR/2 Hegseth", "Heg\u{200B}seth met Healey", "content=Heg\u{200B}seth|content=Healey"),
    ("Hegseth NEAR/0 Healey", "Hegseth’s Healey", "content=Hegseth|content=Healey"),
    // --- fields
    ("title:Healey", "t=Healey", "title=Healey"),
    ("title:Healey", "c=Healey", "-"),
    ("summary:Healey", "s=Healey", "summary=Healey"),
    ("content:Healey", "s=Healey", "-"),
    ("text:Healey", "s=Healey", "summary=Healey"),
    ("title:(Healey OR Hegseth)", "t=Hegseth", "title=Hegseth"),
    ("title:\"John Healey\"", "t=John Healey", "title=John Healey"),
    ("author:Doe", "a=Jane Doe", "author=Doe"),
    ("author:\"Jane Doe\"", "a=Jane Doe", "author=Jane Doe"),
    ("author:Doe", "c=Doe", "-"),
    ("author:\"Doe Smith\"", "a=Jane Doe|a=Smith", "-"),
    ("category:Ukraine", "g=Ukraine", "category=Ukraine"),
    ("category:Ukraine", "c=Ukraine", "-"),
    ("feed:Northgate", "f=Northgate Chronicle", "feed=Northgate"),
    ("feed:Chronicle", "F=The Chronicle", "feed=Chronicle"),
    ("feed:Chronicle", "c=Chronicle", "-"),
    ("url:bbc.co.uk", "u=https://www.bbc.co.uk/news/1", "url=www.bbc.co.uk"),
    ("url:bbc.co.uk", "u=https://bbc.co.uk/x", "url=bbc.co.uk"),
    ("url:bbc.co.uk", "u=https://BBC.CO.UK/x", "url=BBC.CO.UK"),
    ("url:bbc.co.uk", "u=https://notbbc.co.uk/x", "-"),
    ("url:bbc.co.uk", "u=https://example.com/bbc.co.uk", "-"),
    ("url:bbc.co.uk", "u=https://example.com/?u=bbc.co.uk", "-"),
    ("url:bbc.co.uk", "u=https://bbc.co.uk@evil.example/", "-"),
    ("url:bbc.co.uk", "c=bbc.co.uk", "-"),
    ("url:(bbc.co.uk OR reuters.com)", "u=https://www.reuters.com/a", "url=www.reuters.com"),
    ("url:bücher.de", "u=https://www.bücher.de/a", "url=www.bücher.de"),
    ("url:bücher.de", "u=https://xn--bcher-kva.de/a", "url=xn--bcher-kva.de"),
    ("url:BÜCHER.de", "u=https://user@bücher.de:8080/a", "url=bücher.de"),
    ("url:xn--bcher-kva.de", "u=https://bücher.de/", "url=bücher.de"),
    ("url:bücher.de", "u=https://buecher.de/", "-"),
    ("url:укрінформ.укр", "u=https://www.укрінформ.укр/x", "url=www.укрінформ.укр"),
    ("site:bücher.de", "u=https://bücher.de/", "url=bücher.de"),
    ("lang:en", "l=en-GB", "lang=en-GB"),
    ("lang:en", "l=en", "lang=en"),
    ("lang:en-gb", "l=en-GB", "lang=en-GB"),
    ("lang:en-gb", "l=en-US", "-"),
    ("lang:en", "l=eng", "-"),
    ("lang:en", "c=en", "-"),
    ("lang:uk", "l=uk-UA", "lang=uk-UA"),
    ("Healey AND lang:en", "l=en|c=Healey", "content=Healey|lang=en"),
    ("Healey AND NOT lang:en", "l=en|c=Healey", "-"),
    // --- regexes: plain text after NFKC, case-sensitive unless /i, per field
    ("/minerals?\\s+(deal|agreement)/i", "The Minerals Agreement", "content=Minerals Agreement"),
    ("/minerals?\\s+deal/", "Minerals deal", "-"),
    ("/minerals?\\s+deal/", "minerals deal", "content=minerals deal"),
    ("/Heg\\w+/", "Heg\u{200B}seth", "content=Heg\u{200B}seth"),
    ("/fire/", "ceaseﬁre", "content=ﬁre"),
    ("/Macron/", "Macrón", "-"),
    ("title:/Healey/", "c=Healey", "-"),
    ("title:/Healey/", "t=Healey", "title=Healey"),
    ("/Weimar\\s?\\+/", "the Weimar+ group", "content=Weimar+"),
    ("/Healey met/", "t=Healey|c=met", "-"),
    ("url:/bbc/", "u=https://bbc.co.uk/", "url=bbc"),
    ("Healey AND /\\d{4}/", "Healey in 1976", "content=Healey|content=1976"),
];

#[test]
fn conformance_table() {
    assert!(
        CASES.len() >= 150,
        "the table must cover at least 150 cases"
    );
    let mut failures = Vec::new();
    for (query, spec, want) in CASES {
        let got = match set_for(query, true) {
            Ok(set) => outcome(&set, spec),
            Err(e) => format!("ERROR {e}"),
        };
        if got != *want {
            failures.push(format!("{query:?} on {spec:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[rustfmt::skip]
const QUERY_ERRORS: &[(&str, &str)] = &[
    ("(Healey OR Hegseth", "unbalanced parentheses: this `(` is never closed"),
    ("Healey OR Hegseth)", "unbalanced parentheses: this `)` has no matching `(`"),
    ("Healey NEAR (Hegseth AND Lammy)", "NEAR operands must be terms, phrases, lists or OR-groups"),
    ("Healey NEAR NOT Hegseth", "NEAR operands must be terms, phrases, lists or OR-groups"),
    ("(a AND b) NEAR c", "NEAR operands must be terms, phrases, lists or OR-groups"),
    ("a NEAR b NEAR c", "proximity chains"),
    ("a NEAR/x b", "expected a number"),
    ("a ONEAR/-1 b", "expected a number"),
    ("titel:Healey", "unknown field `titel:` — did you mean `title:`?"),
    ("10:30", "unknown field `10:`"),
    ("title: Healey", "must be followed directly"),
    ("@hegsth", "unknown list @hegsth — did you mean @hegseth?"),
    ("@nosuchthing", "unknown list @nosuchthing"),
    ("/(/", "bad regex"),
    ("/a/q", "unknown regex flag `q`"),
    ("/a{1000}{1000}/", "bad regex"),
    ("/(a{1,100}){1,100}b/", "regex too costly"),
    ("mi*", "too short"),
    ("\"...\"", "contains no words"),
    ("\"\"", "contains no words"),
    ("NOT Healey", "query is broad"),
    ("NOT Healey AND NOT Hegseth", "query is broad"),
    ("Healey OR NOT Hegseth", "query is broad"),
    ("url:bbc.co.uk NEAR Healey", "NEAR operands"),
    ("/a/ NEAR Healey", "NEAR operands"),
    ("case:(a OR b)", "`case:` applies to a word or a quoted phrase"),
    ("case:US*", "`case:` cannot be combined with a prefix"),
    ("Healey AND", "the query ends where a term was expected"),
    ("AND Healey", "an operator is missing its operand"),
    ("\"open phrase", "unterminated phrase"),
    ("/open", "unterminated regex"),
    ("", "empty query"),
    // --- revision 2: refused syntax from other tools, operator typos, broad regexes
    ("Healey NAER/3 Hegseth", "unknown operator `NAER/3` — did you mean `NEAR/3`?"),
    ("Weimar NAER/3 group", "did you mean `NEAR/3`?"),
    ("Healey NEAR3 Hegseth", "unknown operator `NEAR3` — did you mean `NEAR/3`?"),
    ("Healey ONAER/2 Hegseth", "did you mean `ONEAR/2`?"),
    ("Healey ANDNOT Lammy", "unknown operator `ANDNOT` — did you mean `AND NOT`?"),
    ("Healey ORNOT Lammy", "did you mean `OR NOT`?"),
    ("Healey near/3 Hegseth", "`near/3` is not an operator — did you mean `NEAR/3`?"),
    ("Healey Near/3 Hegseth", "`Near/3` is not an operator — did you mean `NEAR/3`?"),
    ("Healey onear/3 Hegseth", "did you mean `ONEAR/3`?"),
    ("Healey W/3 Hegseth", "`W/3` is not supported — did you mean `NEAR/3` or `ONEAR/3`?"),
    ("Healey PRE/3 Hegseth", "`PRE/3` is not supported"),
    ("colo?r", "`?` (one-character wildcard) is not supported"),
    ("Hea?ey", "one-character wildcard"),
    ("*ealey", "`*` only ends a word"),
    ("He*ey", "`*` only ends a word"),
    ("Healey^2", "boosts (`^n`) do not exist here"),
    ("\"John Healey\"^3", "boosts (`^n`) do not exist here"),
    ("Healey~2", "`~` after a word means its inflected forms"),
    ("Healey~0.8", "`~` after a word means its inflected forms"),
    ("\"John Healey\"~", "`~` after a phrase must be followed by a number"),
    ("\"Healey\"~3", "needs at least two words"),
    ("He~", "`He~` is too short"),
    ("case:Healey~", "`case:` cannot be combined with a prefix `*` or inflection `~`"),
    ("-Lammy", "query is broad"),
    ("/x*/", "query is broad"),
    ("/.*/", "query is broad"),
    ("/^/", "query is broad"),
    ("/x*/ OR Healey", "query is broad"),
    ("a NEAR/99999999999 b", "the distance `99999999999` is too large"),
    ("\"a b\"~99999999999", "is too large"),
    ("/Healey/ NEAR/3 Hegseth", "a regex cannot be one"),
    ("title:Healey NEAR/3 content:Hegseth", "NEAR needs both sides in the same field"),
    ("title:Healey NEAR/3 (summary:a OR content:b)", "NEAR needs both sides in the same field"),
    ("lang:english", "`lang:english` is not a language tag — did you mean `lang:en`?"),
    ("lang:Ukrainian", "did you mean `lang:uk`?"),
    ("lang:e", "is not a language tag"),
];

#[test]
fn query_errors() {
    let mut failures = Vec::new();
    for (query, want) in QUERY_ERRORS {
        match set_for(query, false) {
            Ok(_) => failures.push(format!("{query:?}: accepted, want error {want:?}")),
            Err(e) if !e.contains(want) => {
                failures.push(format!("{query:?}: want {want:?} in:\n{e}"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Not broad: a required positive term.
    assert!(set_for("Healey AND NOT Hegseth", false).is_ok());
    assert!(set_for("Healey AND /x*/", false).is_ok());
    assert!(set_for("/x+/", false).is_ok());
    assert!(set_for("title:Healey NEAR/3 text:Hegseth", false).is_ok());
    assert!(set_for("lang:en-GB Healey", false).is_ok());
}

fn load_err(files: &[(&str, &str)]) -> String {
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_string()))
        .collect();
    match RuleSet::from_sources(&sources) {
        Ok(_) => String::new(),
        Err(d) => d.to_string(),
    }
}

#[test]
fn diagnostics_name_file_line_column_rule_and_hint() {
    let text = "[lists]\nhegseth = ['Hegseth']\n\n[[rule]]\nid = \"talks\"\nquery = 'Healey NEAR/20 @hegsth'\n";
    let err = load_err(&[("rules/x.toml", text)]);
    let want = "error: rules/x.toml:6:25: rule talks: unknown list @hegsth — did you mean @hegseth?\n  |\n6 | query = 'Healey NEAR/20 @hegsth'\n  |                         ^\n  = hint: lists are defined under [lists] in any rule file";
    assert_eq!(err, want);
}

#[rustfmt::skip]
const FILE_ERRORS: &[(&str, &str)] = &[
    ("[[rule]]\nid = \"a\"\nquery = 'x'\nprio = \"alert\"\n", "f.toml:4:1: rule a: unknown key `prio`"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\npriorty = \"alert\"\n", "did you mean `priority`?"),
    ("[[rule]]\nid = \"A b\"\nquery = 'x'\n", "f.toml:2:6: rule A b: bad rule id"),
    ("[[rule]]\nquery = 'x'\n", "rule has no `id`"),
    ("[[rule]]\nid = \"a\"\n", "f.toml:1:1: rule a: rule has no `query`"),
    ("[[rule]]\nid = \"a\"\nquery = ''\n", "empty query"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\npriority = \"urgent\"\n", "f.toml:4:12: rule a: bad priority"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\n[[rule]]\nid = \"a\"\nquery = 'y'\n", "duplicate rule id `a` (first defined at f.toml:2)"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\nmax_age = \"soon\"\n", "invalid duration"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\nexamples.maybe = [\"x\"]\n", "unknown key `maybe`"),
    ("[lists]\na = ['@b']\nb = ['@a']\n", "list cycle: @a → @b → @a"),
    ("[lists]\na = ['x', '@a']\n", "list cycle: @a → @a"),
    ("[lists]\na = ['@nope']\n", "in list @a: unknown list @nope"),
    ("[lists]\nBad = ['x']\n", "bad list name `Bad`"),
    ("[lists]\na = ['(x']\n", "in list @a: unbalanced parentheses"),
    ("[lists]\na = ['/(/']\n", "bad regex"),
    ("[[rule]]\nid = \"a\"\nquery = 'x'\n[oops]\n", "unknown key `oops`"),
    ("[[rule]\nid = \"a\"\n", "f.toml:1:"),
    ("[[rule]]\nid = \"a\"\nquery = '''\nHealey AND\n  (Hegseth OR Lammy'''\n", "f.toml:5:3: rule a: unbalanced parentheses"),
];

#[test]
fn file_errors() {
    let mut failures = Vec::new();
    for (text, want) in FILE_ERRORS {
        let err = load_err(&[("f.toml", text)]);
        if !err.contains(want) {
            failures.push(format!("{text:?}: want {want:?} in:\n{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_problems_at_once_and_lists_are_global() {
    let a = "[lists]\nx = ['one']\n[[rule]]\nid = \"r1\"\nquery = '@y'\n";
    let b = "[lists]\ny = ['two']\nx = ['dup']\n[[rule]]\nid = \"r2\"\nquery = '(oops'\n[[rule]]\nid = \"r3\"\nquery = 'a'\nbogus = 1\n";
    let err = load_err(&[("a.toml", a), ("b.toml", b)]);
    assert!(!err.contains("unknown list @y"), "{err}");
    for want in [
        "b.toml:3:1: duplicate list `x` (first defined at a.toml:2)",
        "b.toml:6:10: rule r2: unbalanced",
        "b.toml:10:1: rule r3: unknown key `bogus`",
    ] {
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

fn dated(days_ago: i64, now: chrono::DateTime<Utc>) -> Article {
    Article {
        title: "Healey speaks".to_string(),
        published: Some(now - chrono::Duration::days(days_ago)),
        ..Article::default()
    }
}

#[test]
fn feeds_and_max_age_filter_rules() {
    let text = "[[rule]]\nid = \"uk\"\nquery = 'Healey'\nfeeds = [\"tag:uk-press\", \"wire\"]\n[[rule]]\nid = \"fresh\"\nquery = 'Healey'\nmax_age = \"48h\"\n";
    let set = RuleSet::from_sources(&[(PathBuf::from("f.toml"), text.to_string())])
        .expect("the rule file parses");
    let now = Utc
        .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let ids = |a: &Article, f: &FeedMeta| -> Vec<String> {
        set.match_article(a, f, now)
            .iter()
            .map(|m| set.rules()[m.rule].id.clone())
            .collect()
    };
    let tagged = FeedMeta {
        name: "guardian".into(),
        title: None,
        tags: vec!["uk-press".into()],
    };
    let wire = FeedMeta {
        name: "wire".into(),
        ..FeedMeta::default()
    };
    let other = FeedMeta {
        name: "other".into(),
        ..FeedMeta::default()
    };
    assert_eq!(ids(&dated(1, now), &tagged), ["uk", "fresh"]);
    assert_eq!(ids(&dated(1, now), &wire), ["uk", "fresh"]);
    assert_eq!(ids(&dated(1, now), &other), ["fresh"]);
    assert_eq!(ids(&dated(3, now), &other), Vec::<String>::new());
    // Undated articles are never "too old".
    let undated = Article {
        title: "Healey".into(),
        ..Article::default()
    };
    assert_eq!(ids(&undated, &other), ["fresh"]);
}

#[test]
fn explain_shows_each_node_with_its_value_and_spans() {
    let set = set_for("@healey NEAR/3 Hegseth AND NOT Lammy", false).expect("the query compiles");
    let a = Article {
        content: "John Healey met Hegseth.".into(),
        ..Article::default()
    };
    let e = set.explain(0, &a, &FeedMeta::default());
    assert!(e.matched);
    let want = "rule r matches
true  AND
  true  NEAR/3  [content 0..11 \"John Healey\"]  [content 5..11 \"Healey\"]  [content 16..23 \"Hegseth\"]
    true  @healey
      true  \"John Healey\"  [content 0..11 \"John Healey\"]
      true  Healey  [content 5..11 \"Healey\"]
    true  Hegseth  [content 16..23 \"Hegseth\"]
  true  NOT
    false Lammy
";
    assert_eq!(e.to_string(), want);
}

#[test]
fn spans_point_into_the_original_text() {
    let set = set_for("Macron NEAR/3 Hegseth", false).expect("the query compiles");
    let text = "« Macrón » a rencontré Heg\u{200B}seth’s";
    let (a, f) = article(text);
    let m = set
        .match_article(&a, &f, newswatch::clock::now())
        .pop()
        .expect("the rule matches");
    for h in &m.hits {
        assert_eq!(h.field, Field::Content);
        assert_eq!(&text[h.start..h.end], h.text);
    }
    let texts: Vec<&str> = m.hits.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(texts, ["Macrón", "Heg\u{200B}seth"]);
}

#[test]
fn overlapping_literals_of_different_rules_all_fire() {
    let text = "[[rule]]\nid = \"surname\"\nquery = 'Healey'\n[[rule]]\nid = \"full\"\nquery = '\"John Healey\"'\n[[rule]]\nid = \"longer\"\nquery = '\"Healey said\"'\n";
    let set = RuleSet::from_sources(&[(PathBuf::from("f.toml"), text.to_string())])
        .expect("the rule file parses");
    let a = Article {
        content: "John Healey said".into(),
        ..Article::default()
    };
    let got: Vec<usize> = set
        .match_article(&a, &FeedMeta::default(), newswatch::clock::now())
        .iter()
        .map(|m| m.rule)
        .collect();
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn rule_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
}

#[test]
fn warnings_for_lower_case_operators_and_rules_without_examples() {
    let text = "[[rule]]\nid = \"a\"\nquery = 'Healey and Hegseth OR Lammy near Starmer'\nexamples.match = [\"Healey and Hegseth\"]\n\n[[rule]]\nid = \"b\"\nquery = 'Healey \"and\" Hegseth AND NOT (not)'\n";
    let set = RuleSet::from_sources(&[(PathBuf::from("w.toml"), text.to_string())])
        .unwrap_or_else(|d| panic!("warnings do not stop the load: {d}"));
    let got: Vec<String> = set
        .warnings()
        .iter()
        .map(|w| w.as_warning().to_string())
        .collect();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(
        got[0],
        "w.toml:3:17: warning: rule a: `and` is searched as a word, not as the operator AND\n  |\n3 | query = 'Healey and Hegseth OR Lammy near Starmer'\n  |                 ^\n  = hint: write `AND` for the operator; to search the word on purpose, quote it (`\"and\"`)"
    );
    assert!(
        got[1].starts_with(
            "w.toml:3:38: warning: rule a: `near` is searched as a word, not as the operator NEAR"
        ),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("w.toml:6:1: warning: rule b: rule has no examples"),
        "{}",
        got[2]
    );
}
