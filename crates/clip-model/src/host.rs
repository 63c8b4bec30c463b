//! [`HostTensor`]: the one host-side tensor type of the workspace (a shape and row-major
//! `f32` values), used for weight files, learner checkpoints, reference checkpoints and
//! parity fixtures alike.
//!
//! Why not Burn's [`TensorData`] itself: `TensorData` stores bytes tagged with a dtype, so
//! every read of a value is a fallible conversion, and its fields cannot be matched on.
//! Everything that lives on the host here is `f32` (files are converted on reading), so
//! [`HostTensor`] keeps `Vec<f32>` and converts to and from `TensorData` at the boundary
//! ([`From`] both ways, [`HostTensor::from_tensor`], [`HostTensor::to_tensor`]).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// A host-side f32 tensor: shape and row-major values (`data.len()` is the product of
/// `shape`; a scalar has an empty shape and one value).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor of `shape` holding `data` (row-major; the caller keeps the lengths
    /// consistent).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data }
    }

    /// Copies a device tensor to the host, converting its values to `f32`.
    ///
    /// # Shapes
    /// - `t`: any `[d0, .., dD-1]`; the result has the same shape.
    pub fn from_tensor<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        Self::from(t.into_data())
    }

    /// A device tensor holding these values.
    ///
    /// # Shapes
    /// - result: `self.shape`, which must have `D` dimensions (Burn panics otherwise, as
    ///   [`Tensor::from_data`] does).
    pub fn to_tensor<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(TensorData::from(self.clone()), device)
    }

    /// Number of elements (the product of the shape; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The first value that is NaN or infinite, with its flat index.
    pub fn first_non_finite(&self) -> Option<(usize, f32)> {
        self.data
            .iter()
            .copied()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
    }

    /// The values as little-endian `f32` bytes (the safetensors layout).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Transposes a 2-D tensor; any other tensor is returned unchanged (callers check the
    /// rank first and name the key in their error).
    pub fn transposed(&self) -> HostTensor {
        let [r, c] = self.shape[..] else {
            return self.clone();
        };
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor {
            shape: vec![c, r],
            data,
        }
    }
}

impl From<HostTensor> for TensorData {
    fn from(t: HostTensor) -> Self {
        TensorData::new(t.data, t.shape)
    }
}

impl From<TensorData> for HostTensor {
    /// Converts the values to `f32` (any float or integer dtype; booleans become 0/1).
    fn from(data: TensorData) -> Self {
        let data = data.convert::<f32>();
        let shape = data.shape.to_vec();
        // After `convert::<f32>` the bytes are f32, so reading them back cannot fail.
        let data = data
            .into_vec::<f32>()
            .unwrap_or_else(|e| panic!("data converted to f32 reads back as f32: {e:?}"));
        Self { shape, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let t = HostTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let tt = t.transposed();
        assert_eq!(tt.shape, vec![3, 2]);
        assert_eq!(tt.data, vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(tt.transposed(), t);
    }

    #[test]
    fn tensor_data_round_trip_keeps_shape_and_values() {
        let t = HostTensor::new(vec![2, 1, 2], vec![0.5, -1., 3., 7.25]);
        let back = HostTensor::from(TensorData::from(t.clone()));
        assert_eq!(back, t);
        // Integer data is converted to f32.
        let ints = HostTensor::from(TensorData::new(vec![1i64, -2, 3], [3]));
        assert_eq!(ints, HostTensor::new(vec![3], vec![1., -2., 3.]));
    }

    #[test]
    fn first_non_finite_reports_the_first_bad_value() {
        let t = HostTensor::new(vec![4], vec![1., f32::INFINITY, f32::NAN, 2.]);
        assert_eq!(t.first_non_finite(), Some((1, f32::INFINITY)));
        assert_eq!(HostTensor::new(vec![1], vec![0.]).first_non_finite(), None);
    }

    #[test]
    fn numel_of_a_scalar_is_one() {
        assert_eq!(HostTensor::new(vec![], vec![3.]).numel(), 1);
        assert_eq!(HostTensor::new(vec![2, 0], vec![]).numel(), 0);
    }
}
