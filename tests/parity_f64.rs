//! Every MaPLe parity check in f64 on the CPU backend, in a process of its own.
//!
//! Burn 0.21 keeps one default float dtype per device per process (its device-settings
//! registry is keyed by device, not by backend), and `NdArray<f32>` and `NdArray<f64>`
//! share `NdArrayDevice::Cpu`: whichever precision creates a tensor first decides what
//! `Tensor::from_data` produces for both. This file therefore holds only f64 tests, and
//! checks that its tensors really are f64.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Tensor};
use testkit::parity::{self, Fixture};

type B = Autodiff<NdArray<f64>>;

#[test]
fn maple_every_check_matches_reference_in_f64() {
    let device = Default::default();
    let probe = Tensor::<B, 1>::from_data([0.1f32], &device);
    assert_eq!(probe.dtype(), DType::F64, "the f64 run must compute in f64");
    let fixture =
        Fixture::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/maple-tiny"))
            .expect("fixture folder");
    let results = parity::maple::maple_checks::<B>(&fixture, &device).unwrap();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.line())
        .collect();
    assert!(
        failed.is_empty(),
        "failing checks in f64:\n{}",
        failed.join("\n")
    );
    for topic in [
        "maple.",
        "grad.step3.",
        "step.free-running.",
        "lr.",
        "checkpoint.",
    ] {
        assert!(
            results.iter().any(|r| r.name.starts_with(topic)),
            "no `{topic}` checks ran"
        );
    }
}
