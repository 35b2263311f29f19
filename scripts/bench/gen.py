"""Deterministic generator for the end-to-end benchmark: news feeds, newswatch rules, peer filters.

Everything here is a pure function of (seed, indices): the same seed gives byte-identical feeds and
rules on every machine. The text is synthetic but shaped like wire copy (politics, defence, economy,
sport) so tokenisers, HTML stripping and the matcher do realistic work. A fraction of items mention
the mission's actors and topics (Healey, Hegseth, Zelenskyy, the minerals deal, a US backstop).

CLI:  gen.py feeds --out DIR --feeds N --items M [--seed S]
      gen.py rules --out DIR --rules N [--seed S] [--list-prefix P]
"""

import argparse
import hashlib
import html
import json
import os
import random
import sys
import time
from email.utils import formatdate

# ---- vocabulary ------------------------------------------------------------------------------

FIRST = """Aldana Boris Carmen Dario Elena Farid Greta Hamid Ingrid Jonas Katya Lars Marta Nikos Olga
Pavel Quentin Rosa Stefan Tamara Ulrich Vera Wiktor Xenia Yusuf Zofia Anders Bianca Cyril Dorota
Emil Fatima Gideon Helena Ivo Jana Kemal Lucia Milan Nadia Oskar Petra Radek Sanna Tomas Ursula
Viktor Wanda Yannick Zuzana""".split()
LAST = """Korvic Lindqvist Moreau Novak Petrenko Quiroga Rasmussen Szabo Tkachenko Ueda Varga Weber
Xhaka Yilmaz Zielinski Abbott Brandt Castell Dimitrov Eriksen Fontaine Galloway Hartmann Ivanova
Jovanovic Kowalski Lombardi Marchetti Nieminen Oyelaran Pires Quist Romero Sandoval Toivonen
Urbanek Vasquez Whitlock Yamada Zeller Almeida Bergstrom Cernik Dufresne Esposito Ferreira Grabowski
Hollis Iversen Jansen Kaminski Laurent Mikkelsen Nowicki Olsen Pedersen Reyes Sorensen Tanaka
Vukovic""".split()
# Surnames of the people the rules watch: rare in the copy, so each person rule matches few items.
WATCHED = """Abramczyk Bakalov Chaudhry Drozdov Eckhardt Fitzgerald Gorecki Halvorsen Ignatiev Jablonski
Kasprzak Leclercq Mazurek Nakamura Ostrowski Papadakis Quartey Rutkowski Stavridis Thorsen Uhlig
Valente Wojcik Yanev Zakharov Arnesen Bertolini Ciobanu Dragomir Eliasson Fagerlund Gutierrez
Hadzic Ilves Jurkovic Kuznetsov Lindholm Magnusson Nordahl Oksanen Pietila Radovic Sarkissian
Tamminen Ustinov Valdivia Wennerberg Yeremenko Zamora Aksoy Bogdanovic Constantin Daskalov
Ekstrom Falk Gunnarsson Hovland Ionescu Jelinek Kraljevic""".split()
ROLES = """Minister Senator Governor Ambassador General Admiral Mayor Commissioner Chancellor
spokeswoman spokesman envoy adviser economist analyst coach striker captain""".split()
COUNTRIES = """Ukraine Russia Poland France Germany Britain Italy Spain Romania Moldova Finland Sweden
Norway Estonia Latvia Lithuania Turkey Georgia Hungary Slovakia Czechia Canada Japan Brazil India""".split()
CITIES = """Kyiv Kharkiv Odesa Lviv Dnipro Warsaw Paris Berlin London Rome Madrid Bucharest Helsinki
Stockholm Oslo Tallinn Riga Vilnius Ankara Brussels Geneva Vienna Washington Ottawa Tokyo Munich
Gdansk Krakow Marseille Lyon Hamburg Leeds Manchester Glasgow Naples Porto Valencia""".split()
ORGS = """NATO Pentagon Kremlin Bundestag Treasury IMF OPEC Eurostat Europol UEFA FIFA Reuters
Parliament Senate Commission Council Ministry Bundeswehr Rheinmetall Airbus Siemens Naftogaz""".split()
TEAMS = """Dynamo Shakhtar Legia Lech Slavia Sparta Ajax Benfica Celtic Rangers Olympiacos
Galatasaray Fenerbahce Ferencvaros Partizan Dinamo Sturm Rapid Salzburg""".split()
COMMODITIES = """lithium titanium graphite uranium gallium grain wheat steel gas oil copper nickel""".split()
ADJ = """fragile cautious sweeping modest landmark disputed tentative bold delayed revised narrow
broad provisional binding costly rapid""".split()
VERB_SAY = "said told warned argued insisted claimed noted conceded suggested confirmed".split()

MISSION_ACTORS = [
    "John Healey", "Healey", "Pete Hegseth", "Hegseth", "Volodymyr Zelenskyy", "Zelenskyy",
    "Zelensky", "Keir Starmer", "Emmanuel Macron", "Marco Rubio", "Steve Witkoff", "David Lammy",
    "Mark Rutte", "Kaja Kallas",
]
MISSION_TOPICS = [
    "the minerals deal", "a US backstop", "the security backstop", "a ceasefire", "the coalition of the willing",
    "a reassurance force", "security guarantees", "the peace plan", "a cease-fire", "the rare earths agreement",
]

SECTIONS = {
    "politics": [
        "{person} {say} that the {adj} coalition in {country} would survive the vote.",
        "Lawmakers in {city} debated the {adj} budget as {person} faced questions over spending.",
        "The {org} {say} talks with {country} had been {adj} but constructive.",
        "Opposition leaders accused {person} of stalling the reform until after the election.",
        "A poll published on {day} put support for the government at {pct} percent.",
        "{person}, the {role}, met counterparts from {country} in {city} on {day}.",
        "Officials in {city} {say} the {adj} agreement still needed approval from the {org}.",
    ],
    "defence": [
        "The {org} {say} {num} additional air-defence systems would reach {country} by spring.",
        "{person} {say} the {adj} deployment near {city} was a response to drone attacks.",
        "Defence ministers from {num} countries gathered in {city} to discuss ammunition output.",
        "A {adj} procurement plan would double artillery production in {country}, {person} {say}.",
        "Satellite images showed new fortifications along the border east of {city}.",
        "The {role} {person} visited troops stationed outside {city} on {day}.",
        "Analysts {say} the {org} was short of {num} brigades for its eastern flank.",
    ],
    "economy": [
        "Inflation in {country} slowed to {pct} percent in {month}, the {org} {say}.",
        "Prices of {commodity} rose {pct} percent after exports from {country} were halted.",
        "{person}, an {role} at a bank in {city}, {say} rates would stay on hold until {month}.",
        "The {adj} trade deal would cut tariffs on {commodity} from {country}, officials {say}.",
        "Shares in {org} fell {pct} percent after the {adj} forecast for {month}.",
        "Investors in {city} bet on a {adj} recovery in {commodity} demand.",
        "Output of {commodity} in {country} reached a {num}-year high, data showed on {day}.",
    ],
    "sport": [
        "{team} beat {team2} {score} in {city} on {day}, with {person} scoring twice.",
        "The {role} {person} {say} the squad was ready for the {adj} run-in.",
        "{team} confirmed the signing of {person} from {team2} for an undisclosed fee.",
        "A late goal from {person} earned {team} a draw against {team2} in {city}.",
        "{org} opened disciplinary proceedings against {team} after crowd trouble in {city}.",
        "Tickets for the final in {city} sold out within {num} minutes, organisers {say}.",
    ],
}
MISSION_SENTENCES = [
    "{actor} {say} that {topic} was close after talks in {city}.",
    "In {city}, {actor} and {actor2} discussed {topic} and the next steps for Ukraine.",
    "Officials {say} {topic} would depend on {actor}, who met {actor2} on {day}.",
    "{actor} rejected reports that {topic} had stalled, {say} a spokesman.",
    "The talks between {actor} and {actor2} in {city} focused on {topic}.",
]
TITLES = {
    "politics": ["{person} faces {adj} vote in {city}", "{country} coalition talks enter {adj} phase",
                 "{org} warns over {adj} reform plan"],
    "defence": ["{country} to receive {num} air-defence systems", "{person} defends {adj} deployment",
                "{org} weighs {adj} ammunition plan"],
    "economy": ["{commodity} prices jump as {country} halts exports", "Inflation in {country} slows to {pct}%",
                "{org} shares slide on {adj} outlook"],
    "sport": ["{team} {score} {team2}: {person} on target", "{team} sign {person}", "{team2} held by {team}"],
}
MISSION_TITLES = ["{actor} and {actor2} discuss {topic}", "{actor}: {topic} within reach",
                  "Talks on {topic} resume in {city}"]
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# Share of items that carry mission sentences; share of feeds with full-text content:encoded.
MISSION_SHARE = 0.08
# Share of person mentions that name a watched person.
WATCHED_SHARE = 0.03
CONTENT_SHARE = 0.25


def person(rng):
    last = rng.choice(WATCHED) if rng.random() < WATCHED_SHARE else rng.choice(LAST)
    return f"{rng.choice(FIRST)} {last}"


def watched_person(rng):
    return f"{rng.choice(FIRST)} {rng.choice(WATCHED)}"


def fill(rng, template):
    slots = {
        "person": person(rng), "role": rng.choice(ROLES), "country": rng.choice(COUNTRIES),
        "city": rng.choice(CITIES), "org": rng.choice(ORGS), "adj": rng.choice(ADJ),
        "say": rng.choice(VERB_SAY), "num": str(rng.randint(2, 90)), "pct": f"{rng.uniform(0.2, 12):.1f}",
        "day": rng.choice(DAYS), "month": rng.choice(MONTHS), "commodity": rng.choice(COMMODITIES),
        "team": rng.choice(TEAMS), "team2": rng.choice(TEAMS), "score": f"{rng.randint(0, 4)}-{rng.randint(0, 3)}",
        "actor": rng.choice(MISSION_ACTORS), "actor2": rng.choice(MISSION_ACTORS),
        "topic": rng.choice(MISSION_TOPICS),
    }
    s = template.format(**slots)
    return s[0].upper() + s[1:]


def item_rng(seed, feed, n):
    # One independent stream per (feed, item): any item can be rebuilt without the others.
    h = hashlib.blake2b(f"{seed}:{feed}:{n}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "little"))


def make_item(seed, feed, n, with_content):
    """The n-th item ever published by feed `feed` (n grows with time)."""
    rng = item_rng(seed, feed, n)
    section = rng.choice(list(SECTIONS))
    mission = rng.random() < MISSION_SHARE
    title = fill(rng, rng.choice(MISSION_TITLES if mission else TITLES[section]))
    sentences = [fill(rng, rng.choice(SECTIONS[section])) for _ in range(rng.randint(3, 6))]
    if mission:
        for _ in range(rng.randint(1, 2)):
            sentences.insert(rng.randint(0, len(sentences)), fill(rng, rng.choice(MISSION_SENTENCES)))
    # Feeds with full text carry a two-sentence teaser; the others carry the whole story inline.
    summary = " ".join(sentences[:2] if with_content else sentences)
    body = sentences
    if with_content:
        body = sentences + [fill(rng, rng.choice(SECTIONS[section])) for _ in range(rng.randint(5, 10))]
    return {
        "n": n, "section": section, "mission": mission, "title": title, "summary": summary,
        "author": person(rng), "paragraphs": body,
    }


def feed_has_content(seed, feed):
    return item_rng(seed, feed, -1).random() < CONTENT_SHARE


def render_feed(seed, feed, items, version, base_time, host="http://127.0.0.1"):
    """RSS 2.0 for feed `feed` at `version`: `items` items, newest first, 5 new items per version.

    Item n is published at base_time - (hours back); items of version v>0 are dated at base_time + v
    minutes so they are newer than everything before them.
    """
    with_content = feed_has_content(seed, feed)
    newest = version * 5 + items - 1
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n',
        f"<title>Bench Wire {feed:05d}</title>\n<link>{host}/site/{feed}</link>\n",
        f"<description>Synthetic news desk {feed:05d}</description>\n<language>en-gb</language>\n",
    ]
    for n in range(newest, newest - items, -1):
        it = make_item(seed, feed, n, with_content)
        if n >= items:  # published by a later version
            ts = base_time + 60 * (n - items + 1)
        else:
            # Spread the first items over the 40 hours before base_time (inside a 48 h window).
            ts = base_time - (items - n) * (40 * 3600 // max(items, 1))
        link = f"{host}/article/{feed}/{n}"
        out.append("<item>\n")
        out.append(f"<title>{html.escape(it['title'], quote=False)}</title>\n")
        out.append(f"<link>{link}</link>\n<guid isPermaLink=\"true\">{link}</guid>\n")
        out.append(f"<pubDate>{formatdate(ts, usegmt=True)}</pubDate>\n")
        out.append(f"<dc:creator>{it['author']}</dc:creator>\n<category>{it['section']}</category>\n")
        summary_html = f"<p>{html.escape(it['summary'], quote=False)}</p>"
        out.append(f"<description>{html.escape(summary_html, quote=False)}</description>\n")
        if with_content:
            paras = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in it["paragraphs"])
            out.append(f"<content:encoded><![CDATA[<div class=\"story-body\">{paras}</div>]]></content:encoded>\n")
        out.append("</item>\n")
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode("utf-8")


PROBE_WORD = "Latprobe"


def render_probe_item(seed, feed, seq, published):
    """The latency benchmark's probe item `seq`: wire copy like any other item, its title starting
    with PROBE_WORD and the zero-padded sequence number (what the probe rule and the SMTP sink look
    for), published at unix time `published`."""
    it = make_item(seed, feed, 1_000_000 + seq, False)
    link = f"http://127.0.0.1/probe/{seq}"
    title = f"{PROBE_WORD} {seq:06d}: {it['title']}"
    summary_html = f"<p>{html.escape(it['summary'], quote=False)}</p>"
    return (f"<item>\n<title>{html.escape(title, quote=False)}</title>\n"
            f"<link>{link}</link>\n<guid isPermaLink=\"true\">{link}</guid>\n"
            f"<pubDate>{formatdate(published, usegmt=True)}</pubDate>\n"
            f"<category>{it['section']}</category>\n"
            f"<description>{html.escape(summary_html, quote=False)}</description>\n</item>\n")


def write_feeds(out_dir, feeds, items, seed, base_time):
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for f in range(1, feeds + 1):
        data = render_feed(seed, f, items, 0, base_time)
        total += len(data)
        with open(os.path.join(out_dir, f"f{f:05d}.xml"), "wb") as fh:
            fh.write(data)
    meta = {"feeds": feeds, "items": items, "seed": seed, "base_time": base_time, "bytes": total}
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh)
    return meta


# ---- rules -----------------------------------------------------------------------------------
# A query is a small tree: ("term", s) ("phrase", s) ("prefix", s) ("case", s) ("list", name)
# ("and", [q]) ("or", [q]) ("not", q) ("near", a, b, n) ("regex", pattern, ignore_case).
# It renders to newswatch's syntax and compiles to the peer's Python predicate from the same tree.

MISSION_LISTS = {
    "healey": ['"John Healey"', "Healey"],
    "hegseth": ['"Pete Hegseth"', "Hegseth"],
    "zelenskyy": ["Zelenskyy", "Zelensky", "Zelenskiy", "Zelenskyi", "Selenskyj"],
    "minerals": ['"minerals deal"', '"rare earths agreement"', '"minerals agreement"'],
    "backstop": ['"US backstop"', '"security backstop"', "backstop"],
    "ceasefire": ["ceasefire", '"cease fire"'],
}


def list_terms(name):
    """The list's entries as query trees (entries are plain terms or quoted phrases)."""
    out = []
    for e in MISSION_LISTS.get(name, []):
        out.append(("phrase", e.strip('"')) if e.startswith('"') else ("term", e))
    return out


def lit(rng, pool):
    s = rng.choice(pool)
    return ("phrase", s) if " " in s else ("term", s)


def make_rule(rng, i, regex_budget):
    people = [watched_person(rng) for _ in range(3)]
    kind = i % 10
    if i < 6:  # the mission rules, as an analyst would write them
        q = [
            ("near", ("list", "healey"), ("list", "hegseth"), 20),
            ("and", [("list", "zelenskyy"), ("list", "minerals")]),
            ("and", [("list", "backstop"), ("or", [("term", "US"), ("term", "Washington")])]),
            ("and", [("list", "ceasefire"), ("term", "Ukraine"), ("not", ("term", "football"))]),
            ("near", ("phrase", "coalition of the willing"), ("or", [("term", "Starmer"), ("term", "Macron")]), 15),
            ("and", [("prefix", "reassur"), ("term", "force")]),
        ][i]
    elif regex_budget[0] > 0 and kind == 9 and i % 100 == 9:
        regex_budget[0] -= 1
        last = rng.choice(WATCHED)
        q = ("and", [("regex", rf"{last}\s+(said|told|warned)", False), ("term", rng.choice(COUNTRIES))])
    elif kind in (0, 1):
        q = ("phrase", people[0])
    elif kind == 2:
        q = ("and", [("phrase", people[0]), ("or", [("term", rng.choice(CITIES)), ("term", rng.choice(CITIES))])])
    elif kind == 3:
        q = ("near", ("phrase", people[0]), ("term", rng.choice(COMMODITIES + COUNTRIES)), rng.choice([3, 5, 10]))
    elif kind == 4:
        q = ("and", [("term", rng.choice(COUNTRIES)), ("term", rng.choice(COMMODITIES)),
                     ("term", rng.choice(CITIES)), ("not", ("term", rng.choice(TEAMS)))])
    elif kind == 5:
        q = ("or", [("phrase", people[0]), ("phrase", people[1]), ("phrase", people[2])])
    elif kind == 6:
        q = ("and", [("case", rng.choice(["NATO", "IMF", "OPEC", "UEFA", "FIFA"])), ("term", rng.choice(CITIES)),
                     ("term", rng.choice(LAST))])
    elif kind == 7:
        q = ("and", [("prefix", rng.choice(WATCHED)[:5].lower()), ("term", rng.choice(COUNTRIES)),
                     ("term", rng.choice(ADJ))])
    elif kind == 8:
        q = ("and", [("list", rng.choice(list(MISSION_LISTS))), ("phrase", people[0])])
    else:
        a, b = rng.sample(TEAMS, 2)
        q = ("and", [("near", ("term", a), ("term", b), 4), ("term", rng.choice(WATCHED))])
    return {"id": f"r{i:05d}", "query": q, "priority": "digest"}


def render_query(q, top=True, prefix=""):
    k = q[0]
    if k == "term":
        return q[1]
    if k == "phrase":
        return f'"{q[1]}"'
    if k == "prefix":
        return f"{q[1]}*"
    if k == "case":
        return f"case:{q[1]}"
    if k == "list":
        return f"@{prefix}{q[1]}"
    if k == "regex":
        return f"/{q[1]}/" + ("i" if q[2] else "")
    if k == "not":
        return f"NOT {render_query(q[1], False, prefix)}"
    if k == "near":
        return f"{render_query(q[1], False, prefix)} NEAR/{q[3]} {render_query(q[2], False, prefix)}"
    if k in ("and", "or"):
        sep = " AND " if k == "and" else " OR "
        s = sep.join(render_query(x, False, prefix) for x in q[1])
        return s if top else f"({s})"
    raise ValueError(k)


def toml_str(s):
    return "'" + s + "'" if "'" not in s else json.dumps(s)


def write_rules(out_dir, n, seed, regexes=8, list_prefix=""):
    """newswatch rule file (rules-N.toml) and the peer's filter (rules-N.json) from the same trees.
    `list_prefix` renames the lists (and their uses), so the file loads beside the shipped rules,
    whose lists have the same names (the 100,000-rule bench, issue 22)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(f"rules:{seed}")
    budget = [regexes]
    rules = [make_rule(rng, i, budget) for i in range(n)]
    lines = [f"# {n} generated benchmark rules (scripts/bench/gen.py, seed {seed}). Do not edit.\n", "[lists]\n"]
    for name, entries in MISSION_LISTS.items():
        lines.append(f"{list_prefix}{name} = [{', '.join(toml_str(e) for e in entries)}]\n")
    for r in rules:
        query = render_query(r["query"], prefix=list_prefix)
        lines.append(f'\n[[rule]]\nid = "{r["id"]}"\nquery = {toml_str(query)}\n')
    suffix = f"-{list_prefix.rstrip('_')}" if list_prefix else ""
    toml_path = os.path.join(out_dir, f"rules-{n}{suffix}.toml")
    with open(toml_path, "w") as fh:
        fh.writelines(lines)
    json_path = os.path.join(out_dir, f"rules-{n}{suffix}.json")
    with open(json_path, "w") as fh:
        json.dump({"lists": {k: [list(t) for t in list_terms(k)] for k in MISSION_LISTS},
                   "rules": [{"id": r["id"], "query": r["query"]} for r in rules]}, fh)
    return toml_path, json_path


def main(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("feeds")
    f.add_argument("--out", required=True)
    f.add_argument("--feeds", type=int, default=200)
    f.add_argument("--items", type=int, default=50)
    f.add_argument("--seed", type=int, default=7)
    f.add_argument("--base-time", type=int, default=0, help="unix time of version 0; default now")
    r = sub.add_parser("rules")
    r.add_argument("--out", required=True)
    r.add_argument("--rules", type=int, default=1000)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--regexes", type=int, default=8)
    r.add_argument("--list-prefix", default="", help="prefix for list names (to load beside rules/*.toml)")
    a = ap.parse_args(argv)
    if a.cmd == "feeds":
        t = time.time()
        meta = write_feeds(a.out, a.feeds, a.items, a.seed, a.base_time or int(t))
        print(f"gen: {meta['feeds']} feeds x {meta['items']} items, {meta['bytes'] / 1e6:.1f} MB "
              f"in {time.time() - t:.1f}s -> {a.out}")
    else:
        paths = write_rules(a.out, a.rules, a.seed, a.regexes, a.list_prefix)
        print(f"gen: {a.rules} rules -> {paths[0]}, {paths[1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
