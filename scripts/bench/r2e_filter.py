"""rss2email `post-process` hook: the benchmark's rules as a keyword filter (rss2email has no filter).

rss2email calls `keep(feed=, parsed=, entry=, guid=, message=)` for every new entry and drops the
entry when it returns None (rss2email 3.14, feed.py `_process`). The rules come from the JSON that
gen.py writes next to the newswatch rule file (path in $BENCH_R2E_RULES), from the same query trees,
compiled once at import into Python predicates, the way a user of rss2email would write such a hook:
lower-cased word sets for terms, padded substring search for phrases, `re` for regexes. NEAR/n is
approximated by AND (both sides present), which only makes the peer's job easier. An entry is kept
when any rule matches; non-matching entries are checked against every rule.
"""

import json
import os
import re

_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^>]+>")


def _compile(q, lists):
    k = q[0]
    if k == "term":
        w = q[1].lower()
        return lambda d: w in d["words"]
    if k == "phrase":
        p = " " + " ".join(_WORD.findall(q[1].lower())) + " "
        return lambda d: p in d["joined"]
    if k == "prefix":
        p = q[1].lower()
        return lambda d: any(w.startswith(p) for w in d["words"])
    if k == "case":
        w = q[1]
        return lambda d: w in d["cased"]
    if k == "list":
        return _compile(("or", [tuple(t) for t in lists[q[1]]]), lists)
    if k == "regex":
        r = re.compile(q[1], re.I if q[2] else 0)
        return lambda d: r.search(d["raw"]) is not None
    if k == "not":
        f = _compile(q[1], lists)
        return lambda d: not f(d)
    if k == "near":
        a, b = _compile(q[1], lists), _compile(q[2], lists)
        return lambda d: a(d) and b(d)
    if k == "and":
        fs = [_compile(x, lists) for x in q[1]]
        return lambda d: all(f(d) for f in fs)
    if k == "or":
        fs = [_compile(x, lists) for x in q[1]]
        return lambda d: any(f(d) for f in fs)
    raise ValueError(k)


def _load():
    path = os.environ.get("BENCH_R2E_RULES")
    if not path:
        return []
    with open(path) as fh:
        spec = json.load(fh)
    return [_compile(r["query"], spec["lists"]) for r in spec["rules"]]


RULES = _load()


def _text(entry):
    parts = [entry.get("title", ""), entry.get("summary", "")]
    for c in entry.get("content", []) or []:
        parts.append(c.get("value", ""))
    return _TAG.sub(" ", "\n".join(parts))


def doc(text):
    lower = text.lower()
    words_list = _WORD.findall(lower)
    return {
        "raw": text,
        "words": set(words_list),
        "joined": " " + " ".join(words_list) + " ",
        "cased": set(_WORD.findall(text)),
    }


def matches(text):
    d = doc(text)
    return any(r(d) for r in RULES)


def keep(feed=None, parsed=None, entry=None, guid=None, message=None, **kwargs):
    if not RULES:
        return message
    return message if matches(_text(entry)) else None
