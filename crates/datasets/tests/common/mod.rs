//! Small dataset trees in each dataset's real layout, with tiny real images.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use serde_json::json;

/// Writes a `w`x`h` image whose pixels depend on `tag` (JPEG or PNG by extension).
pub fn write_image(path: &Path, w: u32, h: u32, tag: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 37 + tag * 11) as u8,
            (y * 53 + tag * 7) as u8,
            ((x + y) * 13 + tag * 3) as u8,
        ])
    });
    img.save(path).unwrap();
}

/// One split-file entry: path relative to the image root, label, classname.
pub type Entry = (String, usize, String);

/// Writes `dir/<file>` in the split_zhou format and every listed image under `dir/<image_root>`.
pub fn write_json_split(
    dir: &Path,
    file: &str,
    image_root: &str,
    train: &[Entry],
    val: &[Entry],
    test: &[Entry],
) {
    fs::create_dir_all(dir).unwrap();
    let mut tag = 0;
    for (rel, _, _) in train.iter().chain(val).chain(test) {
        tag += 1;
        write_image(&dir.join(image_root).join(rel), 6, 5, tag);
    }
    let as_json = |xs: &[Entry]| {
        xs.iter()
            .map(|(p, l, c)| json!([p, l, c]))
            .collect::<Vec<_>>()
    };
    let doc = json!({"train": as_json(train), "val": as_json(val), "test": as_json(test)});
    fs::write(dir.join(file), serde_json::to_string(&doc).unwrap()).unwrap();
}

/// Entries `(format(class, i), label, name)` for `n` items of each class.
pub fn entries(
    classes: &[(&str, &str)],
    n: usize,
    mut path: impl FnMut(&str, usize) -> String,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0..n {
        for (label, (folder, name)) in classes.iter().enumerate() {
            out.push((path(folder, i), label, name.to_string()));
        }
    }
    out
}

pub fn write_text(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A temporary data root.
pub struct Root {
    pub tmp: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Self {
        Root {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
}

/// ImageNet: `images/{train,val}/<wnid>/`, `classnames.txt` naming more wnids than present.
/// File names are chosen so that byte order differs from case-insensitive order.
pub fn imagenet(root: &Path) {
    let dir = root.join("imagenet");
    write_text(
        &dir.join("classnames.txt"),
        "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\nn01491361 tiger shark\nn99999999 unused class\n",
    );
    let wnids = ["n01484850", "n01440764", "n01491361", "n01443537"];
    let mut tag = 0;
    for wnid in wnids {
        for f in ["b_2.JPEG", "B_1.JPEG", "a_3.JPEG"] {
            tag += 1;
            write_image(
                &dir.join("images/train")
                    .join(wnid)
                    .join(format!("{wnid}_{f}")),
                7,
                5,
                tag,
            );
        }
        for f in [
            "ILSVRC2012_val_00000002.JPEG",
            "ILSVRC2012_val_00000001.JPEG",
        ] {
            tag += 1;
            write_image(&dir.join("images/val").join(wnid).join(f), 5, 7, tag);
        }
    }
    // Hidden files are skipped, as listdir_nohidden does.
    write_text(&dir.join("images/train/n01440764/.DS_Store"), "x");
}
