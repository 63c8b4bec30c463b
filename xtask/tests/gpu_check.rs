//! `cargo xtask gpu-check` on a build without a GPU backend stops at once, non-zero, with
//! a message that says how to build a GPU one (the no-GPU path CI runs on every commit;
//! the WGPU build's no-driver path is a `.ci/run` line, see docs/GPU.md).

use std::process::Command;
use std::time::{Duration, Instant};

/// The CPU build of the xtask refuses `gpu-check` before any work: exit code 2 within
/// seconds, the backend named, the cuda build command given.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
#[test]
fn cpu_build_stops_at_once_with_a_clear_error() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("gpu-check")
        .output()
        .expect("running the xtask binary");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("gpu-check needs a GPU backend"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("--features cuda"), "stderr: {stderr}");
    assert!(
        elapsed < Duration::from_secs(20),
        "took {elapsed:?}: the refusal must come before any work"
    );
}
