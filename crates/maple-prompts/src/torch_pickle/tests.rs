//! Unit tests of the torch checkpoint reader: the fixture, corrupt and hostile inputs.

use super::*;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/maple-tiny")
}

/// The fixture's `data.pkl`, read with the zip crate directly.
fn fixture_pickle() -> Vec<u8> {
    use std::io::Read;
    let mut z = ::zip::ZipArchive::new(File::open(checkpoint_path()).unwrap()).unwrap();
    let mut f = z.by_name("model.pth/data.pkl").unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
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
    let mut z = ::zip::ZipWriter::new(f);
    let opts = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Stored);
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
        serde_json::from_slice(&std::fs::read(fixture_dir().join("config.json")).unwrap()).unwrap();
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
    let Some(state) = succ.as_object().and_then(|o| o.state.as_ref()) else {
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
    let Some(state) = succ.as_object().and_then(|o| o.state.as_ref()) else {
        panic!("successor is not an object");
    };
    let Some(sgd) = state
        .get("optimizer")
        .and_then(PickleValue::as_object)
        .and_then(|o| o.state.as_ref())
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
    let pkl = fixture_pickle();
    let short = dir.path().join("short.pth");
    write_zip(&short, &[("m/data.pkl", &pkl[..pkl.len() / 2])]);
    let err = read_torch_checkpoint(&short).unwrap_err();
    assert!(
        matches!(
            err,
            TorchReadError::Pickle {
                problem: PickleProblem::Truncated { .. }
                    | PickleProblem::NoStop
                    | PickleProblem::UnterminatedLine,
                ..
            }
        ),
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
    let pkl = fixture_pickle();
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
    assert_eq!(v, PickleValue::List(vec![PickleValue::Recursive].into()));

    // "Billion laughs": 40 levels of (x, x) sharing.
    let mut p = P::default();
    p.proto().op(b']');
    for _ in 0..40 {
        p.op(b'q').op(0).op(b'h').op(0).op(0x86);
    }
    p.op(b'.');
    // Shared, not expanded: 2^40 leaves reachable, 41 distinct values built.
    let v = parse_pickle(&p.bytes()).unwrap();
    let mut node = &v;
    for _ in 0..40 {
        let PickleValue::Tuple(items) = node else {
            panic!("not a tuple")
        };
        let (PickleValue::Tuple(a), PickleValue::Tuple(b)) = (&items[0], &items[1]) else {
            break;
        };
        assert!(Arc::ptr_eq(a, b), "the two references are not shared");
        node = &items[0];
    }
    let mut visited = 0;
    v.visit_storages(&mut |_| visited += 1);
    assert_eq!(visited, 0);
    assert!(
        format!("{v:?}").len() < 100_000,
        "Debug output is not capped"
    );

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
    assert!(
        matches!(err.problem, PickleProblem::TooDeep { .. }),
        "{err}"
    );

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
    let Some(obj) = boom.as_object() else {
        panic!("{boom:?}")
    };
    assert_eq!(
        obj.args,
        PickleValue::Tuple(vec![PickleValue::Str("touch PWNED".into())].into())
    );
    assert!(obj.state.is_none());
    let ev = v.get("eval").unwrap();
    assert_eq!(ev.class_name(), Some(("builtins", "eval")));
    let Some(state) = ev.as_object().and_then(|o| o.state.as_ref()) else {
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
    assert!(
        matches!(err, TorchReadError::Record { ref name, ref msg, .. }
            if name == "s/data/0" && msg.contains("needs exactly 20")),
        "{err:?}"
    );

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

// --- bounded memory -------------------------------------------------------------------------

/// `OrderedDict([(w, tensor)])` over one float storage `key` of `numel` elements.
fn one_tensor_pickle(key: &str, numel: i32, size: &[i32], stride: &[i32]) -> Vec<u8> {
    let mut p = P::default();
    p.proto()
        .global("collections", "OrderedDict")
        .op(b')')
        .op(b'R')
        .mark();
    p.s("w").tensor("FloatStorage", key, numel, 0, size, stride);
    p.op(b'u').op(b'.');
    p.bytes()
}

#[test]
fn memo_references_share_strings_instead_of_copying_them() {
    // A 1 MiB string referenced 200 000 times through the memo: 200 GB if copied.
    let mut p = P::default();
    p.proto();
    p.0.push(0x8d); // BINUNICODE8: a u64 length, then UTF-8
    p.0.extend_from_slice(&(1u64 << 20).to_le_bytes());
    p.0.extend(std::iter::repeat_n(b'x', 1 << 20));
    p.op(b'q').op(0).op(b'0'); // memoise, pop
    p.op(b']').mark();
    for _ in 0..200_000 {
        p.op(b'h').op(0);
    }
    p.op(b'e').op(b'.');
    let v = parse_pickle(&p.bytes()).unwrap();
    let items = v.as_sequence().unwrap();
    assert_eq!(items.len(), 200_000);
    let (PickleValue::Str(a), PickleValue::Str(b)) = (&items[0], &items[199_999]) else {
        panic!("not strings")
    };
    assert!(Arc::ptr_eq(a, b), "memo references were copied");
}

#[test]
fn quadratic_container_copies_hit_the_memory_budget() {
    // A list of 20 000 pairs, then 20 000 `OrderedDict(list)` calls on it: each copies the
    // list into a new dict (as Python does), 400 M entries in all. The parse must stop at its
    // budget, not allocate them.
    let mut p = P::default();
    p.proto().op(b']').mark();
    for i in 0..20_000 {
        p.int(i).int(i).op(0x86);
    }
    p.op(b'e').op(b'q').op(0).op(b'0');
    p.op(b']').mark();
    for _ in 0..20_000 {
        p.global("collections", "OrderedDict")
            .op(b'h')
            .op(0)
            .op(0x85)
            .op(b'R');
    }
    p.op(b'e').op(b'.');
    let bytes = p.bytes();
    let err = parse_pickle(&bytes).unwrap_err();
    assert!(matches!(err.problem, PickleProblem::Memory { .. }), "{err}");
    assert_eq!(
        vm::pickle_memory_limit(bytes.len()) >> 20,
        64 + ((64 * bytes.len()) >> 20)
    );
}

#[test]
fn record_sizes_are_checked_against_their_storage_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // Record longer than the storage naming it.
    let path = dir.path().join("long.pth");
    let fb = f32_bytes(&[1.0; 8]);
    write_zip(
        &path,
        &[
            ("l/data.pkl", &one_tensor_pickle("0", 4, &[4], &[1])),
            ("l/data/0", &fb),
        ],
    );
    let err = read_torch_checkpoint(&path).unwrap_err();
    assert!(
        matches!(err, TorchReadError::Record { ref name, .. } if name == "l/data/0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("long.pth"), "{err}");

    // One key named with two sizes.
    let mut p = P::default();
    p.proto()
        .global("collections", "OrderedDict")
        .op(b')')
        .op(b'R')
        .mark();
    p.s("a").tensor("FloatStorage", "0", 4, 0, &[4], &[1]);
    p.s("b").tensor("FloatStorage", "0", 8, 0, &[8], &[1]);
    p.op(b'u').op(b'.');
    let path = dir.path().join("conflict.pth");
    write_zip(&path, &[("c/data.pkl", &p.bytes()), ("c/data/0", &fb)]);
    let err = read_torch_checkpoint(&path).unwrap_err();
    assert!(
        matches!(err, TorchReadError::Storage { ref key, ref problem, .. }
            if key == "0" && matches!(**problem, StorageProblem::Conflict { .. })),
        "{err:?}"
    );

    // A storage claiming a terabyte: refused from the directory entry, nothing allocated.
    let path = dir.path().join("huge_numel.pth");
    write_zip(
        &path,
        &[
            ("h/data.pkl", &one_tensor_pickle("0", i32::MAX, &[4], &[1])),
            ("h/data/0", &fb),
        ],
    );
    let err = read_torch_checkpoint(&path).unwrap_err();
    assert!(matches!(err, TorchReadError::Record { .. }), "{err:?}");
}

#[test]
fn deflate_bombs_are_refused_before_inflating() {
    use std::io::Write;
    // 300 MiB of zeros deflated to a few hundred KiB, named by a storage of that size: the
    // declared size matches the storage, but the expansion exceeds the archive's allowance.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.pth");
    let numel = 300 << 18; // 300 MiB of f32
    let f = File::create(&path).unwrap();
    let mut z = ::zip::ZipWriter::new(f);
    let stored = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Stored);
    let deflated = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    z.start_file("b/data.pkl", stored).unwrap();
    z.write_all(&one_tensor_pickle("0", numel, &[4], &[1]))
        .unwrap();
    z.start_file("b/data/0", deflated).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        z.write_all(&zeros).unwrap();
    }
    z.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    let start = std::time::Instant::now();
    let err = read_torch_checkpoint(&path).unwrap_err();
    assert!(
        matches!(err, TorchReadError::Record { ref name, ref msg, .. }
            if name == "b/data/0" && msg.contains("zip bomb")),
        "{err:?}"
    );
    assert!(start.elapsed().as_secs() < 2, "the record was inflated");

    // A small deflated record is fine (other tools may re-zip checkpoints).
    let path = dir.path().join("deflated.pth");
    let f = File::create(&path).unwrap();
    let mut z = ::zip::ZipWriter::new(f);
    z.start_file("d/data.pkl", stored).unwrap();
    z.write_all(&one_tensor_pickle("0", 4, &[4], &[1])).unwrap();
    z.start_file("d/data/0", deflated).unwrap();
    z.write_all(&f32_bytes(&[1.0, 2.0, 3.0, 4.0])).unwrap();
    z.finish().unwrap();
    let ckpt = read_torch_checkpoint(&path).unwrap();
    assert_eq!(ckpt.state_dict[0].1.data, [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn broadcast_views_cannot_multiply_memory_without_bound() {
    // 64 state-dict entries, each a stride-0 view of 2^24 elements over a 1-element storage:
    // each is under the per-tensor limit, together 4 GiB. The total is refused.
    let mut p = P::default();
    p.proto()
        .global("collections", "OrderedDict")
        .op(b')')
        .op(b'R')
        .mark();
    for i in 0..64 {
        p.s(&format!("w{i}"))
            .tensor("FloatStorage", "0", 1, 0, &[1 << 24], &[0]);
    }
    p.op(b'u').op(b'.');
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broadcast.pth");
    write_zip(
        &path,
        &[("b/data.pkl", &p.bytes()), ("b/data/0", &f32_bytes(&[1.0]))],
    );
    let err = read_torch_checkpoint(&path).unwrap_err();
    assert!(
        matches!(
            err,
            TorchReadError::Storage { ref problem, .. }
                if matches!(**problem, StorageProblem::BudgetExceeded { .. })
        ),
        "{err:?}"
    );
}
