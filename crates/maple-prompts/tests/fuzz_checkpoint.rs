//! Seeded random mutations of the fixture reference checkpoint
//! (`tests/fixtures/maple-tiny/checkpoint/.../model.pth.tar-5`) and hostile pickles: the
//! reader never panics and never allocates more than a fixed bound.
//!
//! Two layers are mutated: `data.pkl` itself (byte flips, insertions, deletions, spliced
//! opcodes; parsed directly, and re-zipped with a valid CRC so the whole reader sees it) and
//! the zip container (flips in the directory and local headers, truncations). Allocated bytes
//! are counted by a global allocator in this test binary.
#![allow(unsafe_code)] // the counting global allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use maple_prompts::torch_pickle::{parse_pickle, read_torch_checkpoint, vm::pickle_memory_limit};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The counters are global: tests of this binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn add(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning whether it panicked and the most bytes it had live at once.
fn measured<T>(f: impl FnOnce() -> T) -> (std::thread::Result<T>, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let r = catch_unwind(AssertUnwindSafe(f));
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/maple-tiny/checkpoint/MultiModalPromptLearner/model.pth.tar-5")
}

/// Every record of the fixture, in order.
fn records() -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(fixture()).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().to_string(), v)
        })
        .collect()
}

fn write_zip(path: &Path, records: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in records {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

/// Opcodes that build shared structure, spliced in to reach the memo and container paths.
const SPLICES: &[&[u8]] = &[
    b"h\x00h\x00\x86",    // BINGET 0 twice, TUPLE2
    b"(h\x01h\x01h\x01l", // a list of memo references
    b"q\x00",             // BINPUT 0
    b"\x94",              // MEMOIZE
    b"2",                 // DUP
    b"}(h\x02h\x03u",     // a dict filled from the memo
    b"\x8c\x01x\x94",     // SHORT_BINUNICODE then MEMOIZE
];

fn mutate_pickle(orig: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut m = orig.to_vec();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(m.len());
        match rng.below(4) {
            0 => m[i] = rng.next() as u8,
            1 => {
                m.insert(i, rng.next() as u8);
            }
            2 => {
                m.remove(i);
            }
            _ => {
                let s = SPLICES[rng.below(SPLICES.len())];
                m.splice(i..i, s.iter().copied());
            }
        }
    }
    m
}

#[test]
fn mutated_pickles_never_panic_and_stay_within_their_budget() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let recs = records();
    let pkl = &recs
        .iter()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap()
        .1;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut worst = 0;
    for case in 0..600 {
        let m = mutate_pickle(pkl, &mut rng);
        let (r, used) = measured(|| parse_pickle(&m).map(drop));
        assert!(r.is_ok(), "case {case}: parse_pickle panicked");
        // The budget counts what the parse builds; allocator slack (vector doubling, hash
        // tables) stays within a factor of two of it.
        let bound = 2 * pickle_memory_limit(m.len());
        assert!(used <= bound, "case {case}: {used} bytes, bound {bound}");
        worst = worst.max(used);
    }
    eprintln!("600 mutated pickles: peak {} KiB", worst >> 10);
}

#[test]
fn mutated_archives_never_panic_and_stay_within_the_memory_bound() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let recs = records();
    let orig = std::fs::read(fixture()).unwrap();
    // The file, its storages, the materialised state dict, the pickle's budget, slack.
    let bound = 4 * orig.len() + pickle_memory_limit(64 << 10) + (32 << 20);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut worst) = (0, 0);
    let cases = 90;
    for case in 0..cases {
        let path = dir.path().join(format!("case{case}.pth"));
        match case % 3 {
            // data.pkl mutated, re-zipped with valid CRCs: the whole reader sees it.
            0 => {
                let mut r = recs.clone();
                let i = r.iter().position(|(n, _)| n.ends_with("data.pkl")).unwrap();
                r[i].1 = mutate_pickle(&r[i].1, &mut rng);
                write_zip(&path, &r);
            }
            // Byte flips in the container: the central directory at the end, or the local
            // header and data of the first records at the start.
            1 => {
                let mut m = orig.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = if rng.below(2) == 0 {
                        m.len() - 1 - rng.below(16 << 10)
                    } else {
                        rng.below(32 << 10)
                    };
                    m[i] = rng.next() as u8;
                }
                std::fs::write(&path, m).unwrap();
            }
            // Truncation anywhere.
            _ => std::fs::write(&path, &orig[..rng.below(orig.len())]).unwrap(),
        }
        let (r, used) = measured(|| read_torch_checkpoint(&path).map(drop));
        match r {
            Err(_) => panic!("case {case}: read_torch_checkpoint panicked"),
            Ok(Err(e)) => {
                refused += 1;
                assert!(
                    e.to_string().contains(&format!("case{case}.pth")),
                    "case {case}: the error does not name the file: {e}"
                );
            }
            Ok(Ok(())) => {}
        }
        assert!(used <= bound, "case {case}: {used} bytes, bound {bound}");
        worst = worst.max(used);
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "{cases} mutated archives: {refused} refused, peak {} MiB",
        worst >> 20
    );
    assert!(refused >= cases / 2, "only {refused} of {cases} refused");
}

#[test]
fn hostile_pickles_from_the_issue_stay_small() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 4 MiB string memoised, then referenced 1 M times (about 2 MB of opcodes): copying per
    // reference would need 4 TB; sharing needs the list.
    let mut p = vec![0x80, 2, 0x8d];
    p.extend_from_slice(&(4u64 << 20).to_le_bytes());
    p.extend(std::iter::repeat_n(b'a', 4 << 20));
    p.extend_from_slice(b"q\x000]q\x01(");
    for _ in 0..1_000_000 {
        p.extend_from_slice(b"h\x00");
    }
    p.extend_from_slice(b"e.");
    let (r, used) = measured(|| parse_pickle(&p).map(|v| v.as_sequence().map(<[_]>::len)));
    assert_eq!(r.unwrap().unwrap(), Some(1_000_000));
    assert!(
        used < 128 << 20,
        "{used} bytes for a {} byte pickle",
        p.len()
    );

    // Nested sharing 60 levels deep: 2^60 leaves if expanded.
    let mut p = vec![0x80, 2, b']'];
    for _ in 0..60 {
        p.extend_from_slice(b"q\x00h\x00\x86");
    }
    p.push(b'.');
    let (r, used) = measured(|| parse_pickle(&p).map(drop));
    assert!(r.unwrap().is_ok());
    assert!(used < 1 << 20, "{used} bytes");
}
