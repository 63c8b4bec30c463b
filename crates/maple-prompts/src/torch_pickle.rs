//! Safe reader for PyTorch checkpoint files (`torch.save` zip container, pickle protocol 2..5).
//!
//! A `torch.save` file is a zip archive with one top-level folder `<prefix>/` holding
//! `data.pkl` (the pickled object tree), `data/<key>` (one raw storage per key, in the byte
//! order named by `byteorder`, little-endian when that record is absent) and a few small
//! bookkeeping records (`version`, `.format_version`, ...).
//!
//! Python's `pickle` module runs arbitrary code while loading; this module does not. It
//! interprets the pickle opcodes in a small virtual machine in which:
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
//! storage offset, size and stride are gathered into dense row-major `f32` data) and keeps the
//! whole value tree ([`TorchCheckpoint::root`]) plus the raw storages so that further tensors
//! (for instance SGD momentum buffers, see [`TorchCheckpoint::momentum_buffers`]) can be
//! materialised on demand. Malformed, truncated or hostile input yields a [`TorchReadError`]
//! naming the file; no input makes this module panic, and the work it does is bounded by the
//! input size and by a few fixed limits (tree size, nesting depth, tensor element count).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most elements one materialised tensor may have (1 GiB of `f32`; guards against hostile
/// shapes, e.g. a huge size with stride 0 on a one-element storage).
const MAX_TENSOR_ELEMENTS: usize = 1 << 28;
/// Most nodes in the value tree returned by [`parse_pickle`] (shared sub-objects are expanded
/// once per reference, so this bounds "billion laughs" style inputs).
const MAX_TREE_NODES: usize = 1 << 22;
/// Deepest nesting of the value tree returned by [`parse_pickle`].
const MAX_TREE_DEPTH: usize = 200;
/// Largest initial buffer reserved for one zip record (the record may still be larger; the
/// buffer then grows as bytes actually arrive).
const MAX_INITIAL_RECORD_BUFFER: u64 = 64 << 20;

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
    #[error("{}: data.pkl byte {offset}: {msg}", path.display())]
    Pickle {
        /// The checkpoint file.
        path: PathBuf,
        /// Byte offset in `data.pkl` of the opcode that failed.
        offset: u64,
        /// What went wrong.
        msg: String,
    },
    /// A tensor's storage is missing data, has an unsupported type, or a view reaches outside it.
    #[error("{}: storage `{key}`: {msg}", path.display())]
    Storage {
        /// The checkpoint file.
        path: PathBuf,
        /// The storage key (the record `<prefix>/data/<key>`).
        key: String,
        /// What went wrong.
        msg: String,
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
    pub msg: String,
}

impl fmt::Display for PickleParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.msg)
    }
}

impl std::error::Error for PickleParseError {}

// ---------------------------------------------------------------------------------------------
// Value tree
// ---------------------------------------------------------------------------------------------

/// Element type of a torch storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchDtype {
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`, also `UntypedStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`).
    Bool,
}

impl TorchDtype {
    /// The dtype of a torch storage class name such as `FloatStorage`; `None` when unsupported
    /// (complex, quantized, float8, ...).
    pub fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" | "UntypedStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Whether the dtype is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::BF16)
    }
}

/// A reference to one storage record of the archive, as named by a pickle persistent id
/// `('storage', torch.<storage_type>, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Storage class name without module, e.g. `FloatStorage`.
    pub storage_type: String,
    /// Record key: the bytes are in `<prefix>/data/<key>`.
    pub key: String,
    /// Device the storage was saved from, e.g. `cpu` or `cuda:0` (informational).
    pub location: String,
    /// Number of elements in the storage.
    pub numel: usize,
}

impl StorageRef {
    /// The element type, `None` when the storage class is unsupported.
    pub fn dtype(&self) -> Option<TorchDtype> {
        TorchDtype::from_storage_name(&self.storage_type)
    }
}

/// Tensor metadata from `torch._utils._rebuild_tensor_v2` (data stays in the storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMeta {
    /// The storage holding the elements.
    pub storage: StorageRef,
    /// Offset, in elements, of the first element within the storage.
    pub storage_offset: usize,
    /// Size of each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// Stride of each dimension, in elements.
    pub stride: Vec<usize>,
    /// The pickled `requires_grad` flag.
    pub requires_grad: bool,
    /// Whether the tensor was an `nn.Parameter` (`_rebuild_parameter`).
    pub is_parameter: bool,
}

impl TensorMeta {
    /// Number of elements of the view (product of the shape; 1 for a scalar), `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Whether the view is dense row-major (C-contiguous), ignoring dimensions of size 1.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = match expected.checked_mul(d) {
                Some(e) => e,
                None => return false,
            };
        }
        true
    }
}

/// A value of the unpickled object tree. Nothing in it was executed: classes and functions are
/// symbolic ([`PickleValue::Global`]) and unknown constructions are inert
/// ([`PickleValue::Object`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PickleValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer: little-endian two's complement bytes, as pickled by `LONG1`/`LONG4`.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string (also Python 2 byte strings that are valid UTF-8).
    Str(String),
    /// A byte string (`bytes`, `bytearray`, or a non-UTF-8 Python 2 string).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<PickleValue>),
    /// A tuple.
    Tuple(Vec<PickleValue>),
    /// A dict (also `OrderedDict` and `defaultdict`), entries in insertion order; a key set
    /// twice keeps its first position and its last value (for `str`/`int`/`bool`/`None` keys).
    Dict(Vec<(PickleValue, PickleValue)>),
    /// A set or frozenset.
    Set(Vec<PickleValue>),
    /// A class or function named by `GLOBAL`/`STACK_GLOBAL`; never imported.
    Global {
        /// Module path, e.g. `torch._utils` (`__builtin__` is reported as `builtins`).
        module: String,
        /// Attribute name, e.g. `_rebuild_tensor_v2`.
        name: String,
    },
    /// A torch storage reference (from `BINPERSID`).
    Storage(StorageRef),
    /// A torch tensor (metadata; materialise with [`TorchCheckpoint::tensor`]).
    Tensor(TensorMeta),
    /// An inert object: the result of a `REDUCE`/`NEWOBJ` that is not allow-listed.
    Object {
        /// The callable or class (usually a [`PickleValue::Global`]).
        class: Box<PickleValue>,
        /// The arguments tuple (for `NEWOBJ_EX`: a 2-tuple `(args, kwargs)`).
        args: Box<PickleValue>,
        /// The state given by `BUILD`, if any (dict states of several `BUILD`s are merged).
        state: Option<Box<PickleValue>>,
        /// Items appended by `APPEND`/`APPENDS` (list subclasses).
        list_items: Vec<PickleValue>,
        /// Items set by `SETITEM`/`SETITEMS` (dict subclasses).
        dict_items: Vec<(PickleValue, PickleValue)>,
    },
    /// A persistent id that is not a torch storage reference.
    PersistentId(Box<PickleValue>),
    /// A back-reference to a container that encloses this position (a cycle in the pickle).
    Recursive,
}

impl PickleValue {
    /// The value stored under string key `key` when `self` is a dict.
    pub fn get(&self, key: &str) -> Option<&PickleValue> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The integer (booleans count as 0/1).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The number as `f64` (floats and integers).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_sequence(&self) -> Option<&[PickleValue]> {
        match self {
            Self::List(v) | Self::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The entries of a dict.
    pub fn as_dict(&self) -> Option<&[(PickleValue, PickleValue)]> {
        match self {
            Self::Dict(v) => Some(v),
            _ => None,
        }
    }

    /// The tensor metadata.
    pub fn as_tensor(&self) -> Option<&TensorMeta> {
        match self {
            Self::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// `(module, name)` of a [`PickleValue::Global`], or of the class of a
    /// [`PickleValue::Object`] whose class is a global.
    pub fn class_name(&self) -> Option<(&str, &str)> {
        match self {
            Self::Global { module, name } => Some((module, name)),
            Self::Object { class, .. } => match class.as_ref() {
                Self::Global { module, name } => Some((module, name)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Calls `f` on every storage reference in the tree (including those inside tensors).
    pub fn visit_storages<'a>(&'a self, f: &mut dyn FnMut(&'a StorageRef)) {
        match self {
            Self::Storage(s) => f(s),
            Self::Tensor(t) => f(&t.storage),
            Self::List(v) | Self::Tuple(v) | Self::Set(v) => {
                v.iter().for_each(|x| x.visit_storages(f));
            }
            Self::Dict(v) => v.iter().for_each(|(k, x)| {
                k.visit_storages(f);
                x.visit_storages(f);
            }),
            Self::Object {
                class,
                args,
                state,
                list_items,
                dict_items,
            } => {
                class.visit_storages(f);
                args.visit_storages(f);
                if let Some(s) = state {
                    s.visit_storages(f);
                }
                list_items.iter().for_each(|x| x.visit_storages(f));
                dict_items.iter().for_each(|(k, x)| {
                    k.visit_storages(f);
                    x.visit_storages(f);
                });
            }
            Self::PersistentId(p) => p.visit_storages(f),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pickle virtual machine
// ---------------------------------------------------------------------------------------------

type Id = usize;

/// Hashable dict keys used to replace the value of a key set twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DictKey {
    None,
    Int(i64),
    Str(String),
}

/// A node of the VM's object arena. Containers refer to other nodes by id, so a memoised
/// container mutated after `BINPUT` is seen mutated through `BINGET`, as in Python.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>, HashMap<DictKey, usize>),
    Set(Vec<Id>),
    Global {
        module: String,
        name: String,
    },
    Storage(StorageRef),
    Tensor(TensorMeta),
    Object {
        class: Id,
        args: Id,
        state: Option<Id>,
        list_items: Vec<Id>,
        dict_items: Vec<(Id, Id)>,
    },
    PersistentId(Id),
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

type VmResult<T> = Result<T, String>;

/// Parses a pickle byte stream (protocols 2..5 as written by `torch.save`) into a value tree,
/// executing nothing. See the module documentation for what is and is not interpreted.
///
/// Errors on malformed, truncated or unsupported input (protocol-0 text opcodes, extension
/// registry codes, out-of-band buffers), and when the resulting tree would exceed the fixed
/// size/depth limits.
pub fn parse_pickle(data: &[u8]) -> Result<PickleValue, PickleParseError> {
    let mut vm = Vm {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = loop {
        let op_start = vm.pos;
        match vm.step() {
            Ok(Some(root)) => break root,
            Ok(None) => {}
            Err(msg) => {
                return Err(PickleParseError {
                    offset: op_start as u64,
                    msg,
                })
            }
        }
    };
    let mut on_path = vec![false; vm.nodes.len()];
    let mut budget = MAX_TREE_NODES;
    vm.to_value(root, 0, &mut on_path, &mut budget)
        .map_err(|msg| PickleParseError {
            offset: vm.pos as u64,
            msg,
        })
}

fn normalise_module(module: &str) -> &str {
    match module {
        "__builtin__" => "builtins",
        other => other,
    }
}

impl<'a> Vm<'a> {
    // --- input -------------------------------------------------------------------------------

    fn take(&mut self, n: u64) -> VmResult<&'a [u8]> {
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err(format!("truncated: needs {n} more bytes, {remaining} left"));
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> VmResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> VmResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> VmResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> VmResult<i32> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> VmResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> VmResult<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| "truncated: unterminated text line".to_string())?;
        let line = &rest[..end];
        self.pos += end + 1;
        std::str::from_utf8(line).map_err(|_| "text line is not UTF-8".to_string())
    }

    // --- stack -------------------------------------------------------------------------------

    fn alloc(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn push(&mut self, node: Node) {
        let id = self.alloc(node);
        self.stack.push(id);
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> VmResult<Id> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> VmResult<Id> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "stack underflow".into())
    }

    fn pop_mark(&mut self) -> VmResult<Vec<Id>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| "no MARK on the stack".to_string())?;
        if m > self.stack.len() {
            return Err("stack underflow below MARK".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&self, key: u64) -> VmResult<Id> {
        self.memo
            .get(&key)
            .copied()
            .ok_or_else(|| format!("memo key {key} is not set"))
    }

    fn memo_put(&mut self, key: u64) -> VmResult<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    // --- node helpers ------------------------------------------------------------------------

    fn items(&self, id: Id) -> Option<&[Id]> {
        match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => Some(v),
            _ => None,
        }
    }

    fn int(&self, id: Id) -> Option<i64> {
        match &self.nodes[id] {
            Node::Int(i) => Some(*i),
            Node::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn global(&self, id: Id) -> Option<(&str, &str)> {
        match &self.nodes[id] {
            Node::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    fn dict_key(&self, id: Id) -> Option<DictKey> {
        match &self.nodes[id] {
            Node::None => Some(DictKey::None),
            Node::Int(i) => Some(DictKey::Int(*i)),
            Node::Bool(b) => Some(DictKey::Int(i64::from(*b))),
            Node::Str(s) => Some(DictKey::Str(s.clone())),
            _ => None,
        }
    }

    fn set_item(&mut self, target: Id, key: Id, value: Id) -> VmResult<()> {
        let dk = self.dict_key(key);
        match &mut self.nodes[target] {
            Node::Dict(entries, index) => {
                match dk {
                    Some(dk) => match index.get(&dk) {
                        Some(&pos) => entries[pos].1 = value,
                        None => {
                            index.insert(dk, entries.len());
                            entries.push((key, value));
                        }
                    },
                    None => entries.push((key, value)),
                }
                Ok(())
            }
            Node::Object { dict_items, .. } => {
                dict_items.push((key, value));
                Ok(())
            }
            _ => Err("SETITEM on a value that is not a dict".into()),
        }
    }

    fn append(&mut self, target: Id, items: &[Id]) -> VmResult<()> {
        match &mut self.nodes[target] {
            Node::List(v) | Node::Object { list_items: v, .. } => {
                v.extend_from_slice(items);
                Ok(())
            }
            _ => Err("APPEND on a value that is not a list".into()),
        }
    }

    fn new_dict(&mut self, pairs: &[(Id, Id)]) -> VmResult<Node> {
        let id = self.alloc(Node::Dict(Vec::new(), HashMap::new()));
        for &(k, v) in pairs {
            self.set_item(id, k, v)?;
        }
        // Move the filled dict out of its temporary slot (the slot becomes an unused None).
        Ok(std::mem::replace(&mut self.nodes[id], Node::None))
    }

    /// `OrderedDict(...)`, `dict(...)`, `defaultdict(factory, ...)` with `skip` leading
    /// arguments ignored. `None` when the arguments are not a plain mapping/pair list.
    fn dict_from_args(&mut self, args: Id, skip: usize) -> VmResult<Option<Node>> {
        let Some(items) = self.items(args) else {
            return Ok(None);
        };
        let rest: Vec<Id> = items.iter().skip(skip).copied().collect();
        match rest.as_slice() {
            [] => Ok(Some(Node::Dict(Vec::new(), HashMap::new()))),
            [src] => {
                let pairs: Option<Vec<(Id, Id)>> = match &self.nodes[*src] {
                    Node::Dict(entries, _) => Some(entries.clone()),
                    Node::List(v) | Node::Tuple(v) => v
                        .iter()
                        .map(|&p| match self.items(p) {
                            Some(&[k, v]) => Some((k, v)),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                };
                match pairs {
                    Some(p) => self.new_dict(&p).map(Some),
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    fn rebuild_tensor(&self, args: Id) -> VmResult<Node> {
        let items = self
            .items(args)
            .ok_or("_rebuild_tensor: arguments are not a tuple")?;
        if items.len() < 4 {
            return Err(format!(
                "_rebuild_tensor: expected at least 4 arguments, got {}",
                items.len()
            ));
        }
        let storage = match &self.nodes[items[0]] {
            Node::Storage(s) => s.clone(),
            _ => return Err("_rebuild_tensor: first argument is not a storage".into()),
        };
        let storage_offset = self
            .int(items[1])
            .and_then(|i| usize::try_from(i).ok())
            .ok_or("_rebuild_tensor: bad storage offset")?;
        let dims = |id: Id, what: &str| -> VmResult<Vec<usize>> {
            self.items(id)
                .ok_or_else(|| format!("_rebuild_tensor: {what} is not a tuple"))?
                .iter()
                .map(|&d| {
                    self.int(d)
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or_else(|| format!("_rebuild_tensor: bad {what} entry"))
                })
                .collect()
        };
        let shape = dims(items[2], "size")?;
        let stride = dims(items[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(format!(
                "_rebuild_tensor: size has {} dims but stride has {}",
                shape.len(),
                stride.len()
            ));
        }
        let requires_grad = items.get(4).and_then(|&r| self.int(r)).unwrap_or(0) != 0;
        Ok(Node::Tensor(TensorMeta {
            storage,
            storage_offset,
            shape,
            stride,
            requires_grad,
            is_parameter: false,
        }))
    }

    fn rebuild_parameter(&self, args: Id) -> VmResult<Node> {
        let items = self
            .items(args)
            .ok_or("_rebuild_parameter: arguments are not a tuple")?;
        let data = items.first().ok_or("_rebuild_parameter: no arguments")?;
        let mut meta = match &self.nodes[*data] {
            Node::Tensor(t) => t.clone(),
            _ => return Err("_rebuild_parameter: first argument is not a tensor".into()),
        };
        meta.is_parameter = true;
        meta.requires_grad = items.get(1).and_then(|&r| self.int(r)).unwrap_or(1) != 0;
        Ok(Node::Tensor(meta))
    }

    /// Applies `callable(*args)` without running anything: allow-listed torch/collections
    /// callables build data, everything else becomes an inert object.
    fn reduce(&mut self, callable: Id, args: Id, nested: bool) -> VmResult<Node> {
        let global = self
            .global(callable)
            .map(|(m, n)| (m.to_string(), n.to_string()));
        if let Some((module, name)) = global {
            match (module.as_str(), name.as_str()) {
                ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                    return self.rebuild_tensor(args);
                }
                ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                    return self.rebuild_parameter(args);
                }
                ("torch._tensor", "_rebuild_from_type_v2") if !nested => {
                    // (func, new_type, args, state): rebuild with func when it is allow-listed.
                    if let Some(&[func, _new_type, inner, ..]) = self.items(args) {
                        let node = self.reduce(func, inner, true)?;
                        if matches!(node, Node::Tensor(_)) {
                            return Ok(node);
                        }
                    }
                }
                ("collections", "OrderedDict") | ("builtins", "dict") => {
                    if let Some(d) = self.dict_from_args(args, 0)? {
                        return Ok(d);
                    }
                }
                ("collections", "defaultdict") => {
                    if let Some(d) = self.dict_from_args(args, 1)? {
                        return Ok(d);
                    }
                }
                _ => {}
            }
        }
        Ok(Node::Object {
            class: callable,
            args,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        })
    }

    fn is_dict_class(&self, id: Id) -> bool {
        matches!(
            self.global(id),
            Some(("collections", "OrderedDict" | "defaultdict") | ("builtins", "dict"))
        )
    }

    fn build(&mut self, obj: Id, state: Id) -> VmResult<()> {
        let merged = match &self.nodes[obj] {
            Node::Object {
                state: Some(old), ..
            } => match (&self.nodes[*old], &self.nodes[state]) {
                (Node::Dict(..), Node::Dict(new_entries, _)) => {
                    let new_entries = new_entries.clone();
                    let old = *old;
                    for (k, v) in new_entries {
                        self.set_item(old, k, v)?;
                    }
                    true
                }
                _ => false,
            },
            Node::Object { state: None, .. } => false,
            Node::Dict(..) | Node::List(..) | Node::Set(..) | Node::Tensor(..) => {
                // e.g. the `_metadata` attribute of a state_dict OrderedDict: not needed.
                log::debug!("torch_pickle: ignoring BUILD state on a container/tensor");
                return Ok(());
            }
            _ => return Err("BUILD on a value that is not an object".into()),
        };
        if !merged {
            if let Node::Object { state: s, .. } = &mut self.nodes[obj] {
                *s = Some(state);
            }
        }
        Ok(())
    }

    fn persistent_load(&mut self, pid: Id) -> Node {
        if let Some(&[tag, ty, key, location, numel]) = self.items(pid) {
            if self.str_of(tag) == Some("storage") {
                let storage_type = match self.global(ty) {
                    Some(("torch" | "torch.cuda", name)) => Some(name.to_string()),
                    _ => None,
                };
                let key = match &self.nodes[key] {
                    Node::Str(s) => Some(s.clone()),
                    Node::Int(i) => Some(i.to_string()),
                    _ => None,
                };
                let location = self.str_of(location).map(str::to_string);
                let numel = self.int(numel).and_then(|n| usize::try_from(n).ok());
                if let (Some(storage_type), Some(key), Some(location), Some(numel)) =
                    (storage_type, key, location, numel)
                {
                    return Node::Storage(StorageRef {
                        storage_type,
                        key,
                        location,
                        numel,
                    });
                }
            }
        }
        Node::PersistentId(pid)
    }

    fn bytes_node(b: &[u8]) -> Node {
        Node::Bytes(b.to_vec())
    }

    fn string_node(b: &[u8]) -> VmResult<Node> {
        String::from_utf8(b.to_vec())
            .map(Node::Str)
            .map_err(|_| "unicode string is not valid UTF-8".into())
    }

    fn long_node(b: &[u8]) -> Node {
        if b.is_empty() {
            return Node::Int(0);
        }
        if b.len() <= 8 {
            let negative = b[b.len() - 1] & 0x80 != 0;
            let mut a = [if negative { 0xff } else { 0 }; 8];
            a[..b.len()].copy_from_slice(b);
            return Node::Int(i64::from_le_bytes(a));
        }
        Node::BigInt(b.to_vec())
    }

    // --- one opcode --------------------------------------------------------------------------

    /// Executes one opcode; `Some(root)` after `STOP`.
    fn step(&mut self) -> VmResult<Option<Id>> {
        if self.pos >= self.data.len() {
            return Err("truncated: stream ended without STOP".into());
        }
        let op = self.u8()?;
        match op {
            0x80 => {
                // PROTO
                let p = self.u8()?;
                if p > 5 {
                    return Err(format!("unsupported pickle protocol {p}"));
                }
            }
            0x95 => {
                // FRAME: a length prefix only; frames are not needed for a memory buffer.
                self.u64()?;
            }
            b'.' => return self.pop().map(Some),
            b'(' => self.marks.push(self.stack.len()),
            b'}' => self.push(Node::Dict(Vec::new(), HashMap::new())),
            b']' => self.push(Node::List(Vec::new())),
            b')' => self.push(Node::Tuple(Vec::new())),
            0x8f => self.push(Node::Set(Vec::new())),
            b'N' => self.push(Node::None),
            0x88 => self.push(Node::Bool(true)),
            0x89 => self.push(Node::Bool(false)),
            b'J' => {
                let v = self.i32()?;
                self.push(Node::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Node::Int(i64::from(v)));
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Node::Int(i64::from(v)));
            }
            0x8a => {
                // LONG1
                let n = self.u8()?;
                let b = self.take(u64::from(n))?;
                self.push(Self::long_node(b));
            }
            0x8b => {
                // LONG4
                let n = self.i32()?;
                let n = u64::try_from(n).map_err(|_| "LONG4 with negative length")?;
                let b = self.take(n)?;
                self.push(Self::long_node(b));
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Node::Float(f64::from_be_bytes(a)));
            }
            b'X' => {
                let n = self.u32()?;
                let b = self.take(u64::from(n))?;
                let node = Self::string_node(b)?;
                self.push(node);
            }
            0x8c => {
                let n = self.u8()?;
                let b = self.take(u64::from(n))?;
                let node = Self::string_node(b)?;
                self.push(node);
            }
            0x8d => {
                let n = self.u64()?;
                let b = self.take(n)?;
                let node = Self::string_node(b)?;
                self.push(node);
            }
            b'T' | b'U' => {
                // BINSTRING / SHORT_BINSTRING (Python 2 str): text when UTF-8, else bytes.
                let n = if op == b'T' {
                    u64::try_from(self.i32()?).map_err(|_| "BINSTRING with negative length")?
                } else {
                    u64::from(self.u8()?)
                };
                let b = self.take(n)?;
                let node = Self::string_node(b).unwrap_or_else(|_| Self::bytes_node(b));
                self.push(node);
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                // BINBYTES / SHORT_BINBYTES / BINBYTES8 / BYTEARRAY8
                let n = match op {
                    b'B' => u64::from(self.u32()?),
                    b'C' => u64::from(self.u8()?),
                    _ => self.u64()?,
                };
                let b = self.take(n)?;
                self.push(Self::bytes_node(b));
            }
            0x85..=0x87 => {
                // TUPLE1/2/3
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Node::Tuple(items));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            0x91 => {
                // FROZENSET
                let items = self.pop_mark()?;
                self.push(Node::Set(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("DICT with an odd number of items".into());
                }
                let pairs: Vec<(Id, Id)> = items.chunks(2).map(|c| (c[0], c[1])).collect();
                let node = self.new_dict(&pairs)?;
                self.push(node);
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?;
                self.append(target, &[v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.append(target, &items)?;
            }
            0x90 => {
                // ADDITEMS
                let items = self.pop_mark()?;
                let target = self.top()?;
                match &mut self.nodes[target] {
                    Node::Set(v) => v.extend_from_slice(&items),
                    _ => return Err("ADDITEMS on a value that is not a set".into()),
                }
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?;
                self.set_item(target, k, v)?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let target = self.top()?;
                for c in items.chunks(2) {
                    self.set_item(target, c[0], c[1])?;
                }
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(u64::from(k))?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(u64::from(k))?;
            }
            0x94 => {
                // MEMOIZE
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            b'h' => {
                let k = self.u8()?;
                let id = self.memo_get(u64::from(k))?;
                self.stack.push(id);
            }
            b'j' => {
                let k = self.u32()?;
                let id = self.memo_get(u64::from(k))?;
                self.stack.push(id);
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let id = self.top()?;
                self.stack.push(id);
            }
            b'c' => {
                let module = normalise_module(self.line()?).to_string();
                let name = self.line()?.to_string();
                self.push(Node::Global { module, name });
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name)) else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                let node = Node::Global {
                    module: normalise_module(module).to_string(),
                    name: name.to_string(),
                };
                self.push(node);
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let node = self.reduce(callable, args, false)?;
                self.push(node);
            }
            0x81 => {
                // NEWOBJ
                let args = self.pop()?;
                let class = self.pop()?;
                let node = if self.is_dict_class(class) {
                    Node::Dict(Vec::new(), HashMap::new())
                } else {
                    Node::Object {
                        class,
                        args,
                        state: None,
                        list_items: Vec::new(),
                        dict_items: Vec::new(),
                    }
                };
                self.push(node);
            }
            0x92 => {
                // NEWOBJ_EX
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let node = if self.is_dict_class(class) {
                    Node::Dict(Vec::new(), HashMap::new())
                } else {
                    let args = self.alloc(Node::Tuple(vec![args, kwargs]));
                    Node::Object {
                        class,
                        args,
                        state: None,
                        list_items: Vec::new(),
                        dict_items: Vec::new(),
                    }
                };
                self.push(node);
            }
            b'b' => {
                let state = self.pop()?;
                let obj = self.top()?;
                self.build(obj, state)?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let node = self.persistent_load(pid);
                self.push(node);
            }
            b'P' => {
                let pid = self.line()?.to_string();
                let id = self.alloc(Node::Str(pid));
                self.push(Node::PersistentId(id));
            }
            0x82..=0x84 => {
                return Err("extension registry opcodes (EXT1/2/4) are not supported".into())
            }
            0x97 | 0x98 => return Err("out-of-band buffers (protocol 5) are not supported".into()),
            b'I' | b'L' | b'F' | b'S' | b'V' | b'p' | b'g' | b'i' | b'o' => {
                return Err(format!(
                    "protocol-0 text opcode {:?} is not supported",
                    op as char
                ))
            }
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(None)
    }

    // --- arena -> tree -----------------------------------------------------------------------

    fn to_value(
        &self,
        id: Id,
        depth: usize,
        on_path: &mut [bool],
        budget: &mut usize,
    ) -> VmResult<PickleValue> {
        if depth > MAX_TREE_DEPTH {
            return Err(format!("value tree nested deeper than {MAX_TREE_DEPTH}"));
        }
        if *budget == 0 {
            return Err(format!("value tree larger than {MAX_TREE_NODES} nodes"));
        }
        *budget -= 1;
        if on_path[id] {
            return Ok(PickleValue::Recursive);
        }
        on_path[id] = true;
        let result = self.to_value_inner(id, depth, on_path, budget);
        on_path[id] = false;
        result
    }

    fn to_value_inner(
        &self,
        id: Id,
        depth: usize,
        on_path: &mut [bool],
        budget: &mut usize,
    ) -> VmResult<PickleValue> {
        let d = depth + 1;
        let seq = |ids: &[Id], on_path: &mut [bool], budget: &mut usize| {
            ids.iter()
                .map(|&i| self.to_value(i, d, on_path, budget))
                .collect::<VmResult<Vec<_>>>()
        };
        let pairs = |ids: &[(Id, Id)], on_path: &mut [bool], budget: &mut usize| {
            ids.iter()
                .map(|&(k, v)| {
                    Ok((
                        self.to_value(k, d, on_path, budget)?,
                        self.to_value(v, d, on_path, budget)?,
                    ))
                })
                .collect::<VmResult<Vec<_>>>()
        };
        Ok(match &self.nodes[id] {
            Node::None => PickleValue::None,
            Node::Bool(b) => PickleValue::Bool(*b),
            Node::Int(i) => PickleValue::Int(*i),
            Node::BigInt(b) => PickleValue::BigInt(b.clone()),
            Node::Float(f) => PickleValue::Float(*f),
            Node::Str(s) => PickleValue::Str(s.clone()),
            Node::Bytes(b) => PickleValue::Bytes(b.clone()),
            Node::List(v) => PickleValue::List(seq(v, on_path, budget)?),
            Node::Tuple(v) => PickleValue::Tuple(seq(v, on_path, budget)?),
            Node::Set(v) => PickleValue::Set(seq(v, on_path, budget)?),
            Node::Dict(v, _) => PickleValue::Dict(pairs(v, on_path, budget)?),
            Node::Global { module, name } => PickleValue::Global {
                module: module.clone(),
                name: name.clone(),
            },
            Node::Storage(s) => PickleValue::Storage(s.clone()),
            Node::Tensor(t) => PickleValue::Tensor(t.clone()),
            Node::Object {
                class,
                args,
                state,
                list_items,
                dict_items,
            } => PickleValue::Object {
                class: Box::new(self.to_value(*class, d, on_path, budget)?),
                args: Box::new(self.to_value(*args, d, on_path, budget)?),
                state: match state {
                    Some(s) => Some(Box::new(self.to_value(*s, d, on_path, budget)?)),
                    None => None,
                },
                list_items: seq(list_items, on_path, budget)?,
                dict_items: pairs(dict_items, on_path, budget)?,
            },
            Node::PersistentId(p) => {
                PickleValue::PersistentId(Box::new(self.to_value(*p, d, on_path, budget)?))
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

/// A dense row-major tensor read from a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    /// Size of each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// The dtype of the storage it was read from.
    pub dtype: TorchDtype,
    /// The elements in row-major order, converted to `f32` (exact for f16/bf16/f32 and for
    /// integers up to 2^24 in magnitude; f64 is rounded; bool is 0/1).
    pub data: Vec<f32>,
}

impl TorchTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Checks the view against its storage bytes; returns its element count.
fn check_view(meta: &TensorMeta, dtype: TorchDtype, bytes: &[u8]) -> Result<usize, String> {
    if meta.shape.len() != meta.stride.len() {
        return Err("size and stride have different lengths".into());
    }
    let needed = meta
        .storage
        .numel
        .checked_mul(dtype.size_bytes())
        .ok_or("storage size overflows")?;
    if bytes.len() < needed {
        return Err(format!(
            "record has {} bytes, {} elements of {:?} need {needed}",
            bytes.len(),
            meta.storage.numel,
            dtype
        ));
    }
    let numel = meta.numel().ok_or("element count overflows")?;
    if numel > MAX_TENSOR_ELEMENTS {
        return Err(format!(
            "view has {numel} elements, more than the limit {MAX_TENSOR_ELEMENTS}"
        ));
    }
    if numel == 0 {
        return Ok(0);
    }
    let mut last = meta.storage_offset;
    for (&d, &s) in meta.shape.iter().zip(&meta.stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(last))
            .ok_or("view extent overflows")?;
    }
    if last >= meta.storage.numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches element {last} of a storage of {}",
            meta.storage_offset, meta.shape, meta.stride, meta.storage.numel
        ));
    }
    Ok(numel)
}

/// Calls `f(storage_index)` for every element of a view already accepted by [`check_view`],
/// in row-major order.
fn for_each_index(meta: &TensorMeta, numel: usize, mut f: impl FnMut(usize)) {
    if numel == 0 {
        return;
    }
    if meta.is_contiguous() {
        (meta.storage_offset..meta.storage_offset + numel).for_each(f);
        return;
    }
    // Odometer over the multi-index. Strides of size-1 dims are irrelevant (and may be huge), so
    // they count as 0; for the others `stride * size <= last + stride`, which cannot overflow
    // because `last` is below the storage length.
    let rank = meta.shape.len();
    let stride: Vec<usize> = meta
        .shape
        .iter()
        .zip(&meta.stride)
        .map(|(&d, &s)| if d == 1 { 0 } else { s })
        .collect();
    let mut idx = vec![0usize; rank];
    let mut pos = meta.storage_offset;
    for _ in 0..numel {
        f(pos);
        for dim in (0..rank).rev() {
            idx[dim] += 1;
            pos += stride[dim];
            if idx[dim] < meta.shape[dim] {
                break;
            }
            pos -= stride[dim] * meta.shape[dim];
            idx[dim] = 0;
        }
    }
}

fn element<const N: usize>(bytes: &[u8], i: usize, big_endian: bool) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&bytes[i * N..i * N + N]);
    if big_endian {
        a.reverse();
    }
    a
}

/// Gathers the view `meta` from the raw storage `bytes` into a dense `f32` tensor.
fn materialize_f32(
    meta: &TensorMeta,
    bytes: &[u8],
    big_endian: bool,
) -> Result<TorchTensor, String> {
    let dtype = meta
        .storage
        .dtype()
        .ok_or_else(|| format!("unsupported storage type {}", meta.storage.storage_type))?;
    let numel = check_view(meta, dtype, bytes)?;
    let mut data = Vec::new();
    data.try_reserve_exact(numel)
        .map_err(|e| format!("cannot allocate {numel} elements: {e}"))?;
    let b = bytes;
    let be = big_endian;
    match dtype {
        TorchDtype::F32 => for_each_index(meta, numel, |i| {
            data.push(f32::from_le_bytes(element::<4>(b, i, be)))
        }),
        TorchDtype::F64 => for_each_index(meta, numel, |i| {
            data.push(f64::from_le_bytes(element::<8>(b, i, be)) as f32)
        }),
        TorchDtype::F16 => for_each_index(meta, numel, |i| {
            data.push(half::f16::from_le_bytes(element::<2>(b, i, be)).to_f32())
        }),
        TorchDtype::BF16 => for_each_index(meta, numel, |i| {
            data.push(half::bf16::from_le_bytes(element::<2>(b, i, be)).to_f32())
        }),
        TorchDtype::I64 => for_each_index(meta, numel, |i| {
            data.push(i64::from_le_bytes(element::<8>(b, i, be)) as f32)
        }),
        TorchDtype::I32 => for_each_index(meta, numel, |i| {
            data.push(i32::from_le_bytes(element::<4>(b, i, be)) as f32)
        }),
        TorchDtype::I16 => for_each_index(meta, numel, |i| {
            data.push(f32::from(i16::from_le_bytes(element::<2>(b, i, be))))
        }),
        TorchDtype::I8 => for_each_index(meta, numel, |i| data.push(f32::from(b[i] as i8))),
        TorchDtype::U8 => for_each_index(meta, numel, |i| data.push(f32::from(b[i]))),
        TorchDtype::Bool => for_each_index(meta, numel, |i| {
            data.push(if b[i] != 0 { 1.0 } else { 0.0 })
        }),
    }
    Ok(TorchTensor {
        shape: meta.shape.clone(),
        dtype,
        data,
    })
}

/// Gathers an integer/bool view exactly as `i64`.
fn materialize_i64(meta: &TensorMeta, bytes: &[u8], big_endian: bool) -> Result<Vec<i64>, String> {
    let dtype = meta
        .storage
        .dtype()
        .ok_or_else(|| format!("unsupported storage type {}", meta.storage.storage_type))?;
    if dtype.is_float() {
        return Err(format!("{dtype:?} is not an integer dtype"));
    }
    let numel = check_view(meta, dtype, bytes)?;
    let mut data = Vec::new();
    data.try_reserve_exact(numel)
        .map_err(|e| format!("cannot allocate {numel} elements: {e}"))?;
    let b = bytes;
    let be = big_endian;
    match dtype {
        TorchDtype::I64 => for_each_index(meta, numel, |i| {
            data.push(i64::from_le_bytes(element::<8>(b, i, be)))
        }),
        TorchDtype::I32 => for_each_index(meta, numel, |i| {
            data.push(i64::from(i32::from_le_bytes(element::<4>(b, i, be))))
        }),
        TorchDtype::I16 => for_each_index(meta, numel, |i| {
            data.push(i64::from(i16::from_le_bytes(element::<2>(b, i, be))))
        }),
        TorchDtype::I8 => for_each_index(meta, numel, |i| data.push(i64::from(b[i] as i8))),
        TorchDtype::U8 | TorchDtype::Bool => {
            for_each_index(meta, numel, |i| data.push(i64::from(b[i])))
        }
        other => return Err(format!("{other:?} is not an integer dtype")),
    }
    Ok(data)
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
            .ok_or_else(|| TorchReadError::Storage {
                path: self.path.clone(),
                key: meta.storage.key.clone(),
                msg: "storage was not loaded".into(),
            })
    }

    fn storage_error(&self, meta: &TensorMeta, msg: String) -> TorchReadError {
        TorchReadError::Storage {
            path: self.path.clone(),
            key: meta.storage.key.clone(),
            msg,
        }
    }

    /// Materialises any tensor of [`Self::root`] as a dense row-major `f32` tensor.
    pub fn tensor(&self, meta: &TensorMeta) -> Result<TorchTensor, TorchReadError> {
        let bytes = self.storage_bytes(meta)?;
        materialize_f32(meta, bytes, self.big_endian).map_err(|m| self.storage_error(meta, m))
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

    /// The parameter indices of the optimizer's `param_groups` (all groups, in order), i.e. the
    /// order in which `optimizer.state` keys refer to parameters. `None` when the checkpoint has
    /// no `optimizer` dict of that shape.
    pub fn optimizer_param_indices(&self) -> Option<Vec<i64>> {
        let groups = self
            .root
            .get("optimizer")?
            .get("param_groups")?
            .as_sequence()?;
        let mut out = Vec::new();
        for g in groups {
            for p in g.get("params")?.as_sequence()? {
                out.push(p.as_int()?);
            }
        }
        Some(out)
    }

    /// SGD momentum buffers: `optimizer.state[i].momentum_buffer` keyed by parameter index `i`
    /// (an index into [`Self::optimizer_param_indices`]' parameter numbering). Parameters
    /// without a buffer (or with `None`) are absent; a checkpoint without an `optimizer` entry
    /// gives an empty map.
    pub fn momentum_buffers(&self) -> Result<BTreeMap<usize, TorchTensor>, TorchReadError> {
        let mut out = BTreeMap::new();
        let Some(opt) = self.root.get("optimizer") else {
            return Ok(out);
        };
        let state = opt
            .get("state")
            .and_then(PickleValue::as_dict)
            .ok_or_else(|| self.layout("`optimizer` has no `state` dict"))?;
        for (k, v) in state {
            let idx = k
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| self.layout(format!("optimizer state key {k:?} is not an index")))?;
            match v.get("momentum_buffer") {
                Some(PickleValue::Tensor(meta)) => {
                    out.insert(idx, self.tensor(meta)?);
                }
                Some(PickleValue::None) | None => {}
                Some(other) => {
                    return Err(self.layout(format!(
                        "optimizer state {idx}: momentum_buffer is not a tensor: {other:?}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

fn read_record<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    path: &Path,
    name: &str,
) -> Result<Vec<u8>, TorchReadError> {
    let record_err = |msg: String| TorchReadError::Record {
        path: path.to_path_buf(),
        name: name.to_string(),
        msg,
    };
    let mut file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(TorchReadError::MissingRecord {
                path: path.to_path_buf(),
                name: name.to_string(),
            })
        }
        Err(e) => return Err(record_err(e.to_string())),
    };
    let size = file.size();
    let mut buf = Vec::new();
    let initial = size.min(MAX_INITIAL_RECORD_BUFFER) as usize;
    buf.try_reserve_exact(initial)
        .map_err(|e| record_err(format!("cannot allocate {initial} bytes: {e}")))?;
    // One byte past the declared size, so the zip reader reaches the end of the record and
    // verifies its CRC (and a record longer than declared is noticed).
    (&mut file)
        .take(size.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| record_err(e.to_string()))?;
    if buf.len() as u64 != size {
        return Err(record_err(format!(
            "record is {} bytes, header says {size}",
            buf.len()
        )));
    }
    Ok(buf)
}

/// Reads a `torch.save` zip checkpoint without executing anything from it.
///
/// The top level may be a dict with a `state_dict` entry (Dassl/MaPLe checkpoints: `epoch`,
/// `optimizer`, `scheduler`, ... are kept in [`TorchCheckpoint::root`]) or a bare state dict.
/// Every state-dict value must be a tensor; all of them are materialised as dense `f32`.
///
/// Errors (all naming `path`): unreadable file, not a zip, missing `data.pkl` or storage
/// record, corrupt record, malformed pickle, a view outside its storage, an unsupported
/// storage dtype inside the state dict, or a top level that is not a dict.
pub fn read_torch_checkpoint(path: &Path) -> Result<TorchCheckpoint, TorchReadError> {
    let file = File::open(path).map_err(|source| TorchReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| TorchReadError::NotZip {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;

    // `<prefix>/data.pkl` with a single top-level folder (torch's layout); `data.pkl` at the root
    // is accepted too.
    let pkl_name = archive
        .file_names()
        .filter(|n| {
            *n == "data.pkl"
                || n.strip_suffix("/data.pkl")
                    .is_some_and(|p| !p.is_empty() && !p.contains('/'))
        })
        .min_by_key(|n| n.len())
        .map(str::to_string)
        .ok_or_else(|| TorchReadError::MissingRecord {
            path: path.to_path_buf(),
            name: "*/data.pkl".into(),
        })?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();

    let big_endian = match archive.index_for_name(&format!("{prefix}byteorder")) {
        None => false,
        Some(_) => {
            let name = format!("{prefix}byteorder");
            let b = read_record(&mut archive, path, &name)?;
            match std::str::from_utf8(&b).map(str::trim) {
                Ok("little") => false,
                Ok("big") => true,
                _ => {
                    return Err(TorchReadError::Record {
                        path: path.to_path_buf(),
                        name,
                        msg: format!("unknown byte order {:?}", String::from_utf8_lossy(&b)),
                    })
                }
            }
        }
    };

    let pkl = read_record(&mut archive, path, &pkl_name)?;
    let root = parse_pickle(&pkl).map_err(|e| TorchReadError::Pickle {
        path: path.to_path_buf(),
        offset: e.offset,
        msg: e.msg,
    })?;

    // Raw storages referenced anywhere in the tree (shared storages are read once).
    let mut keys = BTreeSet::new();
    root.visit_storages(&mut |s| {
        keys.insert(s.key.clone());
    });
    let mut storages = HashMap::with_capacity(keys.len());
    for key in keys {
        let bytes = read_record(&mut archive, path, &format!("{prefix}data/{key}"))?;
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
    };

    let top = ckpt
        .root
        .as_dict()
        .ok_or_else(|| ckpt.layout("top-level object is not a dict"))?;
    ckpt.top_level_keys = top
        .iter()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    ckpt.epoch = ckpt.root.get("epoch").and_then(PickleValue::as_int);
    let sd = match ckpt.root.get("state_dict") {
        Some(v) => v
            .as_dict()
            .ok_or_else(|| ckpt.layout("`state_dict` is not a dict"))?,
        None => top,
    };
    let mut state_dict = Vec::with_capacity(sd.len());
    for (k, v) in sd {
        let name = k
            .as_str()
            .ok_or_else(|| ckpt.layout(format!("state_dict key {k:?} is not a string")))?;
        let meta = v
            .as_tensor()
            .ok_or_else(|| ckpt.layout(format!("state_dict entry `{name}` is not a tensor")))?;
        state_dict.push((name.to_string(), ckpt.tensor(meta)?));
    }
    ckpt.state_dict = state_dict;
    Ok(ckpt)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture_dir() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/maple-tiny");
        if p.exists() {
            p
        } else {
            PathBuf::from("/work/main/tests/fixtures/maple-tiny")
        }
    }

    fn checkpoint_path() -> PathBuf {
        fixture_dir().join("checkpoint/MultiModalPromptLearner/model.pth.tar-5")
    }

    // --- a tiny pickle writer for hand-built streams -----------------------------------------

    #[derive(Default)]
    struct P(Vec<u8>);

    impl P {
        fn op(&mut self, b: u8) -> &mut Self {
            self.0.push(b);
            self
        }
        fn proto(&mut self) -> &mut Self {
            self.0.extend_from_slice(&[0x80, 2]);
            self
        }
        fn s(&mut self, s: &str) -> &mut Self {
            self.0.push(b'X');
            self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn int(&mut self, i: i32) -> &mut Self {
            self.0.push(b'J');
            self.0.extend_from_slice(&i.to_le_bytes());
            self
        }
        fn global(&mut self, module: &str, name: &str) -> &mut Self {
            self.0.push(b'c');
            self.0
                .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
            self
        }
        fn mark(&mut self) -> &mut Self {
            self.op(b'(')
        }
        fn ints(&mut self, v: &[i32]) -> &mut Self {
            self.mark();
            for &i in v {
                self.int(i);
            }
            self.op(b't')
        }
        /// Pushes a `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
        fn tensor(
            &mut self,
            storage: &str,
            key: &str,
            numel: i32,
            offset: i32,
            size: &[i32],
            stride: &[i32],
        ) -> &mut Self {
            self.global("torch._utils", "_rebuild_tensor_v2").mark();
            self.mark()
                .s("storage")
                .global("torch", storage)
                .s(key)
                .s("cpu")
                .int(numel)
                .op(b't')
                .op(b'Q');
            self.int(offset).ints(size).ints(stride).op(0x89);
            self.global("collections", "OrderedDict").op(b')').op(b'R');
            self.op(b't').op(b'R')
        }
        fn bytes(&self) -> Vec<u8> {
            self.0.clone()
        }
    }

    fn write_zip(path: &Path, records: &[(&str, &[u8])]) {
        let f = File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in records {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn read_safetensor(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (t.shape().to_vec(), data)
    }

    // --- fixture -----------------------------------------------------------------------------

    #[test]
    fn fixture_checkpoint_parses_and_matches_train_step() {
        let ckpt = read_torch_checkpoint(&checkpoint_path()).unwrap();
        assert_eq!(ckpt.epoch, Some(5));
        assert_eq!(
            ckpt.top_level_keys,
            [
                "state_dict",
                "epoch",
                "optimizer",
                "scheduler",
                "val_result"
            ]
        );
        assert_eq!(ckpt.root.get("val_result"), Some(&PickleValue::None));

        // Keys and order from config.json.
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture_dir().join("config.json")).unwrap())
                .unwrap();
        let expected_keys: Vec<&str> = config["checkpoint"]["state_dict_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let keys: Vec<&str> = ckpt.state_dict.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, expected_keys);

        // Shapes from FIXTURES.md.
        let shape = |n: &str| ckpt.get(n).unwrap().shape.clone();
        assert_eq!(shape("prompt_learner.ctx"), [2, 64]);
        assert_eq!(shape("prompt_learner.token_prefix"), [5, 1, 64]);
        assert_eq!(shape("prompt_learner.token_suffix"), [5, 74, 64]);
        assert_eq!(shape("prompt_learner.proj.weight"), [192, 64]);
        assert_eq!(shape("prompt_learner.proj.bias"), [192]);
        assert_eq!(shape("prompt_learner.compound_prompts_text.1"), [2, 64]);
        assert_eq!(
            shape("prompt_learner.compound_prompt_projections.0.weight"),
            [192, 64]
        );
        assert_eq!(shape("image_encoder.conv1.weight"), [192, 3, 8, 8]);
        assert_eq!(shape("text_encoder.positional_embedding"), [77, 64]);
        assert_eq!(shape("logit_scale"), Vec::<usize>::new());
        for (name, t) in &ckpt.state_dict {
            assert_eq!(t.dtype, TorchDtype::F32, "{name}");
            assert_eq!(t.numel(), t.shape.iter().product::<usize>(), "{name}");
        }

        // Prompt parameters == step3.param.* exactly; momentum buffers == step3.momentum_buffer.*.
        let st_bytes = std::fs::read(fixture_dir().join("train_step.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
        let trainable = [
            "prompt_learner.ctx",
            "prompt_learner.proj.weight",
            "prompt_learner.proj.bias",
            "prompt_learner.compound_prompts_text.0",
            "prompt_learner.compound_prompts_text.1",
            "prompt_learner.compound_prompt_projections.0.weight",
            "prompt_learner.compound_prompt_projections.0.bias",
            "prompt_learner.compound_prompt_projections.1.weight",
            "prompt_learner.compound_prompt_projections.1.bias",
        ];
        for name in trainable {
            let (s, d) = read_safetensor(&st, &format!("step3.param.{name}"));
            let t = ckpt.get(name).unwrap();
            assert_eq!(t.shape, s, "{name}");
            assert!(
                t.data
                    .iter()
                    .zip(&d)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name} differs from step3.param"
            );
        }

        let order: Vec<&str> = config["optim"]["optimizer_param_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let indices = ckpt.optimizer_param_indices().unwrap();
        assert_eq!(indices, (0..order.len() as i64).collect::<Vec<_>>());
        let buffers = ckpt.momentum_buffers().unwrap();
        assert_eq!(
            buffers.keys().copied().collect::<Vec<_>>(),
            (1..=9).collect::<Vec<_>>()
        );
        for (idx, buf) in &buffers {
            let name = order[*idx];
            assert!(trainable.contains(&name), "{name}");
            let (s, d) = read_safetensor(&st, &format!("step3.momentum_buffer.{name}"));
            assert_eq!(buf.shape, s, "{name}");
            assert!(
                buf.data
                    .iter()
                    .zip(&d)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name} momentum differs"
            );
        }

        // The scheduler's pickled objects parse into inert objects.
        let succ = ckpt
            .root
            .get("scheduler")
            .unwrap()
            .get("successor")
            .unwrap();
        assert_eq!(
            succ.class_name(),
            Some(("torch.optim.lr_scheduler", "CosineAnnealingLR"))
        );
        let PickleValue::Object {
            state: Some(state), ..
        } = succ
        else {
            panic!("successor is not an object: {succ:?}");
        };
        assert_eq!(state.get("T_max").and_then(PickleValue::as_f64), Some(5.0));
        let sgd = state.get("optimizer").unwrap();
        assert_eq!(sgd.class_name(), Some(("torch.optim.sgd", "SGD")));
        let sched = ckpt.root.get("scheduler").unwrap();
        assert_eq!(
            sched.get("warmup_epoch").and_then(PickleValue::as_int),
            Some(1)
        );
        assert_eq!(
            sched
                .get("_last_lr")
                .and_then(PickleValue::as_sequence)
                .map(|v| v.len()),
            Some(1)
        );
    }

    #[test]
    fn fixture_ctx_is_an_offset_view() {
        // The fixture stores prompt_learner.ctx as a (2, 64) view at offset 64 of a 4928-element
        // storage: check the metadata the state dict was gathered from.
        let ckpt = read_torch_checkpoint(&checkpoint_path()).unwrap();
        let sd = ckpt.root.get("state_dict").unwrap();
        let meta = sd.get("prompt_learner.ctx").unwrap().as_tensor().unwrap();
        // state_dict() holds detached tensors, not Parameters.
        assert!(!meta.is_parameter && !meta.requires_grad);
        assert_eq!(meta.storage.storage_type, "FloatStorage");
        assert_eq!(meta.shape, [2, 64]);
        assert_eq!(meta.stride, [64, 1]);
        assert_eq!(meta.storage_offset, 64);
        assert_eq!(meta.storage.numel, 4928);

        // The scheduler's pickled SGD holds the same storages again, as Parameters.
        let succ = ckpt
            .root
            .get("scheduler")
            .unwrap()
            .get("successor")
            .unwrap();
        let PickleValue::Object {
            state: Some(state), ..
        } = succ
        else {
            panic!("successor is not an object");
        };
        let PickleValue::Object {
            state: Some(sgd), ..
        } = state.get("optimizer").unwrap()
        else {
            panic!("SGD is not an object");
        };
        let groups = sgd.get("param_groups").unwrap().as_sequence().unwrap();
        let params = groups[0].get("params").unwrap().as_sequence().unwrap();
        assert_eq!(params.len(), 118);
        let p1 = params[1].as_tensor().unwrap();
        assert!(p1.is_parameter && p1.requires_grad);
        assert_eq!(p1.storage, meta.storage);
        assert_eq!(
            ckpt.tensor(p1).unwrap(),
            *ckpt.get("prompt_learner.ctx").unwrap()
        );
        assert!(
            !params[0].as_tensor().unwrap().requires_grad,
            "logit_scale is frozen"
        );
    }

    // --- corrupt input -----------------------------------------------------------------------

    #[test]
    fn truncated_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let full = std::fs::read(checkpoint_path()).unwrap();
        for cut in [0usize, 10, 1000, full.len() / 2, full.len() - 10] {
            let p = dir.path().join(format!("cut{cut}.pth"));
            std::fs::write(&p, &full[..cut]).unwrap();
            let err = read_torch_checkpoint(&p).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&*p.to_string_lossy()), "{msg}");
            assert!(matches!(err, TorchReadError::NotZip { .. }), "{err:?}");
        }
        let missing = dir.path().join("missing.pth");
        let err = read_torch_checkpoint(&missing).unwrap_err();
        assert!(matches!(err, TorchReadError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.pth"));
    }

    #[test]
    fn garbage_pickle_and_truncated_pickle_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pth");
        write_zip(
            &garbage,
            &[
                ("m/data.pkl", b"\x80\x02this is not a pickle"),
                ("m/byteorder", b"little"),
            ],
        );
        let err = read_torch_checkpoint(&garbage).unwrap_err();
        assert!(matches!(err, TorchReadError::Pickle { .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.pth"), "{err}");

        // The real data.pkl cut short inside a real-looking archive.
        let mut z = zip::ZipArchive::new(File::open(checkpoint_path()).unwrap()).unwrap();
        let pkl = read_record(&mut z, &checkpoint_path(), "model.pth/data.pkl").unwrap();
        let short = dir.path().join("short.pth");
        write_zip(&short, &[("m/data.pkl", &pkl[..pkl.len() / 2])]);
        let err = read_torch_checkpoint(&short).unwrap_err();
        assert!(
            matches!(err, TorchReadError::Pickle { ref msg, .. } if msg.contains("truncated")),
            "{err:?}"
        );
        assert!(err.to_string().contains("short.pth"), "{err}");

        // Valid pickle, storage record missing.
        let nodata = dir.path().join("nodata.pth");
        write_zip(&nodata, &[("m/data.pkl", &pkl)]);
        let err = read_torch_checkpoint(&nodata).unwrap_err();
        assert!(
            matches!(err, TorchReadError::MissingRecord { ref name, .. } if name.starts_with("m/data/")),
            "{err:?}"
        );

        // No data.pkl at all.
        let empty = dir.path().join("empty.pth");
        write_zip(&empty, &[("m/version", b"3\n")]);
        let err = read_torch_checkpoint(&empty).unwrap_err();
        assert!(
            matches!(err, TorchReadError::MissingRecord { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn mutated_pickles_never_panic() {
        let mut z = zip::ZipArchive::new(File::open(checkpoint_path()).unwrap()).unwrap();
        let pkl = read_record(&mut z, &checkpoint_path(), "model.pth/data.pkl").unwrap();
        assert!(parse_pickle(&pkl).is_ok());
        // Every prefix in steps: must error, not panic.
        for cut in (0..pkl.len()).step_by(97) {
            assert!(parse_pickle(&pkl[..cut]).is_err(), "prefix {cut} parsed");
        }
        // Deterministic byte mutations: any result is fine, panics are not.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut m = pkl.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % m.len() as u64) as usize;
                m[i] = next() as u8;
            }
            let _ = parse_pickle(&m);
        }
    }

    #[test]
    fn hostile_structures_are_bounded() {
        // A list containing itself.
        let mut p = P::default();
        p.proto()
            .op(b']')
            .op(b'q')
            .op(0)
            .op(b'h')
            .op(0)
            .op(b'a')
            .op(b'.');
        let v = parse_pickle(&p.bytes()).unwrap();
        assert_eq!(v, PickleValue::List(vec![PickleValue::Recursive]));

        // "Billion laughs": 40 levels of (x, x) sharing.
        let mut p = P::default();
        p.proto().op(b']');
        for _ in 0..40 {
            p.op(b'q').op(0).op(b'h').op(0).op(0x86);
        }
        p.op(b'.');
        let err = parse_pickle(&p.bytes()).unwrap_err();
        assert!(err.msg.contains("larger than"), "{err}");

        // Deep nesting.
        let mut p = P::default();
        p.proto();
        for _ in 0..10_000 {
            p.op(b']');
        }
        for _ in 0..9_999 {
            p.op(b'a');
        }
        p.op(b'.');
        let err = parse_pickle(&p.bytes()).unwrap_err();
        assert!(err.msg.contains("deeper"), "{err}");

        // Lengths beyond the stream.
        for bad in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\x8b\xff\xff\xff\x7f",
            b"\x80\x02h\x05.",
            b"\x80\x02a.",
            b"\x80\x02(.",
            b"\x80\x02)R.",
            b"\x80\x06.",
            b"I12\n.",
        ] {
            assert!(parse_pickle(bad).is_err(), "{bad:?}");
        }
    }

    // --- nothing is executed -----------------------------------------------------------------

    #[test]
    fn unknown_globals_are_inert_objects() {
        // os.system("touch PWNED") via REDUCE, builtins.eval via STACK_GLOBAL/NEWOBJ, then BUILD.
        let mut p = P::default();
        p.proto().op(b'}').mark();
        p.s("boom")
            .global("os", "system")
            .s("touch PWNED")
            .op(0x85)
            .op(b'R');
        p.s("eval")
            .s("builtins")
            .s("eval")
            .op(0x93)
            .mark()
            .s("1+1")
            .op(b't')
            .op(0x81);
        p.op(b'}').s("attr").int(7).op(b's').op(b'b');
        p.op(b'u').op(b'.');
        let v = parse_pickle(&p.bytes()).unwrap();
        let boom = v.get("boom").unwrap();
        assert_eq!(boom.class_name(), Some(("os", "system")));
        let PickleValue::Object { args, state, .. } = boom else {
            panic!("{boom:?}")
        };
        assert_eq!(
            **args,
            PickleValue::Tuple(vec![PickleValue::Str("touch PWNED".into())])
        );
        assert!(state.is_none());
        let ev = v.get("eval").unwrap();
        assert_eq!(ev.class_name(), Some(("builtins", "eval")));
        let PickleValue::Object {
            state: Some(state), ..
        } = ev
        else {
            panic!("{ev:?}")
        };
        assert_eq!(state.get("attr").and_then(PickleValue::as_int), Some(7));
        assert!(!Path::new("PWNED").exists());
    }

    // --- synthetic checkpoints ---------------------------------------------------------------

    #[test]
    fn synthetic_strided_views_materialise_correctly() {
        // Storage "0": 12 floats 0..12. Storage "1": 6 halves. Storage "2": 4 longs.
        let floats: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let halves: Vec<u8> = [0.5f32, -1.0, 2.0, 3.5, 65504.0, -0.25]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let longs: Vec<u8> = [5i64, -7, 1 << 40, 9]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();

        let mut p = P::default();
        p.proto()
            .op(b'}')
            .s("state_dict")
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R');
        p.mark();
        // Transposed (3, 2) view at offset 1 with stride (1, 3): t[i][j] = 1 + i + 3 j.
        p.s("transposed")
            .tensor("FloatStorage", "0", 12, 1, &[3, 2], &[1, 3]);
        // Broadcast (2, 3) view with stride (0, 2): rows repeat [0, 2, 4].
        p.s("expanded")
            .tensor("FloatStorage", "0", 12, 0, &[2, 3], &[0, 2]);
        // 3-d view: shape (2, 2, 2) stride (6, 1, 3) offset 1: t[i][j][k] = 1 + 6 i + j + 3 k.
        p.s("cube")
            .tensor("FloatStorage", "0", 12, 1, &[2, 2, 2], &[6, 1, 3]);
        // Size-1 dims with arbitrary strides.
        p.s("ones")
            .tensor("FloatStorage", "0", 12, 3, &[1, 2, 1], &[1 << 30, 4, 999]);
        // Scalar at offset 11; empty tensor.
        p.s("scalar").tensor("FloatStorage", "0", 12, 11, &[], &[]);
        p.s("empty")
            .tensor("FloatStorage", "0", 12, 0, &[0, 4], &[4, 1]);
        // Parameter wrapping a half view [::2].
        p.s("half_param")
            .global("torch._utils", "_rebuild_parameter");
        p.mark()
            .tensor("HalfStorage", "1", 6, 0, &[3], &[2])
            .op(0x88);
        p.global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R');
        p.s("longs").tensor("LongStorage", "2", 4, 1, &[2], &[1]);
        p.op(b'u').op(b's');
        p.s("epoch").int(3).op(b's').op(b'.');

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.pth");
        let pkl = p.bytes();
        let fb = f32_bytes(&floats);
        write_zip(
            &path,
            &[
                ("archive/data.pkl", &pkl),
                ("archive/byteorder", b"little"),
                ("archive/data/0", &fb),
                ("archive/data/1", &halves),
                ("archive/data/2", &longs),
                ("archive/version", b"3\n"),
            ],
        );
        let ckpt = read_torch_checkpoint(&path).unwrap();
        assert_eq!(ckpt.epoch, Some(3));
        assert_eq!(ckpt.top_level_keys, ["state_dict", "epoch"]);
        let t = |n: &str| ckpt.get(n).unwrap();
        assert_eq!(t("transposed").shape, [3, 2]);
        assert_eq!(t("transposed").data, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(t("expanded").data, [0.0, 2.0, 4.0, 0.0, 2.0, 4.0]);
        assert_eq!(t("cube").data, [1.0, 4.0, 2.0, 5.0, 7.0, 10.0, 8.0, 11.0]);
        assert_eq!(t("ones").shape, [1, 2, 1]);
        assert_eq!(t("ones").data, [3.0, 7.0]);
        assert_eq!(t("scalar").shape, Vec::<usize>::new());
        assert_eq!(t("scalar").data, [11.0]);
        assert_eq!(t("empty").shape, [0, 4]);
        assert!(t("empty").data.is_empty());
        assert_eq!(t("half_param").dtype, TorchDtype::F16);
        assert_eq!(t("half_param").data, [0.5, 2.0, 65504.0]);
        assert_eq!(t("longs").data, [-7.0, (1u64 << 40) as f32]);
        let meta = ckpt
            .root
            .get("state_dict")
            .unwrap()
            .get("longs")
            .unwrap()
            .as_tensor()
            .unwrap();
        assert_eq!(ckpt.tensor_i64(meta).unwrap(), (vec![2], vec![-7, 1 << 40]));
        let hp = ckpt
            .root
            .get("state_dict")
            .unwrap()
            .get("half_param")
            .unwrap();
        assert!(hp.as_tensor().unwrap().is_parameter);

        // Same views, big-endian archive.
        let be_floats: Vec<u8> = floats.iter().flat_map(|x| x.to_be_bytes()).collect();
        let be_halves: Vec<u8> = halves.chunks(2).flat_map(|c| [c[1], c[0]]).collect();
        let be_longs: Vec<u8> = longs
            .chunks(8)
            .flat_map(|c| c.iter().rev().copied().collect::<Vec<_>>())
            .collect();
        let be_path = dir.path().join("big.pth");
        write_zip(
            &be_path,
            &[
                ("archive/data.pkl", &pkl),
                ("archive/byteorder", b"big"),
                ("archive/data/0", &be_floats),
                ("archive/data/1", &be_halves),
                ("archive/data/2", &be_longs),
            ],
        );
        let be = read_torch_checkpoint(&be_path).unwrap();
        assert_eq!(be.state_dict, ckpt.state_dict);
    }

    #[test]
    fn bare_state_dict_and_out_of_bounds_views() {
        let dir = tempfile::tempdir().unwrap();
        let fb = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);

        // A bare OrderedDict of tensors (torch.save(model.state_dict())).
        let mut p = P::default();
        p.proto()
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .mark();
        p.s("w").tensor("FloatStorage", "0", 4, 0, &[2, 2], &[1, 2]);
        p.op(b'u').op(b'.');
        let path = dir.path().join("bare.pth");
        write_zip(
            &path,
            &[("bare/data.pkl", &p.bytes()), ("bare/data/0", &fb)],
        );
        let ckpt = read_torch_checkpoint(&path).unwrap();
        assert_eq!(ckpt.epoch, None);
        assert_eq!(ckpt.state_dict.len(), 1);
        assert_eq!(ckpt.state_dict[0].1.data, [1.0, 3.0, 2.0, 4.0]);
        assert!(ckpt.momentum_buffers().unwrap().is_empty());

        // A view reaching past its storage.
        let mut p = P::default();
        p.proto()
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .mark();
        p.s("w").tensor("FloatStorage", "0", 4, 1, &[2, 2], &[2, 1]);
        p.op(b'u').op(b'.');
        let path = dir.path().join("oob.pth");
        write_zip(&path, &[("oob/data.pkl", &p.bytes()), ("oob/data/0", &fb)]);
        let err = read_torch_checkpoint(&path).unwrap_err();
        assert!(
            matches!(err, TorchReadError::Storage { ref key, .. } if key == "0"),
            "{err:?}"
        );
        assert!(err.to_string().contains("oob.pth"));

        // A storage claiming more elements than its record holds.
        let mut p = P::default();
        p.proto()
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .mark();
        p.s("w").tensor("FloatStorage", "0", 5, 0, &[5], &[1]);
        p.op(b'u').op(b'.');
        let path = dir.path().join("short_storage.pth");
        write_zip(&path, &[("s/data.pkl", &p.bytes()), ("s/data/0", &fb)]);
        let err = read_torch_checkpoint(&path).unwrap_err();
        assert!(matches!(err, TorchReadError::Storage { .. }), "{err:?}");

        // A huge broadcast view is refused rather than allocated.
        let mut p = P::default();
        p.proto()
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .mark();
        p.s("w")
            .tensor("FloatStorage", "0", 4, 0, &[1 << 30, 1 << 30], &[0, 0]);
        p.op(b'u').op(b'.');
        let path = dir.path().join("huge.pth");
        write_zip(&path, &[("h/data.pkl", &p.bytes()), ("h/data/0", &fb)]);
        let err = read_torch_checkpoint(&path).unwrap_err();
        assert!(matches!(err, TorchReadError::Storage { .. }), "{err:?}");

        // A state dict entry that is not a tensor.
        let mut p = P::default();
        p.proto()
            .op(b'}')
            .s("state_dict")
            .op(b'}')
            .s("x")
            .int(1)
            .op(b's')
            .op(b's')
            .op(b'.');
        let path = dir.path().join("notensor.pth");
        write_zip(&path, &[("n/data.pkl", &p.bytes())]);
        let err = read_torch_checkpoint(&path).unwrap_err();
        assert!(matches!(err, TorchReadError::Layout { .. }), "{err:?}");
    }
}
