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

/// Checks the view against its storage bytes; returns its element count.
pub(super) fn check_view(
    meta: &TensorMeta,
    dtype: TorchDtype,
    bytes: &[u8],
) -> Result<usize, String> {
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
pub(super) fn materialize_f32(
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
pub(super) fn materialize_i64(
    meta: &TensorMeta,
    bytes: &[u8],
    big_endian: bool,
) -> Result<Vec<i64>, String> {
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
