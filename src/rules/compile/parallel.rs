//! Compiling many queries on every core (issue 22): each thread compiles a contiguous chunk with
//! a builder of its own, then the chunks' literals and regexes are interned into the one builder
//! in chunk order, so every id, automaton and error is the one a single thread would give.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Builder, CompileError, MAX_REGEX_STATES_TOTAL, MAX_REGEXES, Node};
use crate::rules::par;
use crate::rules::syntax::Expr;

impl Builder {
    /// Compiles every query, in order, as `compile` on each would, on every core: each thread
    /// compiles a contiguous chunk with a builder of its own, and the chunks' literals and
    /// regexes are then interned here in chunk order, so every id is the one a single thread
    /// would have given. When any query fails, or the regex budgets (which depend on the
    /// queries before) are exceeded together, it compiles them again on one thread so every
    /// error is the one a single thread reports.
    pub fn compile_all(&mut self, queries: &[&Expr]) -> Vec<Result<Node, Vec<CompileError>>> {
        if par::threads() < 2 || queries.len() < par::MIN_PARALLEL {
            return queries.iter().map(|e| self.compile(e)).collect();
        }
        let lists = &self.lists;
        let chunks = par::chunked(queries, |chunk| {
            let mut local = Builder::new(Arc::clone(lists));
            let nodes: Result<Vec<Node>, ()> = chunk
                .iter()
                .map(|e| local.compile(e).map_err(drop))
                .collect();
            (local, nodes)
        });
        let mut keys: HashSet<&(String, String)> = self.regex_ids.keys().collect();
        let mut states = self.regex_states;
        for (local, _) in &chunks {
            for (key, &id) in &local.regex_ids {
                if keys.insert(key) {
                    states += local.regex_costs[id as usize];
                }
            }
        }
        let within = keys.len() <= MAX_REGEXES && states <= MAX_REGEX_STATES_TOTAL;
        drop(keys);
        if !within || chunks.iter().any(|(_, nodes)| nodes.is_err()) {
            return queries.iter().map(|e| self.compile(e)).collect();
        }
        let mut out = Vec::with_capacity(queries.len());
        for (local, nodes) in chunks {
            let (lits, res) = self.absorb(local);
            for mut node in nodes.unwrap_or_default() {
                node.renumber(&lits, &res);
                out.push(Ok(node));
            }
        }
        out
    }

    /// Interns `local`'s literals and regexes here, in `local`'s order; returns, for each of
    /// its literal and regex ids, the id here.
    fn absorb(&mut self, local: Builder) -> (Vec<u32>, Vec<u32>) {
        let lits = local
            .lits
            .into_iter()
            .map(|l| self.intern(l.pattern, l.ntoks))
            .collect();
        let mut keys: Vec<Option<(String, String)>> = vec![None; local.regexes.len()];
        for (key, id) in local.regex_ids {
            if let Some(slot) = keys.get_mut(id as usize) {
                *slot = Some(key);
            }
        }
        let mut res = Vec::with_capacity(keys.len());
        for ((re, cost), key) in local.regexes.into_iter().zip(local.regex_costs).zip(keys) {
            let next = u32::try_from(self.regexes.len()).unwrap_or(u32::MAX);
            // Every regex a builder holds is filed under its key.
            let Some(key) = key else {
                res.push(next);
                continue;
            };
            let global = *self.regex_ids.entry(key).or_insert_with(|| {
                self.regexes.push(re);
                self.regex_costs.push(cost);
                self.regex_states += cost;
                next
            });
            res.push(global);
        }
        (lits, res)
    }
}

impl Node {
    /// Replaces each literal id `l` by `lits[l]` and each regex id `r` by `res[r]`: a node
    /// compiled by another builder, moved into this one's numbering (`Builder::absorb`).
    fn renumber(&mut self, lits: &[u32], res: &[u32]) {
        match self {
            Node::Lit { lit, .. } => *lit = lits.get(*lit as usize).copied().unwrap_or(*lit),
            Node::Regex { re, .. } => *re = res.get(*re as usize).copied().unwrap_or(*re),
            Node::Url { .. } | Node::Lang { .. } => {}
            Node::And(items) | Node::Or(items) => {
                items.iter_mut().for_each(|n| n.renumber(lits, res));
            }
            Node::Not(inner) | Node::List { inner, .. } | Node::Field { inner, .. } => {
                inner.renumber(lits, res);
            }
            Node::Near { left, right, .. } => {
                left.renumber(lits, res);
                right.renumber(lits, res);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::super::Builder;
    use crate::rules::syntax::{Expr, parse_query};

    fn lists() -> HashMap<String, Vec<Expr>> {
        let entries = ["\"John Healey\"", "Healey", "/Heal(ey|y)/i"];
        let parsed = entries
            .iter()
            .map(|e| parse_query(e).expect("entry parses"));
        HashMap::from([("healey".to_string(), parsed.collect())])
    }

    /// Literals, regexes and trees from `compile_all`, and from `compile` one query at a time.
    fn both(queries: &[String]) -> [(Vec<String>, Vec<String>, Vec<String>); 2] {
        let exprs: Vec<Expr> = queries
            .iter()
            .map(|q| parse_query(q).expect("query parses"))
            .collect();
        let refs: Vec<&Expr> = exprs.iter().collect();
        let shown = |b: &Builder, nodes: Vec<String>| {
            let lits = b.lits.iter().map(|l| l.pattern.clone()).collect();
            let res = b.regexes.iter().map(|r| r.as_str().to_string()).collect();
            (lits, res, nodes)
        };
        let mut all = Builder::new(Arc::new(lists()));
        let nodes = all.compile_all(&refs);
        let nodes = nodes.iter().map(|n| format!("{n:?}")).collect();
        let parallel = shown(&all, nodes);
        let mut one = Builder::new(Arc::new(lists()));
        let nodes = refs
            .iter()
            .map(|e| format!("{:?}", one.compile(e)))
            .collect();
        [parallel, shown(&one, nodes)]
    }

    fn queries(n: usize, regexes: usize) -> Vec<String> {
        (0..n)
            .map(|i| match i % 7 {
                0 => format!("name{} NEAR/5 @healey", i % 300),
                1 => format!("\"first{} last{}\" AND NOT sport", i % 50, i),
                2 => format!("/pat{}/i AND Kyiv", i % regexes.max(1)),
                3 => format!("title:(case:OPEC OR word{})", i % 900),
                4 => format!("pref{}* AND infl{}~", i % 40, i % 30),
                5 => "@healey".to_string(),
                _ => format!("w{} w{} w{}", i, i + 1, i % 11),
            })
            .collect()
    }

    #[test]
    fn many_queries_compile_as_on_one_thread() {
        let [parallel, one] = both(&queries(5_000, 100));
        assert_eq!(parallel.0.len(), one.0.len());
        assert!(parallel.1.len() > 50, "{}", parallel.1.len());
        assert_eq!(parallel, one);
    }

    #[test]
    fn errors_and_the_regex_budget_are_those_of_one_thread() {
        // 400 distinct regexes: past `MAX_REGEXES`, only the queries after the 256th fail.
        let [parallel, one] = both(&queries(5_000, 400));
        assert!(one.2.iter().any(|n| n.contains("too many regexes")));
        assert_eq!(parallel, one);
        let mut bad = queries(3_000, 10);
        bad[2_900] = "@nosuch AND x".to_string();
        let [parallel, one] = both(&bad);
        assert!(one.2[2_900].contains("unknown list"), "{}", one.2[2_900]);
        assert_eq!(parallel, one);
    }
}
