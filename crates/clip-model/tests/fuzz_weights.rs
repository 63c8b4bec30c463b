//! Seeded random mutations of the fixture CLIP weights (`tests/fixtures/maple-tiny/
//! clip.safetensors`): loading never panics and never allocates more than a fixed bound.
//!
//! Mutations: byte flips in the header (JSON) and the length prefix, truncations, tensors
//! reshaped to another shape of the same size (these pass the safetensors checks and reach
//! the CLIP loader), renamed or dropped tensors, and NaN/inf written into the data.
//! Allocated bytes are counted by a global allocator in this test binary.
#![allow(unsafe_code)] // the counting global allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::backend::ndarray::NdArray;
use clip_model::weights::read_clip_weights_bytes;
use clip_model::Clip;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

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

/// Most bytes one load of a mutated ~10 MB file may have live beyond what was live before:
/// the file, its tensors as f32, the model's copy, and slack.
const MEMORY_BOUND: usize = 256 << 20;

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

fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize
}

/// Rewrites the JSON header (keeping the data), padding with spaces as safetensors does.
fn with_header(bytes: &[u8], header: &serde_json::Value) -> Vec<u8> {
    let data = &bytes[8 + header_len(bytes)..];
    let mut h = serde_json::to_vec(header).expect("json");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// One seeded mutation of the original file.
fn mutate(orig: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let hl = header_len(orig);
    let header: serde_json::Value =
        serde_json::from_slice(&orig[8..8 + hl]).expect("fixture header");
    let keys: Vec<String> = header
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let key = keys[rng.below(keys.len())].clone();
    match rng.below(6) {
        0 => {
            // Byte flips in the length prefix or the header.
            let mut m = orig.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(8 + hl);
                m[i] = rng.next() as u8;
            }
            m
        }
        1 => orig[..rng.below(orig.len())].to_vec(),
        2 => {
            // The same elements in another shape (passes safetensors' own checks).
            let mut h = header.clone();
            let shape: Vec<u64> = h[&key]["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim"))
                .collect();
            let n: u64 = shape.iter().product();
            let new: Vec<u64> = match rng.below(4) {
                0 => vec![n],
                1 if n == 1 => vec![],
                1 => vec![1, n],
                2 => {
                    let mut s = shape.clone();
                    s.reverse();
                    s
                }
                _ => {
                    let mut s = shape.clone();
                    s.push(1);
                    s
                }
            };
            h[&key]["shape"] = serde_json::json!(new);
            with_header(orig, &h)
        }
        3 => {
            // A renamed tensor (misspelt, or moved to another block index).
            let mut h = header.clone();
            let obj = h.as_object_mut().expect("object");
            let v = obj.remove(&key).expect("key");
            let renamed = match rng.below(3) {
                0 => key.replace('0', "7"),
                1 => format!("{key}x"),
                _ => key.replace("resblocks.1", "resblocks.9"),
            };
            obj.insert(renamed, v);
            with_header(orig, &h)
        }
        4 => {
            // A dropped tensor.
            let mut h = header.clone();
            h.as_object_mut().expect("object").remove(&key);
            with_header(orig, &h)
        }
        _ => {
            // NaN or inf written into one element of one tensor.
            let mut m = orig.to_vec();
            let start = header[&key]["data_offsets"][0].as_u64().expect("offset") as usize;
            let end = header[&key]["data_offsets"][1].as_u64().expect("offset") as usize;
            if end > start + 4 {
                let i = 8 + hl + start + 4 * rng.below((end - start) / 4);
                let v = if rng.below(2) == 0 {
                    f32::NAN
                } else {
                    f32::INFINITY
                };
                m[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            m
        }
    }
}

#[test]
fn mutated_weights_never_panic_and_stay_within_the_memory_bound() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/maple-tiny/clip.safetensors");
    let orig = std::fs::read(&path).expect("fixture");
    let device = Default::default();
    let load = |bytes: &[u8]| {
        read_clip_weights_bytes(bytes, Path::new("mutated.safetensors"))
            .and_then(|map| Clip::<NdArray<f32>>::from_tensor_map(map, &device))
            .map(|_| ())
    };
    assert!(load(&orig).is_ok(), "the fixture itself must load");

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut worst) = (0usize, 0usize);
    for case in 0..240 {
        let m = mutate(&orig, &mut rng);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let r = catch_unwind(AssertUnwindSafe(|| load(&m)));
        let used = PEAK.load(Ordering::Relaxed) - before;
        worst = worst.max(used);
        match r {
            Err(_) => panic!("case {case}: loading panicked"),
            Ok(Err(e)) => {
                refused += 1;
                assert!(
                    e.to_string().contains("mutated.safetensors"),
                    "case {case}: the error does not name the file: {e}"
                );
            }
            Ok(Ok(())) => {}
        }
        assert!(
            used <= MEMORY_BOUND,
            "case {case}: {used} bytes allocated, bound {MEMORY_BOUND}"
        );
    }
    eprintln!("240 mutations: {refused} refused, peak {} MiB", worst >> 20);
    // Most mutations break something; a handful (e.g. a flip inside the metadata) are benign.
    assert!(
        refused >= 180,
        "only {refused} of 240 mutations were refused"
    );
}
