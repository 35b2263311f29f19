//! Loading 100,000 rules on every core (issue 22): a slice mapped in contiguous chunks on scoped
//! threads, the results joined back in input order, so the outcome is the same as one thread's.
//! Pure: no IO, no shared state beyond what the closure borrows.

use std::num::NonZeroUsize;

/// Below this many items one thread is used: spawning costs more than it saves.
pub(crate) const MIN_PARALLEL: usize = 1_024;
/// At most this many threads, whatever the machine has.
const MAX_THREADS: usize = 8;

/// How many threads a load spreads over: the cores available, at most `MAX_THREADS`.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS)
}

/// `items.iter().map(f).collect()`, in contiguous chunks on up to `threads()` threads.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    chunked(items, |chunk| chunk.iter().map(&f).collect::<Vec<_>>())
        .into_iter()
        .flatten()
        .collect()
}

/// `f` over contiguous chunks of `items`, one per thread, the chunks' results in order; one
/// chunk (the whole slice) when it is short or the machine has one core.
pub(crate) fn chunked<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = threads();
    if threads < 2 || items.len() < MIN_PARALLEL {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let mut chunks = items.chunks(size);
        let first = chunks.next().unwrap_or(&[]);
        let handles: Vec<_> = chunks.map(|c| s.spawn(move || f(c))).collect();
        let mut out = vec![f(first)];
        for h in handles {
            // A panic in `f` is a bug; carrying it to the caller keeps it one.
            out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_input_order_at_every_size() {
        for n in [
            0,
            1,
            5,
            MIN_PARALLEL - 1,
            MIN_PARALLEL,
            3 * MIN_PARALLEL + 7,
        ] {
            let items: Vec<usize> = (0..n).collect();
            let got = map(&items, |x| x * 2);
            let want: Vec<usize> = items.iter().map(|x| x * 2).collect();
            assert_eq!(got, want, "{n} items");
            let sizes: usize = chunked(&items, <[usize]>::len).into_iter().sum();
            assert_eq!(sizes, n, "every item in exactly one chunk");
        }
    }
}
