//! Training loop, evaluation, the MaPLe protocols and the `maple` command-line tool.
#![warn(missing_docs)]

pub mod backend;
