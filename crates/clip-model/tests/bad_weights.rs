//! Malformed CLIP weights are errors naming the tensor, the expected and the found shape
//! (never a panic in the model or the backend), blamed on the tensor that is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::ndarray::NdArray;
use clip_model::export::openai_tensors;
use clip_model::weights::hf_to_openai;
use clip_model::{Clip, ClipConfig, ClipError, HostTensor};

type B = NdArray<f32>;

/// A small CLIP (2 + 2 blocks, widths 64) as OpenAI-named host tensors.
fn tensors(config: &ClipConfig) -> BTreeMap<String, HostTensor> {
    let clip = Clip::<B>::init(config, &Default::default());
    openai_tensors(&clip).expect("export")
}

fn small() -> ClipConfig {
    ClipConfig::new(32, 16, 2, 64, 1, 8, 77, 300, 64, 1, 2)
}

fn write(dir: &Path, name: &str, map: &BTreeMap<String, HostTensor>) -> PathBuf {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = map
        .iter()
        .map(|(k, t)| {
            let b = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (k.clone(), b, t.shape.clone())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, s)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .expect("view");
            (k.clone(), v)
        })
        .collect();
    let path = dir.join(name);
    safetensors::serialize_to_file(views, None, &path).expect("write");
    path
}

fn load(path: &Path) -> Result<(Clip<B>, ClipConfig), ClipError> {
    Clip::<B>::from_safetensors(path, &Default::default())
}

/// Loads `map` after `mutate`, expecting an error; returns it with its message.
fn load_mutated(
    name: &str,
    mutate: impl FnOnce(&mut BTreeMap<String, HostTensor>),
) -> (ClipError, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut map = tensors(&small());
    mutate(&mut map);
    let path = write(dir.path(), name, &map);
    let err = match load(&path) {
        Ok(_) => panic!("{name}: malformed weights were accepted"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(
        msg.contains(name),
        "{name}: the message does not name the file: {msg}"
    );
    (err, msg)
}

fn set_shape(map: &mut BTreeMap<String, HostTensor>, key: &str, shape: Vec<usize>) {
    let n = shape.iter().product();
    map.insert(
        key.into(),
        HostTensor {
            shape,
            data: vec![0.5; n],
        },
    );
}

#[test]
fn the_unmodified_tensors_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "ok.safetensors", &tensors(&small()));
    let (_, config) = load(&path).expect("valid weights");
    assert_eq!(config, small());
}

#[test]
fn architecture_shapes_no_clip_can_have_are_named_with_the_rule() {
    type Case = (&'static str, &'static str, Vec<usize>);
    let cases: Vec<Case> = vec![
        (
            "zero_patch.safetensors",
            "visual.conv1.weight",
            vec![64, 3, 0, 0],
        ),
        (
            "conv_rank.safetensors",
            "visual.conv1.weight",
            vec![64, 3, 8],
        ),
        (
            "pos_scalar.safetensors",
            "visual.positional_embedding",
            vec![],
        ),
        (
            "pos_rank.safetensors",
            "visual.positional_embedding",
            vec![5, 64, 1],
        ),
        (
            "pos_rows.safetensors",
            "visual.positional_embedding",
            vec![6, 64],
        ),
        (
            "vocab_empty.safetensors",
            "token_embedding.weight",
            vec![0, 64],
        ),
        ("ctx_one.safetensors", "positional_embedding", vec![1, 64]),
        ("embed_zero.safetensors", "text_projection", vec![64, 0]),
    ];
    for (file, key, shape) in cases {
        let (err, msg) = load_mutated(file, |m| set_shape(m, key, shape.clone()));
        match &err {
            ClipError::InvalidTensor { key: k, found, .. } => {
                assert_eq!(k, key, "{file}: blamed the wrong tensor: {msg}");
                assert_eq!(found, &shape, "{file}: {msg}");
            }
            other => panic!("{file}: expected InvalidTensor, got {other:?}"),
        }
    }
}

#[test]
fn a_wrong_shape_is_blamed_on_its_own_tensor() {
    // One tensor of the image tower with another width: the majority of the tower decides the
    // width, so this tensor is reported, not its well-formed neighbours.
    for key in [
        "visual.class_embedding",
        "visual.ln_pre.weight",
        "visual.transformer.resblocks.1.mlp.c_fc.bias",
        "ln_final.weight",
    ] {
        let (err, msg) = load_mutated("neighbour.safetensors", |m| set_shape(m, key, vec![96]));
        match &err {
            ClipError::ShapeMismatch {
                key: k,
                expected,
                found,
                ..
            } => {
                assert_eq!(k, key, "blamed the wrong tensor: {msg}");
                assert_eq!(found, &[96], "{msg}");
                assert_ne!(expected, &[96], "{msg}");
            }
            other => panic!("{key}: expected ShapeMismatch, got {other:?}"),
        }
    }
    // The conv kernel itself with another width.
    let (err, msg) = load_mutated("conv_width.safetensors", |m| {
        set_shape(m, "visual.conv1.weight", vec![128, 3, 8, 8])
    });
    assert!(
        matches!(&err, ClipError::ShapeMismatch { key, .. } if key == "visual.conv1.weight"),
        "{msg}"
    );
}

#[test]
fn a_missing_tensor_is_reported_missing_not_as_unexpected_siblings() {
    for key in [
        "visual.transformer.resblocks.0.attn.in_proj_weight",
        "visual.transformer.resblocks.0.ln_1.weight",
        "transformer.resblocks.0.attn.in_proj_weight",
        "logit_scale",
    ] {
        let (err, msg) = load_mutated("missing.safetensors", |m| {
            m.remove(key);
        });
        assert!(
            matches!(&err, ClipError::MissingTensor { key: k, .. } if k == key),
            "{key}: {msg}"
        );
    }
    // A whole tower without blocks: its first block is missing.
    let (err, msg) = load_mutated("no_layers.safetensors", |m| {
        m.retain(|k, _| !k.starts_with("transformer.resblocks."));
    });
    assert!(
        matches!(&err, ClipError::MissingTensor { key, .. }
            if key == "transformer.resblocks.0.attn.in_proj_weight"),
        "{msg}"
    );
    // A truly foreign tensor is still unexpected.
    let (err, msg) = load_mutated("extra.safetensors", |m| set_shape(m, "foo.bar", vec![2]));
    assert!(
        matches!(&err, ClipError::UnexpectedTensors { keys, .. } if keys == &["foo.bar"]),
        "{msg}"
    );
}

#[test]
fn widths_that_are_not_multiples_of_64_are_refused() {
    // Heads are width / 64: a 96-wide image tower has no valid head count.
    let config = ClipConfig::new(32, 16, 1, 96, 1, 8, 77, 300, 64, 1, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "w96.safetensors", &tensors(&config));
    let err = load(&path).expect_err("96-wide tower accepted");
    assert!(
        matches!(&err, ClipError::InvalidTensor { key, .. } if key == "visual.conv1.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("multiple of 64"), "{err}");
}

#[test]
fn non_finite_weights_are_refused_at_load_naming_the_tensor() {
    for (value, key) in [
        (
            f32::NAN,
            "visual.transformer.resblocks.1.attn.out_proj.weight",
        ),
        (f32::INFINITY, "logit_scale"),
        (f32::NEG_INFINITY, "token_embedding.weight"),
    ] {
        let (err, msg) = load_mutated("nan.safetensors", |m| {
            let t = m.get_mut(key).expect("key");
            let i = t.data.len() - 1;
            t.data[i] = value;
        });
        match &err {
            ClipError::NonFinite { key: k, index, .. } => {
                assert_eq!(k, key, "{msg}");
                let n: usize = small_shape(key).iter().product();
                assert_eq!(*index, n.max(1) - 1, "{msg}");
            }
            other => panic!("{key}: expected NonFinite, got {other:?}"),
        }
    }
}

fn small_shape(key: &str) -> Vec<usize> {
    tensors(&small())[key].shape.clone()
}

#[test]
fn hugging_face_blocks_missing_a_projection_report_that_projection() {
    let t = |shape: Vec<usize>| HostTensor {
        data: vec![0.0; shape.iter().product()],
        shape,
    };
    let mut hf = BTreeMap::new();
    for i in 0..2 {
        for proj in ["q_proj", "k_proj", "v_proj"] {
            if i == 0 && proj == "q_proj" {
                continue;
            }
            let p = format!("vision_model.encoder.layers.{i}.self_attn.{proj}");
            hf.insert(format!("{p}.weight"), t(vec![4, 4]));
            hf.insert(format!("{p}.bias"), t(vec![4]));
        }
    }
    let err = hf_to_openai(Path::new("hf.safetensors"), hf).expect_err("accepted");
    assert!(
        matches!(&err, ClipError::MissingTensor { key, .. }
            if key == "vision_model.encoder.layers.0.self_attn.q_proj.weight"),
        "{err}"
    );
}

#[test]
fn image_sizes_that_do_not_fit_the_backbone_are_refused_before_running() {
    let c = ClipConfig::vit_b16();
    assert!(c.check_image_size(224).is_ok());
    for bad in [0, 16, 223, 225, 240, 336] {
        let err = c.check_image_size(bad).expect_err("accepted");
        let msg = err.to_string();
        assert!(
            msg.contains(&bad.to_string()) && msg.contains("224"),
            "{msg}"
        );
    }
    let small = small();
    assert!(small.check_image_size(16).is_ok());
    assert!(small.check_image_size(24).is_err());
    // The config of loaded weights validates.
    assert!(small.validate().is_ok());
    let mut broken = small.clone();
    broken.vision_heads = 3;
    assert!(broken.validate().is_err());
}

#[test]
fn a_vocabulary_smaller_than_the_tokenizer_is_refused() {
    let tok = clip_model::tokenizer::Tokenizer::new();
    let err = small()
        .check_tokenizer(&tok, 77)
        .expect_err("300 ids accepted");
    assert!(err.to_string().contains("49407"), "{err}");
    assert!(ClipConfig::vit_b16().check_tokenizer(&tok, 77).is_ok());
    assert!(ClipConfig::vit_b16().check_tokenizer(&tok, 78).is_err());
    let c = small();
    assert!(c
        .check_token_rows(&[vec![1, 2, 299], vec![5, 6, 7]])
        .is_ok());
    assert!(c.check_token_rows(&[vec![1, 2, 300]]).is_err());
    assert!(c.check_token_rows(&[vec![1, 2], vec![1]]).is_err());
    assert!(c.check_token_rows(&[vec![0; 78]]).is_err());
}
