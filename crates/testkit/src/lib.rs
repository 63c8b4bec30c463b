//! Test support for maple-burn (not published): the parity checks against the reference
//! PyTorch fixtures ([`parity`], used by `tests/` and `cargo xtask parity`), and small
//! dataset trees, the tiny fixture CLIP and tiny run configurations for the trainer and
//! CLI tests ([`trees`]), and the import-cycle check of the workspace's modules
//! ([`module_cycles`]).
#![warn(missing_docs)]

pub mod module_cycles;
pub mod parity;
pub mod trees;
