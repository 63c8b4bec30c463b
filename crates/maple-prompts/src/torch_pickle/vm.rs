//! The pickle virtual machine: interprets `data.pkl` opcodes (protocols 2..5) into a
//! [`PickleValue`] tree, executing nothing.
//!
//! Objects live in an arena (`Node`s referring to each other by index), so a memoised
//! container mutated after `BINPUT` is seen mutated through `BINGET`, as in Python. The arena
//! is then converted once into the shared tree: each arena node becomes one value, referenced
//! (not copied) by every parent, so memo references cost a pointer each.
//!
//! Memory is bounded by one budget for the whole parse ([`pickle_memory_limit`]): every node,
//! string, container slot, memo and dict entry of the arena and every value of the tree is
//! charged, and the parse fails with a clear message when the budget is exhausted. The tree
//! is at most [`MAX_TREE_DEPTH`] deep (so recursive walks and drops cannot overflow the
//! stack) and tensors have at most [`MAX_TENSOR_RANK`] dimensions.

use std::collections::HashMap;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use super::value::{PickleObject, PickleValue, StorageRef, TensorMeta};
use super::PickleParseError;

/// What is wrong with a pickle stream ([`PickleParseError`] adds the byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleProblem {
    /// Unpacking would allocate more than the memory budget.
    #[error(
        "the pickle needs more than {limit_mib} MiB of memory to unpack (limit for its size; \
         a hostile or corrupt file?)"
    )]
    Memory {
        /// The budget, MiB.
        limit_mib: usize,
    },
    /// An opcode's argument runs past the end of the stream.
    #[error("truncated: needs {needed} more bytes, {left} left")]
    Truncated {
        /// Bytes the opcode needs.
        needed: u64,
        /// Bytes left in the stream.
        left: u64,
    },
    /// A text argument has no terminating newline.
    #[error("truncated: unterminated text line")]
    UnterminatedLine,
    /// The stream ends without a `STOP` opcode.
    #[error("truncated: stream ended without STOP")]
    NoStop,
    /// Text that must be UTF-8 is not.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// `text line` or `unicode string`.
        what: &'static str,
    },
    /// An opcode pops from an empty stack (or below the current MARK).
    #[error("stack underflow")]
    StackUnderflow,
    /// An opcode needs a MARK and there is none.
    #[error("no MARK on the stack")]
    NoMark,
    /// The last MARK lies above the top of the stack.
    #[error("stack underflow below MARK")]
    UnderflowBelowMark,
    /// A memo read of a key never written.
    #[error("memo key {key} is not set")]
    MemoUnset {
        /// The memo key.
        key: u64,
    },
    /// An opcode applied to a value of the wrong kind.
    #[error("{opcode} on a value that is not a {expected}")]
    WrongTarget {
        /// The opcode, e.g. `SETITEM`.
        opcode: &'static str,
        /// The kind it needs, e.g. `dict`.
        expected: &'static str,
    },
    /// A length-prefixed opcode with a negative length.
    #[error("{opcode} with negative length")]
    NegativeLength {
        /// The opcode, e.g. `LONG4`.
        opcode: &'static str,
    },
    /// A key/value opcode with an odd number of items.
    #[error("{opcode} with an odd number of items")]
    OddItems {
        /// `DICT` or `SETITEMS`.
        opcode: &'static str,
    },
    /// `STACK_GLOBAL` on values that are not strings.
    #[error("STACK_GLOBAL needs two strings")]
    StackGlobalNotStrings,
    /// A tensor-rebuilding call with too few arguments.
    #[error("{function}: expected at least {expected} arguments, got {found}")]
    TooFewArguments {
        /// `_rebuild_tensor` or `_rebuild_parameter`.
        function: &'static str,
        /// Arguments needed.
        expected: usize,
        /// Arguments given.
        found: usize,
    },
    /// A tensor-rebuilding call with an argument of the wrong kind.
    #[error("{function}: {problem}")]
    BadArgument {
        /// `_rebuild_tensor` or `_rebuild_parameter`.
        function: &'static str,
        /// What is wrong, e.g. `first argument is not a storage`.
        problem: &'static str,
    },
    /// `_rebuild_tensor`'s size or stride is not a tuple (`rank` none) or has too many
    /// dimensions.
    #[error(
        "_rebuild_tensor: {what} {}",
        match rank {
            None => "is not a tuple".to_string(),
            Some(r) => format!("has {r} dimensions, more than {MAX_TENSOR_RANK}"),
        }
    )]
    BadDims {
        /// `size` or `stride`.
        what: &'static str,
        /// The number of dimensions, when it is a tuple.
        rank: Option<usize>,
    },
    /// `_rebuild_tensor`'s size or stride holds an entry that is not a non-negative integer.
    #[error("_rebuild_tensor: bad {what} entry")]
    BadDimEntry {
        /// `size` or `stride`.
        what: &'static str,
    },
    /// `_rebuild_tensor`'s size and stride differ in length.
    #[error("_rebuild_tensor: size has {size} dims but stride has {stride}")]
    RankMismatch {
        /// Dimensions of the size.
        size: usize,
        /// Dimensions of the stride.
        stride: usize,
    },
    /// A `PROTO` above 5.
    #[error("unsupported pickle protocol {protocol}")]
    Protocol {
        /// The protocol number.
        protocol: u8,
    },
    /// A pickle feature this reader does not implement.
    #[error("{feature} are not supported")]
    Unsupported {
        /// The feature.
        feature: &'static str,
    },
    /// A protocol-0 text opcode.
    #[error("protocol-0 text opcode {opcode:?} is not supported")]
    TextOpcode {
        /// The opcode byte as a character.
        opcode: char,
    },
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{opcode:02x}")]
    UnknownOpcode {
        /// The byte.
        opcode: u8,
    },
    /// The value tree nests deeper than [`MAX_TREE_DEPTH`].
    #[error("value tree nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

fn bad_tensor_arg(problem: &'static str) -> PickleProblem {
    PickleProblem::BadArgument {
        function: "_rebuild_tensor",
        problem,
    }
}

fn bad_parameter_arg(problem: &'static str) -> PickleProblem {
    PickleProblem::BadArgument {
        function: "_rebuild_parameter",
        problem,
    }
}

/// Deepest nesting of the value tree returned by [`parse_pickle`].
pub const MAX_TREE_DEPTH: usize = 200;
/// Most dimensions of a pickled tensor (torch refuses more than 64 itself).
pub const MAX_TENSOR_RANK: usize = 64;
/// Memory a parse may use regardless of input size (arena, memo, tree).
pub const PICKLE_MEMORY_BASE: usize = 64 << 20;
/// Memory a parse may use per byte of pickle, on top of [`PICKLE_MEMORY_BASE`]: a one-byte
/// opcode creates a node of a few dozen bytes.
pub const PICKLE_MEMORY_PER_BYTE: usize = 64;
/// Memory a parse may never exceed, whatever the input size.
pub const PICKLE_MEMORY_MAX: usize = 1 << 30;

/// The memory budget of [`parse_pickle`] for a pickle of `len` bytes:
/// `min(PICKLE_MEMORY_BASE + PICKLE_MEMORY_PER_BYTE * len, PICKLE_MEMORY_MAX)`.
pub fn pickle_memory_limit(len: usize) -> usize {
    PICKLE_MEMORY_PER_BYTE
        .saturating_mul(len)
        .saturating_add(PICKLE_MEMORY_BASE)
        .min(PICKLE_MEMORY_MAX)
}

/// Bytes charged for one memo entry (hash map slot with its overhead).
const MEMO_ENTRY_BYTES: usize = 48;
/// Bytes charged for one dict entry (pair slot plus index slot with overhead).
const DICT_ENTRY_BYTES: usize = 2 * size_of::<usize>() + 64;

/// Counts the bytes a parse allocates against a fixed limit.
#[derive(Debug)]
struct Budget {
    used: usize,
    limit: usize,
}

impl Budget {
    fn charge(&mut self, bytes: usize) -> VmResult<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(PickleProblem::Memory {
                limit_mib: self.limit >> 20,
            });
        }
        Ok(())
    }
}

/// Heap bytes owned by a freshly built node (beyond its own size).
fn node_heap(node: &Node) -> usize {
    match node {
        Node::BigInt(b) | Node::Bytes(b) => b.len(),
        Node::Str(s) => s.len(),
        Node::List(v) | Node::Tuple(v) | Node::Set(v) => size_of_val(v.as_slice()),
        Node::Dict(v, _) => v.len() * DICT_ENTRY_BYTES,
        Node::Global { module, name } => module.len() + name.len(),
        Node::Storage(s) => size_of::<StorageRef>() + storage_heap(s),
        Node::Tensor(t) => size_of::<TensorMeta>() + storage_heap(&t.storage),
        Node::Object {
            list_items,
            dict_items,
            ..
        } => size_of_val(list_items.as_slice()) + size_of_val(dict_items.as_slice()),
        _ => 0,
    }
}

/// Heap bytes of a storage reference's strings.
fn storage_heap(s: &StorageRef) -> usize {
    s.storage_type.len() + s.key.len() + s.location.len()
}

type Id = usize;

/// Hashable dict keys used to replace the value of a key set twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DictKey {
    None,
    Int(i64),
    Str(Arc<str>),
}

/// A node of the VM's object arena. Containers refer to other nodes by id, so a memoised
/// container mutated after `BINPUT` is seen mutated through `BINGET`, as in Python.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Arc<[u8]>),
    Float(f64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>, HashMap<DictKey, usize>),
    Set(Vec<Id>),
    Global {
        module: Arc<str>,
        name: Arc<str>,
    },
    Storage(Arc<StorageRef>),
    Tensor(Arc<TensorMeta>),
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
    budget: Budget,
}

type VmResult<T> = Result<T, PickleProblem>;

/// Parses a pickle byte stream (protocols 2..5 as written by `torch.save`) into a value tree,
/// executing nothing. See the module documentation for what is and is not interpreted.
///
/// Errors on malformed, truncated or unsupported input (protocol-0 text opcodes, extension
/// registry codes, out-of-band buffers), when unpacking would need more memory than
/// [`pickle_memory_limit`] allows for the stream's length, and when the tree would nest deeper
/// than [`MAX_TREE_DEPTH`].
pub fn parse_pickle(data: &[u8]) -> Result<PickleValue, PickleParseError> {
    parse_pickle_with_limit(data, pickle_memory_limit(data.len()))
}

/// [`parse_pickle`] with an explicit memory budget in bytes.
pub fn parse_pickle_with_limit(data: &[u8], limit: usize) -> Result<PickleValue, PickleParseError> {
    let mut vm = Vm {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget: Budget { used: 0, limit },
    };
    let root = loop {
        let op_start = vm.pos;
        match vm.step() {
            Ok(Some(root)) => break root,
            Ok(None) => {}
            Err(problem) => {
                return Err(PickleParseError {
                    offset: op_start as u64,
                    problem,
                })
            }
        }
    };
    let end = vm.pos as u64;
    let err = |problem| PickleParseError {
        offset: end,
        problem,
    };
    // The stack, marks and memo are no longer needed: free them before building the tree.
    let Vm {
        nodes, mut budget, ..
    } = vm;
    let n = nodes.len();
    budget
        .charge(n * (size_of::<Option<(PickleValue, usize)>>() + size_of::<usize>()))
        .map_err(err)?;
    let mut conv = Converter {
        nodes: &nodes,
        cache: vec![None; n],
        on_path: vec![NOT_ON_PATH; n],
        budget,
    };
    conv.value(root, 0).map(|(v, ..)| v).map_err(err)
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
            return Err(PickleProblem::Truncated {
                needed: n,
                left: remaining,
            });
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
            .ok_or(PickleProblem::UnterminatedLine)?;
        let line = &rest[..end];
        self.pos += end + 1;
        std::str::from_utf8(line).map_err(|_| PickleProblem::InvalidUtf8 { what: "text line" })
    }

    // --- stack -------------------------------------------------------------------------------

    /// Adds a node to the arena, charging its size and heap to the memory budget.
    fn alloc(&mut self, node: Node) -> VmResult<Id> {
        self.budget.charge(size_of::<Node>() + node_heap(&node))?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn push(&mut self, node: Node) -> VmResult<()> {
        let id = self.alloc(node)?;
        self.push_id(id)
    }

    fn push_id(&mut self, id: Id) -> VmResult<()> {
        self.budget.charge(size_of::<Id>())?;
        self.stack.push(id);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> VmResult<Id> {
        if self.stack.len() <= self.floor() {
            return Err(PickleProblem::StackUnderflow);
        }
        self.stack.pop().ok_or(PickleProblem::StackUnderflow)
    }

    fn top(&self) -> VmResult<Id> {
        if self.stack.len() <= self.floor() {
            return Err(PickleProblem::StackUnderflow);
        }
        self.stack
            .last()
            .copied()
            .ok_or(PickleProblem::StackUnderflow)
    }

    fn pop_mark(&mut self) -> VmResult<Vec<Id>> {
        let m = self.marks.pop().ok_or(PickleProblem::NoMark)?;
        if m > self.stack.len() {
            return Err(PickleProblem::UnderflowBelowMark);
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&self, key: u64) -> VmResult<Id> {
        self.memo
            .get(&key)
            .copied()
            .ok_or(PickleProblem::MemoUnset { key })
    }

    fn memo_put(&mut self, key: u64) -> VmResult<()> {
        let id = self.top()?;
        if self.memo.insert(key, id).is_none() {
            self.budget.charge(MEMO_ENTRY_BYTES)?;
        }
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

    fn global(&self, id: Id) -> Option<(&Arc<str>, &Arc<str>)> {
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
            Node::Str(s) => Some(DictKey::Str(Arc::clone(s))),
            _ => None,
        }
    }

    fn set_item(&mut self, target: Id, key: Id, value: Id) -> VmResult<()> {
        let dk = self.dict_key(key);
        // Charged up front (a replaced key costs nothing, but is rare).
        self.budget.charge(DICT_ENTRY_BYTES)?;
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
            _ => Err(PickleProblem::WrongTarget {
                opcode: "SETITEM",
                expected: "dict",
            }),
        }
    }

    fn append(&mut self, target: Id, items: &[Id]) -> VmResult<()> {
        self.budget.charge(size_of_val(items))?;
        match &mut self.nodes[target] {
            Node::List(v) | Node::Object { list_items: v, .. } => {
                v.extend_from_slice(items);
                Ok(())
            }
            _ => Err(PickleProblem::WrongTarget {
                opcode: "APPEND",
                expected: "list",
            }),
        }
    }

    fn new_dict(&mut self, pairs: &[(Id, Id)]) -> VmResult<Node> {
        let id = self.alloc(Node::Dict(Vec::new(), HashMap::new()))?;
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
        self.budget.charge(size_of_val(rest.as_slice()))?;
        match rest.as_slice() {
            [] => Ok(Some(Node::Dict(Vec::new(), HashMap::new()))),
            [src] => {
                let n = match &self.nodes[*src] {
                    Node::Dict(entries, _) => entries.len(),
                    Node::List(v) | Node::Tuple(v) => v.len(),
                    _ => 0,
                };
                self.budget.charge(n * size_of::<(Id, Id)>())?;
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

    fn rebuild_tensor(&mut self, args: Id) -> VmResult<Node> {
        let items = self
            .items(args)
            .ok_or(bad_tensor_arg("arguments are not a tuple"))?;
        if items.len() < 4 {
            return Err(PickleProblem::TooFewArguments {
                function: "_rebuild_tensor",
                expected: 4,
                found: items.len(),
            });
        }
        let storage = match &self.nodes[items[0]] {
            Node::Storage(s) => StorageRef::clone(s),
            _ => return Err(bad_tensor_arg("first argument is not a storage")),
        };
        let storage_offset = self
            .int(items[1])
            .and_then(|i| usize::try_from(i).ok())
            .ok_or(bad_tensor_arg("bad storage offset"))?;
        let dims = |id: Id, what: &'static str| -> VmResult<Vec<usize>> {
            let d = self
                .items(id)
                .ok_or(PickleProblem::BadDims { what, rank: None })?;
            if d.len() > MAX_TENSOR_RANK {
                return Err(PickleProblem::BadDims {
                    what,
                    rank: Some(d.len()),
                });
            }
            d.iter()
                .map(|&d| {
                    self.int(d)
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or(PickleProblem::BadDimEntry { what })
                })
                .collect()
        };
        let shape = dims(items[2], "size")?;
        let stride = dims(items[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(PickleProblem::RankMismatch {
                size: shape.len(),
                stride: stride.len(),
            });
        }
        let requires_grad = items.get(4).and_then(|&r| self.int(r)).unwrap_or(0) != 0;
        self.budget
            .charge(storage_heap(&storage) + 2 * shape.len() * size_of::<usize>())?;
        Ok(Node::Tensor(Arc::new(TensorMeta {
            storage,
            storage_offset,
            shape,
            stride,
            requires_grad,
            is_parameter: false,
        })))
    }

    fn rebuild_parameter(&mut self, args: Id) -> VmResult<Node> {
        let items = self
            .items(args)
            .ok_or(bad_parameter_arg("arguments are not a tuple"))?;
        let data = items.first().ok_or(PickleProblem::TooFewArguments {
            function: "_rebuild_parameter",
            expected: 1,
            found: 0,
        })?;
        let mut meta = match &self.nodes[*data] {
            Node::Tensor(t) => TensorMeta::clone(t),
            _ => return Err(bad_parameter_arg("first argument is not a tensor")),
        };
        meta.is_parameter = true;
        meta.requires_grad = items.get(1).and_then(|&r| self.int(r)).unwrap_or(1) != 0;
        self.budget
            .charge(storage_heap(&meta.storage) + 2 * meta.shape.len() * size_of::<usize>())?;
        Ok(Node::Tensor(Arc::new(meta)))
    }

    /// Applies `callable(*args)` without running anything: allow-listed torch/collections
    /// callables build data, everything else becomes an inert object.
    fn reduce(&mut self, callable: Id, args: Id, nested: bool) -> VmResult<Node> {
        let global = self
            .global(callable)
            .map(|(m, n)| (Arc::clone(m), Arc::clone(n)));
        if let Some((module, name)) = global {
            match (&*module, &*name) {
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
            self.global(id).map(|(m, n)| (&**m, &**n)),
            Some(("collections", "OrderedDict" | "defaultdict") | ("builtins", "dict"))
        )
    }

    fn build(&mut self, obj: Id, state: Id) -> VmResult<()> {
        let merged = match &self.nodes[obj] {
            Node::Object {
                state: Some(old), ..
            } => match (&self.nodes[*old], &self.nodes[state]) {
                (Node::Dict(..), Node::Dict(new_entries, _)) => {
                    let bytes = size_of_val(new_entries.as_slice());
                    let new_entries = new_entries.clone();
                    self.budget.charge(bytes)?;
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
            _ => {
                return Err(PickleProblem::WrongTarget {
                    opcode: "BUILD",
                    expected: "object",
                })
            }
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
                let storage_type = match self.global(ty).map(|(m, n)| (&**m, n)) {
                    Some(("torch" | "torch.cuda", name)) => Some(name.to_string()),
                    _ => None,
                };
                let key = match &self.nodes[key] {
                    Node::Str(s) => Some(s.to_string()),
                    Node::Int(i) => Some(i.to_string()),
                    _ => None,
                };
                let location = self.str_of(location).map(str::to_string);
                let numel = self.int(numel).and_then(|n| usize::try_from(n).ok());
                if let (Some(storage_type), Some(key), Some(location), Some(numel)) =
                    (storage_type, key, location, numel)
                {
                    return Node::Storage(Arc::new(StorageRef {
                        storage_type,
                        key,
                        location,
                        numel,
                    }));
                }
            }
        }
        Node::PersistentId(pid)
    }

    fn bytes_node(b: &[u8]) -> Node {
        Node::Bytes(Arc::from(b))
    }

    fn string_node(b: &[u8]) -> VmResult<Node> {
        std::str::from_utf8(b)
            .map(|s| Node::Str(Arc::from(s)))
            .map_err(|_| PickleProblem::InvalidUtf8 {
                what: "unicode string",
            })
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
        Node::BigInt(Arc::from(b))
    }

    // --- one opcode --------------------------------------------------------------------------

    /// Executes one opcode; `Some(root)` after `STOP`.
    fn step(&mut self) -> VmResult<Option<Id>> {
        if self.pos >= self.data.len() {
            return Err(PickleProblem::NoStop);
        }
        let op = self.u8()?;
        match op {
            0x80 => {
                // PROTO
                let p = self.u8()?;
                if p > 5 {
                    return Err(PickleProblem::Protocol { protocol: p });
                }
            }
            0x95 => {
                // FRAME: a length prefix only; frames are not needed for a memory buffer.
                self.u64()?;
            }
            b'.' => return self.pop().map(Some),
            b'(' => {
                self.budget.charge(size_of::<usize>())?;
                self.marks.push(self.stack.len());
            }
            b'}' => self.push(Node::Dict(Vec::new(), HashMap::new()))?,
            b']' => self.push(Node::List(Vec::new()))?,
            b')' => self.push(Node::Tuple(Vec::new()))?,
            0x8f => self.push(Node::Set(Vec::new()))?,
            b'N' => self.push(Node::None)?,
            0x88 => self.push(Node::Bool(true))?,
            0x89 => self.push(Node::Bool(false))?,
            b'J' => {
                let v = self.i32()?;
                self.push(Node::Int(i64::from(v)))?;
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Node::Int(i64::from(v)))?;
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Node::Int(i64::from(v)))?;
            }
            0x8a => {
                // LONG1
                let n = self.u8()?;
                let b = self.take(u64::from(n))?;
                self.push(Self::long_node(b))?;
            }
            0x8b => {
                // LONG4
                let n = self.i32()?;
                let n = u64::try_from(n)
                    .map_err(|_| PickleProblem::NegativeLength { opcode: "LONG4" })?;
                let b = self.take(n)?;
                self.push(Self::long_node(b))?;
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Node::Float(f64::from_be_bytes(a)))?;
            }
            b'X' => {
                let n = self.u32()?;
                let b = self.take(u64::from(n))?;
                let node = Self::string_node(b)?;
                self.push(node)?;
            }
            0x8c => {
                let n = self.u8()?;
                let b = self.take(u64::from(n))?;
                let node = Self::string_node(b)?;
                self.push(node)?;
            }
            0x8d => {
                let n = self.u64()?;
                let b = self.take(n)?;
                let node = Self::string_node(b)?;
                self.push(node)?;
            }
            b'T' | b'U' => {
                // BINSTRING / SHORT_BINSTRING (Python 2 str): text when UTF-8, else bytes.
                let n = if op == b'T' {
                    u64::try_from(self.i32()?).map_err(|_| PickleProblem::NegativeLength {
                        opcode: "BINSTRING",
                    })?
                } else {
                    u64::from(self.u8()?)
                };
                let b = self.take(n)?;
                let node = Self::string_node(b).unwrap_or_else(|_| Self::bytes_node(b));
                self.push(node)?;
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                // BINBYTES / SHORT_BINBYTES / BINBYTES8 / BYTEARRAY8
                let n = match op {
                    b'B' => u64::from(self.u32()?),
                    b'C' => u64::from(self.u8()?),
                    _ => self.u64()?,
                };
                let b = self.take(n)?;
                self.push(Self::bytes_node(b))?;
            }
            0x85..=0x87 => {
                // TUPLE1/2/3
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Node::Tuple(items))?;
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items))?;
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items))?;
            }
            0x91 => {
                // FROZENSET
                let items = self.pop_mark()?;
                self.push(Node::Set(items))?;
            }
            b'd' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err(PickleProblem::OddItems { opcode: "DICT" });
                }
                let pairs: Vec<(Id, Id)> = items.chunks(2).map(|c| (c[0], c[1])).collect();
                let node = self.new_dict(&pairs)?;
                self.push(node)?;
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
                self.budget.charge(size_of_val(items.as_slice()))?;
                match &mut self.nodes[target] {
                    Node::Set(v) => v.extend_from_slice(&items),
                    _ => {
                        return Err(PickleProblem::WrongTarget {
                            opcode: "ADDITEMS",
                            expected: "set",
                        })
                    }
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
                    return Err(PickleProblem::OddItems { opcode: "SETITEMS" });
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
                self.push_id(id)?;
            }
            b'j' => {
                let k = self.u32()?;
                let id = self.memo_get(u64::from(k))?;
                self.push_id(id)?;
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let id = self.top()?;
                self.push_id(id)?;
            }
            b'c' => {
                let module = Arc::from(normalise_module(self.line()?));
                let name = Arc::from(self.line()?);
                self.push(Node::Global { module, name })?;
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name)) else {
                    return Err(PickleProblem::StackGlobalNotStrings);
                };
                let node = Node::Global {
                    module: Arc::from(normalise_module(module)),
                    name: Arc::from(name),
                };
                self.push(node)?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let node = self.reduce(callable, args, false)?;
                self.push(node)?;
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
                self.push(node)?;
            }
            0x92 => {
                // NEWOBJ_EX
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let node = if self.is_dict_class(class) {
                    Node::Dict(Vec::new(), HashMap::new())
                } else {
                    let args = self.alloc(Node::Tuple(vec![args, kwargs]))?;
                    Node::Object {
                        class,
                        args,
                        state: None,
                        list_items: Vec::new(),
                        dict_items: Vec::new(),
                    }
                };
                self.push(node)?;
            }
            b'b' => {
                let state = self.pop()?;
                let obj = self.top()?;
                self.build(obj, state)?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let node = self.persistent_load(pid);
                self.push(node)?;
            }
            b'P' => {
                let pid = Arc::from(self.line()?);
                let id = self.alloc(Node::Str(pid))?;
                self.push(Node::PersistentId(id))?;
            }
            0x82..=0x84 => {
                return Err(PickleProblem::Unsupported {
                    feature: "extension registry opcodes (EXT1/2/4)",
                })
            }
            0x97 | 0x98 => {
                return Err(PickleProblem::Unsupported {
                    feature: "out-of-band buffers (protocol 5)",
                })
            }
            b'I' | b'L' | b'F' | b'S' | b'V' | b'p' | b'g' | b'i' | b'o' => {
                return Err(PickleProblem::TextOpcode { opcode: op as char })
            }
            other => return Err(PickleProblem::UnknownOpcode { opcode: other }),
        }
        Ok(None)
    }
}

// --- arena -> tree ---------------------------------------------------------------------------

/// `Converter::on_path` value of a node that is not an ancestor of the current position.
const NOT_ON_PATH: usize = usize::MAX;

/// Builds the shared value tree from the arena.
struct Converter<'n> {
    nodes: &'n [Node],
    /// Finished values with their height, for nodes whose value does not depend on the path
    /// that reached them (every node not inside a cycle through one of its ancestors).
    cache: Vec<Option<(PickleValue, usize)>>,
    /// Depth at which each node is being converted, [`NOT_ON_PATH`] when it is not.
    on_path: Vec<usize>,
    budget: Budget,
}

impl Converter<'_> {
    /// The value of node `id` placed at `depth`, with its height and the smallest depth of an
    /// enclosing node it refers back to ([`NOT_ON_PATH`] when none above `depth`).
    fn value(&mut self, id: Id, depth: usize) -> VmResult<(PickleValue, usize, usize)> {
        let too_deep = || PickleProblem::TooDeep {
            limit: MAX_TREE_DEPTH,
        };
        if depth > MAX_TREE_DEPTH {
            return Err(too_deep());
        }
        if self.on_path[id] != NOT_ON_PATH {
            return Ok((PickleValue::Recursive, 0, self.on_path[id]));
        }
        if let Some((v, h)) = &self.cache[id] {
            if depth + h > MAX_TREE_DEPTH {
                return Err(too_deep());
            }
            return Ok((v.clone(), *h, NOT_ON_PATH));
        }
        self.on_path[id] = depth;
        let result = self.build(id, depth);
        self.on_path[id] = NOT_ON_PATH;
        let (v, h, back) = result?;
        if back >= depth {
            // Refers back to nothing above it: the same value wherever it is referenced.
            self.cache[id] = Some((v.clone(), h));
            return Ok((v, h, NOT_ON_PATH));
        }
        Ok((v, h, back))
    }

    fn build(&mut self, id: Id, depth: usize) -> VmResult<(PickleValue, usize, usize)> {
        let nodes = self.nodes;
        let d = depth + 1;
        let mut height = 0usize;
        let mut back = NOT_ON_PATH;
        let mut child = |this: &mut Self, c: Id| -> VmResult<PickleValue> {
            let (v, h, b) = this.value(c, d)?;
            height = height.max(h + 1);
            back = back.min(b);
            Ok(v)
        };
        let v = match &nodes[id] {
            Node::None => PickleValue::None,
            Node::Bool(b) => PickleValue::Bool(*b),
            Node::Int(i) => PickleValue::Int(*i),
            Node::BigInt(b) => PickleValue::BigInt(Arc::clone(b)),
            Node::Float(f) => PickleValue::Float(*f),
            Node::Str(s) => PickleValue::Str(Arc::clone(s)),
            Node::Bytes(b) => PickleValue::Bytes(Arc::clone(b)),
            Node::Global { module, name } => PickleValue::Global {
                module: Arc::clone(module),
                name: Arc::clone(name),
            },
            Node::Storage(s) => PickleValue::Storage(Arc::clone(s)),
            Node::Tensor(t) => PickleValue::Tensor(Arc::clone(t)),
            Node::List(ids) | Node::Tuple(ids) | Node::Set(ids) => {
                self.budget
                    .charge(ids.len() * size_of::<PickleValue>() + ARC_HEADER)?;
                let items = ids
                    .iter()
                    .map(|&c| child(self, c))
                    .collect::<VmResult<Arc<[PickleValue]>>>()?;
                match &nodes[id] {
                    Node::List(_) => PickleValue::List(items),
                    Node::Tuple(_) => PickleValue::Tuple(items),
                    _ => PickleValue::Set(items),
                }
            }
            Node::Dict(pairs, _) => {
                self.budget
                    .charge(pairs.len() * 2 * size_of::<PickleValue>() + ARC_HEADER)?;
                let entries = pairs
                    .iter()
                    .map(|&(k, v)| Ok((child(self, k)?, child(self, v)?)))
                    .collect::<VmResult<Arc<[(PickleValue, PickleValue)]>>>()?;
                PickleValue::Dict(entries)
            }
            Node::Object {
                class,
                args,
                state,
                list_items,
                dict_items,
            } => {
                self.budget.charge(
                    size_of::<PickleObject>()
                        + (list_items.len() + 2 * dict_items.len()) * size_of::<PickleValue>()
                        + ARC_HEADER,
                )?;
                let obj = PickleObject {
                    class: child(self, *class)?,
                    args: child(self, *args)?,
                    state: match state {
                        Some(s) => Some(child(self, *s)?),
                        None => None,
                    },
                    list_items: list_items
                        .iter()
                        .map(|&c| child(self, c))
                        .collect::<VmResult<_>>()?,
                    dict_items: dict_items
                        .iter()
                        .map(|&(k, v)| Ok((child(self, k)?, child(self, v)?)))
                        .collect::<VmResult<_>>()?,
                };
                PickleValue::Object(Arc::new(obj))
            }
            Node::PersistentId(p) => {
                self.budget.charge(size_of::<PickleValue>() + ARC_HEADER)?;
                PickleValue::PersistentId(Arc::new(child(self, *p)?))
            }
        };
        Ok((v, height, back))
    }
}

/// Bytes of an `Arc` allocation's reference counts.
const ARC_HEADER: usize = 2 * size_of::<usize>();
