//! Fingerprints of what a split was read from, so that saved draws can detect staleness.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::datum::Datum;

/// The sha256 of one source of a dataset's split: a split or list file, or
/// (for folder-based datasets) the sorted listing itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDigest {
    /// A file relative to the dataset folder (`split_zhou_EuroSAT.json`), or
    /// `listing:<folder>` for a folder listing.
    pub name: String,
    /// Lower-case hex sha256.
    pub sha256: String,
}

impl SourceDigest {
    /// The digest of a file's bytes.
    pub fn of_bytes(name: impl Into<String>, bytes: &[u8]) -> Self {
        SourceDigest {
            name: name.into(),
            sha256: hex(&Sha256::digest(bytes)),
        }
    }

    /// The digest of a listing: one `"<label>\t<path>\n"` line per item, in order.
    pub fn of_listing(name: impl Into<String>, items: &[Datum]) -> Self {
        let mut h = Sha256::new();
        for d in items {
            h.update(d.label.to_string().as_bytes());
            h.update(b"\t");
            h.update(d.path.as_bytes());
            h.update(b"\n");
        }
        SourceDigest {
            name: name.into(),
            sha256: hex(&h.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_digest_is_standard_sha256() {
        // printf abc | sha256sum
        let d = SourceDigest::of_bytes("x", b"abc");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
