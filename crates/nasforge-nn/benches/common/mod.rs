//! What the bench binaries share: command-line arguments (`--name value`), the thread pool,
//! medians.

/// The value after `name`, if given (after its last occurrence: a later flag overrides an
/// earlier one, as in `$R --alone-epochs 12` with `R` holding `--alone-epochs 5`).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .rposition(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Whether the switch `name` (a flag with no value) is given.
#[allow(dead_code)] // not every bench has switches
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The number after `name`, or `default` when absent or not a number.
pub fn num(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Builds rayon's global pool with `--threads` threads (default 2) and sets the allocator as
/// the `nasforge` binary does (`kernels::keep_freed_memory`); returns the count.
pub fn threads() -> usize {
    nasforge_nn::kernels::keep_freed_memory();
    let threads = num("--threads", 2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("first pool");
    threads
}

/// The median of `v` (the upper one of an even count).
#[allow(dead_code)] // not every bench reports medians
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
