//! The unpickled value tree: [`PickleValue`] and the torch storage/tensor metadata in it.
//!
//! Sub-trees are shared through [`Arc`]: an object that the pickle references many times
//! through its memo is built once and referenced, never copied per reference, so the tree
//! is as large as the pickle's distinct objects, not as large as their expansion. Walks
//! over the tree ([`PickleValue::visit_storages`], `Debug`) visit each shared node once or
//! are capped, so they stay linear too.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

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

    /// Size of the storage record in bytes (`numel * itemsize`), `None` for an unsupported
    /// dtype or on overflow.
    pub fn nbytes(&self) -> Option<u64> {
        (self.numel as u64).checked_mul(self.dtype()?.size_bytes() as u64)
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

/// An inert object: what a `REDUCE`/`NEWOBJ` that is not allow-listed produces.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleObject {
    /// The callable or class (usually a [`PickleValue::Global`]).
    pub class: PickleValue,
    /// The arguments tuple (for `NEWOBJ_EX`: a 2-tuple `(args, kwargs)`).
    pub args: PickleValue,
    /// The state given by `BUILD`, if any (dict states of several `BUILD`s are merged).
    pub state: Option<PickleValue>,
    /// Items appended by `APPEND`/`APPENDS` (list subclasses).
    pub list_items: Vec<PickleValue>,
    /// Items set by `SETITEM`/`SETITEMS` (dict subclasses).
    pub dict_items: Vec<(PickleValue, PickleValue)>,
}

/// A value of the unpickled object tree. Nothing in it was executed: classes and functions are
/// symbolic ([`PickleValue::Global`]) and unknown constructions are inert
/// ([`PickleValue::Object`]). Cloning is cheap: every heap part is shared ([`Arc`]).
#[derive(Clone, PartialEq)]
pub enum PickleValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer: little-endian two's complement bytes, as pickled by `LONG1`/`LONG4`.
    BigInt(Arc<[u8]>),
    /// A float.
    Float(f64),
    /// A text string (also Python 2 byte strings that are valid UTF-8).
    Str(Arc<str>),
    /// A byte string (`bytes`, `bytearray`, or a non-UTF-8 Python 2 string).
    Bytes(Arc<[u8]>),
    /// A list.
    List(Arc<[PickleValue]>),
    /// A tuple.
    Tuple(Arc<[PickleValue]>),
    /// A dict (also `OrderedDict` and `defaultdict`), entries in insertion order; a key set
    /// twice keeps its first position and its last value (for `str`/`int`/`bool`/`None` keys).
    Dict(Arc<[(PickleValue, PickleValue)]>),
    /// A set or frozenset.
    Set(Arc<[PickleValue]>),
    /// A class or function named by `GLOBAL`/`STACK_GLOBAL`; never imported.
    Global {
        /// Module path, e.g. `torch._utils` (`__builtin__` is reported as `builtins`).
        module: Arc<str>,
        /// Attribute name, e.g. `_rebuild_tensor_v2`.
        name: Arc<str>,
    },
    /// A torch storage reference (from `BINPERSID`).
    Storage(Arc<StorageRef>),
    /// A torch tensor (metadata; materialise with [`super::TorchCheckpoint::tensor`]).
    Tensor(Arc<TensorMeta>),
    /// An inert object: the result of a `REDUCE`/`NEWOBJ` that is not allow-listed.
    Object(Arc<PickleObject>),
    /// A persistent id that is not a torch storage reference.
    PersistentId(Arc<PickleValue>),
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

    /// The inert object.
    pub fn as_object(&self) -> Option<&PickleObject> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// `(module, name)` of a [`PickleValue::Global`], or of the class of a
    /// [`PickleValue::Object`] whose class is a global.
    pub fn class_name(&self) -> Option<(&str, &str)> {
        match self {
            Self::Global { module, name } => Some((module, name)),
            Self::Object(o) => match &o.class {
                Self::Global { module, name } => Some((module, name)),
                _ => None,
            },
            _ => None,
        }
    }

    /// A short description of the value's kind for error messages (never its contents).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool(_) => "bool",
            Self::Int(_) | Self::BigInt(_) => "int",
            Self::Float(_) => "float",
            Self::Str(_) => "str",
            Self::Bytes(_) => "bytes",
            Self::List(_) => "list",
            Self::Tuple(_) => "tuple",
            Self::Dict(_) => "dict",
            Self::Set(_) => "set",
            Self::Global { .. } => "global",
            Self::Storage(_) => "storage",
            Self::Tensor(_) => "tensor",
            Self::Object(_) => "object",
            Self::PersistentId(_) => "persistent id",
            Self::Recursive => "recursive reference",
        }
    }

    /// Calls `f` on every storage reference in the tree (including those inside tensors).
    /// A sub-tree shared by several parents is visited once.
    pub fn visit_storages<'a>(&'a self, f: &mut dyn FnMut(&'a StorageRef)) {
        let mut seen = HashSet::new();
        self.visit_storages_once(f, &mut seen);
    }

    fn visit_storages_once<'a>(
        &'a self,
        f: &mut dyn FnMut(&'a StorageRef),
        seen: &mut HashSet<*const ()>,
    ) {
        // Containers are identified by their shared allocation: visit each once.
        let shared: Option<*const ()> = match self {
            Self::List(v) | Self::Tuple(v) | Self::Set(v) => Some(v.as_ptr().cast()),
            Self::Dict(v) => Some(v.as_ptr().cast()),
            Self::Object(o) => Some(Arc::as_ptr(o).cast()),
            Self::PersistentId(p) => Some(Arc::as_ptr(p).cast()),
            _ => None,
        };
        if shared.is_some_and(|p| !seen.insert(p)) {
            return;
        }
        match self {
            Self::Storage(s) => f(s),
            Self::Tensor(t) => f(&t.storage),
            Self::List(v) | Self::Tuple(v) | Self::Set(v) => {
                v.iter().for_each(|x| x.visit_storages_once(f, seen));
            }
            Self::Dict(v) => v.iter().for_each(|(k, x)| {
                k.visit_storages_once(f, seen);
                x.visit_storages_once(f, seen);
            }),
            Self::Object(o) => {
                o.class.visit_storages_once(f, seen);
                o.args.visit_storages_once(f, seen);
                if let Some(s) = &o.state {
                    s.visit_storages_once(f, seen);
                }
                o.list_items
                    .iter()
                    .for_each(|x| x.visit_storages_once(f, seen));
                o.dict_items.iter().for_each(|(k, x)| {
                    k.visit_storages_once(f, seen);
                    x.visit_storages_once(f, seen);
                });
            }
            Self::PersistentId(p) => p.visit_storages_once(f, seen),
            _ => {}
        }
    }

    /// Writes at most `*budget` nodes, then `…` (shared sub-trees would otherwise be printed
    /// once per reference: exponential output for a small hostile pickle).
    fn fmt_capped(&self, f: &mut fmt::Formatter<'_>, budget: &mut usize) -> fmt::Result {
        if *budget == 0 {
            return f.write_str("…");
        }
        *budget -= 1;
        let seq = |f: &mut fmt::Formatter<'_>,
                   open: &str,
                   close: &str,
                   items: &[PickleValue],
                   budget: &mut usize| {
            f.write_str(open)?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                if *budget == 0 {
                    return f.write_str("…").and_then(|_| f.write_str(close));
                }
                x.fmt_capped(f, budget)?;
            }
            f.write_str(close)
        };
        let pairs = |f: &mut fmt::Formatter<'_>,
                     items: &[(PickleValue, PickleValue)],
                     budget: &mut usize| {
            f.write_str("{")?;
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                if *budget == 0 {
                    return f.write_str("…}");
                }
                k.fmt_capped(f, budget)?;
                f.write_str(": ")?;
                v.fmt_capped(f, budget)?;
            }
            f.write_str("}")
        };
        match self {
            Self::None => f.write_str("None"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::BigInt(b) => write!(f, "BigInt({} bytes)", b.len()),
            Self::Float(x) => write!(f, "{x:?}"),
            Self::Str(s) if s.len() > 200 => write!(
                f,
                "{:?}… ({} bytes)",
                &s[..s.floor_char_boundary_compat(200)],
                s.len()
            ),
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Bytes(b) => write!(f, "b<{} bytes>", b.len()),
            Self::List(v) => seq(f, "[", "]", v, budget),
            Self::Tuple(v) => seq(f, "(", ")", v, budget),
            Self::Set(v) => seq(f, "set(", ")", v, budget),
            Self::Dict(v) => pairs(f, v, budget),
            Self::Global { module, name } => write!(f, "{module}.{name}"),
            Self::Storage(s) => write!(f, "{s:?}"),
            Self::Tensor(t) => write!(f, "{t:?}"),
            Self::Object(o) => {
                f.write_str("Object(")?;
                o.class.fmt_capped(f, budget)?;
                f.write_str(", args=")?;
                o.args.fmt_capped(f, budget)?;
                if let Some(s) = &o.state {
                    f.write_str(", state=")?;
                    s.fmt_capped(f, budget)?;
                }
                if !o.list_items.is_empty() {
                    f.write_str(", items=")?;
                    seq(f, "[", "]", &o.list_items, budget)?;
                }
                if !o.dict_items.is_empty() {
                    f.write_str(", entries=")?;
                    pairs(f, &o.dict_items, budget)?;
                }
                f.write_str(")")
            }
            Self::PersistentId(p) => {
                f.write_str("PersistentId(")?;
                p.fmt_capped(f, budget)?;
                f.write_str(")")
            }
            Self::Recursive => f.write_str("<recursive>"),
        }
    }
}

/// Most nodes one `Debug` rendering of a [`PickleValue`] prints.
const DEBUG_NODES: usize = 2_000;

impl fmt::Debug for PickleValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut budget = DEBUG_NODES;
        self.fmt_capped(f, &mut budget)
    }
}

/// `str::floor_char_boundary` is unstable on the crate's MSRV; this is the same thing.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
