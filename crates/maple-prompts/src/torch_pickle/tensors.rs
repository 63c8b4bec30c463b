//! Materialising tensors: strided views of raw storage bytes gathered into dense row-major
//! data, after checking that the view lies inside its storage and within the element limits.

use clip_model::HostTensor;

use super::value::{TensorMeta, TorchDtype};

/// Most elements one materialised tensor may have (1 GiB of `f32`; guards against hostile
/// shapes, e.g. a huge size with stride 0 on a one-element storage).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// A dense row-major tensor read from a checkpoint: a [`HostTensor`] plus the dtype of
/// the storage it came from ([`TorchTensor::into_host`] drops the dtype).
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

    /// The shape and values, without the storage dtype.
    pub fn into_host(self) -> HostTensor {
        HostTensor::new(self.shape, self.data)
    }
}

/// Why a storage or a view of it cannot be materialised (the storage's key is named by
/// [`super::TorchReadError::Storage`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageProblem {
    /// The storage type is not one this reader converts.
    #[error("unsupported storage type {storage_type}")]
    UnsupportedType {
        /// The pickled type name, e.g. `ComplexFloatStorage`.
        storage_type: String,
    },
    /// The storage's byte size is unknown (unsupported type) or overflows.
    #[error("unsupported storage type {storage_type} or size overflow ({numel} elements)")]
    Unsized {
        /// The pickled type name.
        storage_type: String,
        /// Elements the storage declares.
        numel: usize,
    },
    /// An integer read was asked of a float storage.
    #[error("{dtype:?} is not an integer dtype")]
    NotInteger {
        /// The storage's dtype.
        dtype: TorchDtype,
    },
    /// The view's size and stride lists differ in length.
    #[error("size {shape:?} and stride {stride:?} have different lengths")]
    RankMismatch {
        /// The view's size.
        shape: Vec<usize>,
        /// The view's stride.
        stride: Vec<usize>,
    },
    /// `numel * itemsize`, the element count or the view's last index overflows `usize`.
    #[error("the {what} overflows")]
    Overflow {
        /// `storage size`, `element count` or `view extent`.
        what: &'static str,
    },
    /// The record holds fewer bytes than the storage declares.
    #[error("record has {bytes} bytes, {elements} elements of {dtype:?} need {needed}")]
    ShortRecord {
        /// Bytes in the record.
        bytes: usize,
        /// Elements the storage declares.
        elements: usize,
        /// The storage's dtype.
        dtype: TorchDtype,
        /// Bytes needed.
        needed: usize,
    },
    /// One view has more than [`MAX_TENSOR_ELEMENTS`] elements.
    #[error("view has {numel} elements, more than the limit {MAX_TENSOR_ELEMENTS}")]
    TooManyElements {
        /// The view's element count.
        numel: usize,
    },
    /// The view reaches past the end of its storage.
    #[error(
        "view (offset {offset}, size {shape:?}, stride {stride:?}) reaches element {last} \
         of a storage of {storage}"
    )]
    OutOfBounds {
        /// The view's storage offset.
        offset: usize,
        /// The view's size.
        shape: Vec<usize>,
        /// The view's stride.
        stride: Vec<usize>,
        /// The last storage element it reaches.
        last: usize,
        /// Elements in the storage.
        storage: usize,
    },
    /// The dense copy could not be allocated.
    #[error("cannot allocate {numel} elements")]
    Alloc {
        /// Elements requested.
        numel: usize,
    },
    /// Materialising would exceed the checkpoint's element budget
    /// ([`super::materialise_limit`]).
    #[error(
        "materialising it would exceed {limit} elements in total for this checkpoint \
         (twice its storages' elements plus {slack}): views repeat storage elements \
         without bound"
    )]
    BudgetExceeded {
        /// The budget.
        limit: usize,
        /// The fixed slack on top of twice the storages' elements.
        slack: usize,
    },
    /// A tensor names a storage that was not loaded.
    #[error("storage was not loaded")]
    NotLoaded,
    /// Two tensors name the same storage with different byte sizes.
    #[error("named both as {first} and as {second}")]
    Conflict {
        /// The first description (`numel` elements of a storage type).
        first: String,
        /// The conflicting one.
        second: String,
    },
}

/// Checks the view against its storage bytes; returns its element count.
pub(super) fn check_view(
    meta: &TensorMeta,
    dtype: TorchDtype,
    bytes: &[u8],
) -> Result<usize, StorageProblem> {
    if meta.shape.len() != meta.stride.len() {
        return Err(StorageProblem::RankMismatch {
            shape: meta.shape.clone(),
            stride: meta.stride.clone(),
        });
    }
    let needed =
        meta.storage
            .numel
            .checked_mul(dtype.size_bytes())
            .ok_or(StorageProblem::Overflow {
                what: "storage size",
            })?;
    if bytes.len() < needed {
        return Err(StorageProblem::ShortRecord {
            bytes: bytes.len(),
            elements: meta.storage.numel,
            dtype,
            needed,
        });
    }
    let numel = meta.numel().ok_or(StorageProblem::Overflow {
        what: "element count",
    })?;
    if numel > MAX_TENSOR_ELEMENTS {
        return Err(StorageProblem::TooManyElements { numel });
    }
    if numel == 0 {
        return Ok(0);
    }
    let mut last = meta.storage_offset;
    for (&d, &s) in meta.shape.iter().zip(&meta.stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(last))
            .ok_or(StorageProblem::Overflow {
                what: "view extent",
            })?;
    }
    if last >= meta.storage.numel {
        return Err(StorageProblem::OutOfBounds {
            offset: meta.storage_offset,
            shape: meta.shape.clone(),
            stride: meta.stride.clone(),
            last,
            storage: meta.storage.numel,
        });
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

fn storage_dtype(meta: &TensorMeta) -> Result<TorchDtype, StorageProblem> {
    meta.storage
        .dtype()
        .ok_or_else(|| StorageProblem::UnsupportedType {
            storage_type: meta.storage.storage_type.clone(),
        })
}

/// Gathers the view `meta` from the raw storage `bytes` into a dense `f32` tensor.
pub(super) fn materialize_f32(
    meta: &TensorMeta,
    bytes: &[u8],
    big_endian: bool,
) -> Result<TorchTensor, StorageProblem> {
    let dtype = storage_dtype(meta)?;
    let numel = check_view(meta, dtype, bytes)?;
    let mut data = Vec::new();
    data.try_reserve_exact(numel)
        .map_err(|_| StorageProblem::Alloc { numel })?;
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
pub(super) fn materialize_i64(
    meta: &TensorMeta,
    bytes: &[u8],
    big_endian: bool,
) -> Result<Vec<i64>, StorageProblem> {
    let dtype = storage_dtype(meta)?;
    if dtype.is_float() {
        return Err(StorageProblem::NotInteger { dtype });
    }
    let numel = check_view(meta, dtype, bytes)?;
    let mut data = Vec::new();
    data.try_reserve_exact(numel)
        .map_err(|_| StorageProblem::Alloc { numel })?;
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
        other => return Err(StorageProblem::NotInteger { dtype: other }),
    }
    Ok(data)
}
