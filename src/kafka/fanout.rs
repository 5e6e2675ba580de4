//! Many admin steps at once: one per item (a batch of partitions, a group), a few in flight
//! at a time. Each step waits mostly on a broker's answer, so steps that follow each other
//! cost the sum of their round trips; a few in flight cost about the longest.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many admin steps of one call are in flight at once: enough to hide round trips,
/// few enough not to flood a broker (or a coordinator) with one client's requests.
pub const IN_FLIGHT: usize = 8;

/// `f` of every item, at most `workers` at a time, each worker on a thread of its own and
/// `f` told which one (0..workers); the results in the order of `items`, whatever order
/// they finished in. A panic in `f` is passed on.
pub fn each<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len());
    if workers <= 1 {
        return items.iter().map(|item| f(0, item)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = |worker: usize| {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(worker, item)));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|w| s.spawn(move || work(w))).collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_keep_the_items_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..40).collect();
        // Early items take longest: they finish last.
        let out = each(&items, 8, |_, i| {
            std::thread::sleep(Duration::from_millis(40 - i));
            i * 10
        });
        assert_eq!(out, items.iter().map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn at_most_the_given_workers_run_at_once() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<usize> = (0..30).collect();
        let out = each(&items, 4, |w, i| {
            assert!(w < 4, "worker {w}");
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            *i
        });
        assert_eq!(out, items);
        let most = most.into_inner();
        assert!((2..=4).contains(&most), "{most} at once");
    }

    #[test]
    fn no_item_one_item_and_one_worker_run_on_the_callers_thread() {
        let caller = std::thread::current().id();
        assert!(each(&[] as &[u8], 8, |_, _| 0).is_empty());
        let one = each(&[7], 8, |w, i| (w, *i, std::thread::current().id()));
        assert_eq!(one, [(0, 7, caller)]);
        let out = each(&[1, 2, 3], 1, |_, i| (*i, std::thread::current().id()));
        assert_eq!(out, [(1, caller), (2, caller), (3, caller)]);
    }

    #[test]
    #[should_panic(expected = "item 3")]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<u32> = (0..6).collect();
        each(&items, 3, |_, i| assert_ne!(*i, 3, "item 3"));
    }
}
