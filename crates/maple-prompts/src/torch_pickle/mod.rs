//! Safe reader for PyTorch checkpoint files (`torch.save` zip container, pickle protocol 2..5).
//!
//! A `torch.save` file is a zip archive with one top-level folder `<prefix>/` holding
//! `data.pkl` (the pickled object tree), `data/<key>` (one raw storage per key, in the byte
//! order named by `byteorder`, little-endian when that record is absent) and a few small
//! bookkeeping records (`version`, `.format_version`, ...).
//!
//! **Why hand-written.** Python's `pickle` runs arbitrary code while loading. The Rust pickle
//! crates either do not understand torch's persistent ids and `REDUCE` conventions
//! (`serde-pickle` refuses them) or reconstruct them without the checks this project needs
//! (bounded memory on hostile input, views checked against their storage); none is both
//! exact and safe. This module interprets the pickle opcodes in a small virtual machine
//! ([`vm`]) in which:
//!
//! * `GLOBAL` / `STACK_GLOBAL` import nothing: they yield a symbolic [`PickleValue::Global`];
//! * `REDUCE` on an allow-listed callable builds data: `torch._utils._rebuild_tensor_v2`
//!   (and `_rebuild_tensor`), `torch._utils._rebuild_parameter` (and
//!   `_rebuild_parameter_with_state`), `torch._tensor._rebuild_from_type_v2` give a
//!   [`PickleValue::Tensor`] (metadata only), `collections.OrderedDict`, `builtins.dict` and
//!   `collections.defaultdict` give a [`PickleValue::Dict`];
//! * every other `REDUCE`, `NEWOBJ`, `NEWOBJ_EX` and `BUILD` produces an inert
//!   [`PickleValue::Object`] that records the class, the arguments and the state, and calls
//!   nothing;
//! * `BINPERSID` with torch's `('storage', torch.XStorage, key, location, numel)` tuple gives a
//!   [`PickleValue::Storage`] reference; storages are read from the zip, never from the pickle.
//!
//! [`read_torch_checkpoint`] parses a file, materialises the `state_dict` (strided views with
//! storage offset, size and stride are gathered into dense row-major `f32` data,
//! [`tensors`]) and keeps the whole value tree ([`TorchCheckpoint::root`]) plus the raw
//! storages so that further tensors (for instance SGD momentum buffers,
//! [`TorchCheckpoint::momentum_buffers`]) can be materialised on demand.
//!
//! **Hostile input.** Malformed, truncated or hostile input yields a [`TorchReadError`] naming
//! the file and the record or storage; no input makes this module panic or execute anything,
//! and memory is bounded by the input's size:
//!
//! * the pickle: one budget for the whole parse, [`vm::pickle_memory_limit`] (64 MiB + 64
//!   bytes per pickle byte, at most 1 GiB); memo references share, never copy; depth at most
//!   [`vm::MAX_TREE_DEPTH`];
//! * the zip records ([`zip`]): each storage record must declare exactly the
//!   `numel * itemsize` bytes of the storage that names it and lie inside the file, checked
//!   before it is read; compressed records may add at most [`zip::MAX_INFLATED_EXTRA`] bytes
//!   to the archive in total; `data.pkl` is at most [`zip::MAX_PICKLE_BYTES`];
//! * materialised tensors: each at most [`tensors::MAX_TENSOR_ELEMENTS`], and all the tensors
//!   of one call ([`read_torch_checkpoint`]'s state dict, one
//!   [`TorchCheckpoint::momentum_buffers`]) at most [`materialise_limit`] elements: twice the
//!   storages' elements plus [`MATERIALISE_SLACK_ELEMENTS`] (broadcast views may repeat
//!   elements, a hostile file cannot repeat them without bound).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

mod optimizer;
pub mod tensors;
mod value;
pub mod vm;
pub mod zip;

#[cfg(test)]
mod tests;

pub use tensors::{StorageProblem, TorchTensor, MAX_TENSOR_ELEMENTS};
pub use value::{PickleObject, PickleValue, StorageRef, TensorMeta, TorchDtype};
pub use vm::{parse_pickle, parse_pickle_with_limit, PickleProblem};

use tensors::{materialize_f32, materialize_i64};

/// Elements every materialising call may produce on top of twice the storages' elements.
pub const MATERIALISE_SLACK_ELEMENTS: usize = 1 << 24;

/// Most elements one materialising call may produce for storages holding `storage_elements`.
pub fn materialise_limit(storage_elements: usize) -> usize {
    storage_elements
        .saturating_mul(2)
        .saturating_add(MATERIALISE_SLACK_ELEMENTS)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a torch checkpoint could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchReadError {
    /// The file could not be opened or read.
    #[error("{}: cannot read torch checkpoint: {source}", path.display())]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a zip archive (truncated, corrupt, or the legacy non-zip torch format).
    #[error("{}: not a torch zip checkpoint: {msg}", path.display())]
    NotZip {
        /// The checkpoint file.
        path: PathBuf,
        /// What the zip reader reported.
        msg: String,
    },
    /// A record the checkpoint needs is absent from the zip archive.
    #[error("{}: zip record `{name}` is missing", path.display())]
    MissingRecord {
        /// The checkpoint file.
        path: PathBuf,
        /// The missing record (e.g. `model.pth/data/7`, or `*/data.pkl` when no pickle exists).
        name: String,
    },
    /// A zip record exists but cannot be decompressed or fails its checksum.
    #[error("{}: zip record `{name}` is unreadable: {msg}", path.display())]
    Record {
        /// The checkpoint file.
        path: PathBuf,
        /// The record.
        name: String,
        /// What went wrong.
        msg: String,
    },
    /// `data.pkl` is not a pickle this reader understands (corrupt, truncated, unsupported).
    #[error("{}: data.pkl byte {offset}: {problem}", path.display())]
    Pickle {
        /// The checkpoint file.
        path: PathBuf,
        /// Byte offset in `data.pkl` of the opcode that failed.
        offset: u64,
        /// What went wrong.
        #[source]
        problem: PickleProblem,
    },
    /// A tensor's storage is missing data, has an unsupported type, or a view reaches outside it.
    #[error("{}: storage `{key}`: {problem}", path.display())]
    Storage {
        /// The checkpoint file.
        path: PathBuf,
        /// The storage key (the record `<prefix>/data/<key>`).
        key: String,
        /// What went wrong (boxed: it names shapes, and keeps every `Result` small).
        #[source]
        problem: Box<StorageProblem>,
    },
    /// The pickle parsed, but its objects are not laid out as a checkpoint (no state dict, a
    /// non-tensor entry in the state dict, a malformed optimizer state, ...).
    #[error("{}: unexpected checkpoint layout: {msg}", path.display())]
    Layout {
        /// The checkpoint file.
        path: PathBuf,
        /// What was expected and what was found.
        msg: String,
    },
}

/// Why [`parse_pickle`] rejected a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleParseError {
    /// Byte offset of the opcode that failed (the stream length when it ended early).
    pub offset: u64,
    /// What went wrong.
    pub problem: PickleProblem,
}

impl fmt::Display for PickleParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for PickleParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint
// ---------------------------------------------------------------------------------------------

/// A parsed torch checkpoint: the materialised state dict, a few top-level facts, the whole
/// value tree and the raw storages (for materialising further tensors on demand).
#[derive(Clone)]
pub struct TorchCheckpoint {
    /// `state_dict` entries in file order, materialised as dense `f32` tensors.
    pub state_dict: Vec<(String, TorchTensor)>,
    /// The top-level `epoch` entry, when it is an integer.
    pub epoch: Option<i64>,
    /// The string keys of the top-level dict, in file order.
    pub top_level_keys: Vec<String>,
    /// The whole unpickled value tree (optimizer, scheduler, ...), for callers to dig into.
    pub root: PickleValue,
    path: PathBuf,
    big_endian: bool,
    storages: HashMap<String, Vec<u8>>,
    /// Total elements of the loaded storages (the base of [`materialise_limit`]).
    storage_elements: usize,
}

impl fmt::Debug for TorchCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorchCheckpoint")
            .field("path", &self.path)
            .field("state_dict_len", &self.state_dict.len())
            .field("epoch", &self.epoch)
            .field("top_level_keys", &self.top_level_keys)
            .field("storages", &self.storages.len())
            .finish_non_exhaustive()
    }
}

/// Counts the elements materialised by one call against [`materialise_limit`].
pub(crate) struct ElementBudget {
    left: usize,
    limit: usize,
}

impl ElementBudget {
    fn take(&mut self, n: usize) -> Result<(), StorageProblem> {
        if n > self.left {
            return Err(StorageProblem::BudgetExceeded {
                limit: self.limit,
                slack: MATERIALISE_SLACK_ELEMENTS,
            });
        }
        self.left -= n;
        Ok(())
    }
}

impl TorchCheckpoint {
    /// The file this checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state-dict tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TorchTensor> {
        self.state_dict
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    fn storage_bytes(&self, meta: &TensorMeta) -> Result<&[u8], TorchReadError> {
        self.storages
            .get(&meta.storage.key)
            .map(Vec::as_slice)
            .ok_or_else(|| self.storage_error(meta, StorageProblem::NotLoaded))
    }

    fn storage_error(&self, meta: &TensorMeta, problem: StorageProblem) -> TorchReadError {
        TorchReadError::Storage {
            path: self.path.clone(),
            key: meta.storage.key.clone(),
            problem: Box::new(problem),
        }
    }

    pub(crate) fn element_budget(&self) -> ElementBudget {
        let limit = materialise_limit(self.storage_elements);
        ElementBudget { left: limit, limit }
    }

    /// Materialises any tensor of [`Self::root`] as a dense row-major `f32` tensor (at most
    /// [`MAX_TENSOR_ELEMENTS`] elements).
    pub fn tensor(&self, meta: &TensorMeta) -> Result<TorchTensor, TorchReadError> {
        let bytes = self.storage_bytes(meta)?;
        materialize_f32(meta, bytes, self.big_endian).map_err(|m| self.storage_error(meta, m))
    }

    /// [`Self::tensor`], counting its elements against `budget` before allocating.
    pub(crate) fn tensor_within(
        &self,
        meta: &TensorMeta,
        budget: &mut ElementBudget,
    ) -> Result<TorchTensor, TorchReadError> {
        let n = meta.numel().unwrap_or(usize::MAX);
        budget.take(n).map_err(|m| self.storage_error(meta, m))?;
        self.tensor(meta)
    }

    /// Materialises an integer or bool tensor of [`Self::root`] exactly, as `(shape, values)`.
    pub fn tensor_i64(&self, meta: &TensorMeta) -> Result<(Vec<usize>, Vec<i64>), TorchReadError> {
        let bytes = self.storage_bytes(meta)?;
        materialize_i64(meta, bytes, self.big_endian)
            .map(|v| (meta.shape.clone(), v))
            .map_err(|m| self.storage_error(meta, m))
    }

    fn layout(&self, msg: impl Into<String>) -> TorchReadError {
        TorchReadError::Layout {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }
}

/// Reads a `torch.save` zip checkpoint without executing anything from it.
///
/// The top level may be a dict with a `state_dict` entry (Dassl/MaPLe checkpoints: `epoch`,
/// `optimizer`, `scheduler`, ... are kept in [`TorchCheckpoint::root`]) or a bare state dict.
/// Every state-dict value must be a tensor; all of them are materialised as dense `f32`.
///
/// Errors (all naming `path`): unreadable file, not a zip, missing `data.pkl` or storage
/// record, a record whose declared size does not match the storage naming it or lies outside
/// the file, corrupt record, malformed or oversized pickle, a view outside its storage, an
/// unsupported storage dtype inside the state dict, a state dict needing more than
/// [`materialise_limit`] elements, or a top level that is not a dict.
pub fn read_torch_checkpoint(path: &Path) -> Result<TorchCheckpoint, TorchReadError> {
    let mut archive = zip::Archive::open(path)?;
    let pkl_name = archive.pickle_name()?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();

    let byteorder = format!("{prefix}byteorder");
    let big_endian = if archive.contains(&byteorder) {
        let b = archive.read_small(&byteorder, 64)?;
        match std::str::from_utf8(&b).map(str::trim) {
            Ok("little") => false,
            Ok("big") => true,
            _ => {
                return Err(archive.error(
                    &byteorder,
                    format!("unknown byte order {:?}", String::from_utf8_lossy(&b)),
                ))
            }
        }
    } else {
        false
    };

    let pkl = archive.read_small(&pkl_name, zip::MAX_PICKLE_BYTES)?;
    let root = parse_pickle(&pkl).map_err(|e| TorchReadError::Pickle {
        path: path.to_path_buf(),
        offset: e.offset,
        problem: e.problem,
    })?;
    drop(pkl);

    // Each storage referenced anywhere in the tree, with the byte size every reference to
    // it implies (they must agree: one key is one storage).
    let mut sizes: BTreeMap<String, (u64, usize, String)> = BTreeMap::new();
    let mut conflict = None;
    root.visit_storages(&mut |s| {
        if conflict.is_some() {
            return;
        }
        let Some(nbytes) = s.nbytes() else {
            conflict = Some((
                s.key.clone(),
                StorageProblem::Unsized {
                    storage_type: s.storage_type.clone(),
                    numel: s.numel,
                },
            ));
            return;
        };
        let what = format!(
            "storage `{}` ({} elements of {})",
            s.key, s.numel, s.storage_type
        );
        match sizes.get(&s.key) {
            None => {
                sizes.insert(s.key.clone(), (nbytes, s.numel, what));
            }
            Some((n, _, first)) if *n != nbytes => {
                conflict = Some((
                    s.key.clone(),
                    StorageProblem::Conflict {
                        first: first.clone(),
                        second: what,
                    },
                ));
            }
            Some(_) => {}
        }
    });
    if let Some((key, problem)) = conflict {
        return Err(TorchReadError::Storage {
            path: path.to_path_buf(),
            key,
            problem: Box::new(problem),
        });
    }
    let mut storages = HashMap::with_capacity(sizes.len());
    let mut storage_elements = 0usize;
    for (key, (nbytes, numel, what)) in sizes {
        let bytes = archive.read_storage(&format!("{prefix}data/{key}"), nbytes, &what)?;
        storage_elements = storage_elements.saturating_add(numel);
        storages.insert(key, bytes);
    }

    let mut ckpt = TorchCheckpoint {
        state_dict: Vec::new(),
        epoch: None,
        top_level_keys: Vec::new(),
        root,
        path: path.to_path_buf(),
        big_endian,
        storages,
        storage_elements,
    };

    let top = ckpt.root.as_dict().ok_or_else(|| {
        ckpt.layout(format!(
            "top-level object is a {}, not a dict",
            ckpt.root.kind()
        ))
    })?;
    ckpt.top_level_keys = top
        .iter()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    ckpt.epoch = ckpt.root.get("epoch").and_then(PickleValue::as_int);
    let sd = match ckpt.root.get("state_dict") {
        Some(v) => v
            .as_dict()
            .ok_or_else(|| ckpt.layout(format!("`state_dict` is a {}, not a dict", v.kind())))?,
        None => top,
    };
    let mut budget = ckpt.element_budget();
    let mut state_dict = Vec::with_capacity(sd.len());
    for (k, v) in sd {
        let name = k.as_str().ok_or_else(|| {
            ckpt.layout(format!("a state_dict key is a {}, not a string", k.kind()))
        })?;
        let meta = v.as_tensor().ok_or_else(|| {
            ckpt.layout(format!(
                "state_dict entry `{name}` is a {}, not a tensor",
                v.kind()
            ))
        })?;
        state_dict.push((name.to_string(), ckpt.tensor_within(meta, &mut budget)?));
    }
    ckpt.state_dict = state_dict;
    Ok(ckpt)
}
