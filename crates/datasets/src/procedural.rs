//! A procedural image world: coloured, textured shapes rendered on the fly from
//! (class, style, seed), for running CLIP and MaPLe end to end with no download.
//!
//! # The world
//! A class is a combination of one [`Colour`], one [`Texture`] and one [`Shape`],
//! named by three words, e.g. `"red striped triangle"`; there are
//! [`NUM_CLASSES`] = 6 × 4 × 6 = 144 of them ([`all_classes`], a fixed order).
//! An image shows one object of its class, with random size, position, rotation,
//! texture phase and colour jitter, over a background drawn in one of two
//! [`Style`]s:
//!
//! - [`Style::Pretrain`], the "web" style: light, plain backgrounds, mild jitter.
//! - [`Style::Downstream`], the "benchmark" style: darker, mid-tone gradient
//!   backgrounds of random hue, pixel noise, small distractor specks and strokes,
//!   and stronger lighting and colour-cast jitter.
//!
//! # Pretraining versus downstream (why the novel numbers stay meaningful)
//! The toy CLIP is pretrained ([`pretrain_batch`]) on captioned images of *all*
//! 144 combinations, but only in the pretraining style: like real CLIP, it has
//! seen every concept and its name, in web-like pictures. The downstream dataset
//! ([`Downstream`]) uses the other style only, so its images differ from anything
//! seen in pretraining the way a benchmark's photos differ from CLIP's web data.
//! Holding the novel combinations out of pretraining instead would make the novel
//! split a test of a tiny model's compositional generalisation, which real CLIP
//! is never asked for on base-to-novel benchmarks. What the base-to-novel protocol
//! measures here is what it measures on real data: MaPLe learns on base classes
//! in the downstream style, and the novel accuracy says whether what it learned
//! (mostly, the style) transfers to classes it never saw in that style.
//!
//! # The downstream class list
//! [`downstream_classes`] arranges classes so that the first half (base) and the
//! second half (novel) share every word while no (shape, colour) pair, let alone a
//! full combination, occurs in both: base classes pair shape `s` with colour
//! `(s + d) mod 6` for `d` in {0, 1, 2}, novel ones for `d` in {3, 4, 5}; with a
//! multiple of 12 classes per half every colour, shape and texture occurs equally
//! often in each half.
//!
//! # Determinism
//! Every image is a function of its (class, style, side, seed) only; item seeds
//! come from `(seed, stream, index)` through [`crate::item_rng::item_seed`] and
//! drive an [`ItemRng`] (a generator written out in this crate, so that images do
//! not change with a `rand` upgrade or with the thread count).

use std::f32::consts::{PI, TAU};

use image::RgbImage;
use rand::Rng;
use rayon::prelude::*;

use crate::error::{DatasetError, Result};
use crate::item_rng::{item_seed, ItemRng};

/// The image side used by the project's toy CLIP, in pixels.
pub const DEFAULT_SIDE: u32 = 32;

/// Number of classes of the world: colours × textures × shapes.
pub const NUM_CLASSES: usize = Colour::ALL.len() * Texture::ALL.len() * Shape::ALL.len();

/// The zero-shot prompt whose wording the pretraining captions include.
pub const ZERO_SHOT_TEMPLATE: &str = "a photo of a {}.";

/// Caption templates of the pretraining data (`{c}` colour, `{t}` texture, `{s}` shape):
/// several word orders, so the text tower must learn the words rather than positions.
pub const CAPTION_TEMPLATES: [&str; 8] = [
    "a photo of a {c} {t} {s}.",
    "a {c} {t} {s}.",
    "a {t} {c} {s}.",
    "a {s} that is {c} and {t}.",
    "a {t} {s} in {c}.",
    "a picture of a {c} {s} with a {t} fill.",
    "the {s} is {t} and {c}.",
    "{c} {t} {s}",
];

/// The object's outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A disc.
    Circle,
    /// A square (rotated at random, so sometimes a diamond).
    Square,
    /// An equilateral triangle.
    Triangle,
    /// A plus-shaped cross.
    Cross,
    /// An annulus.
    Ring,
    /// A five-pointed star.
    Star,
}

/// The object's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Purple.
    Purple,
    /// Orange.
    Orange,
}

/// The pattern filling the object, in the object's colour and a dark shade of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Texture {
    /// Uniform colour.
    Solid,
    /// Parallel stripes (rotating with the object).
    Striped,
    /// A grid of dark dots.
    Dotted,
    /// A checkerboard.
    Checkered,
}

impl Shape {
    /// Every shape, in class-list order.
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Ring,
        Shape::Star,
    ];

    /// The word used in class names and captions.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Star => "star",
        }
    }

    /// Whether the point `(u, v)` of the object's frame (unit = object radius) is inside.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 0.85,
            Shape::Square => u.abs().max(v.abs()) <= 0.8,
            Shape::Triangle => {
                // Edge normals at -90°, 30°, 150°; circumradius 1.15, so apothem 0.575.
                const H: f32 = 0.575;
                const C: f32 = 0.866_025_4;
                -v <= H && 0.5 * v + C * u <= H && 0.5 * v - C * u <= H
            }
            Shape::Cross => {
                let (a, b) = (u.abs(), v.abs());
                (a <= 0.3 && b <= 0.95) || (b <= 0.3 && a <= 0.95)
            }
            Shape::Ring => {
                let r2 = u * u + v * v;
                (0.3..=1.0).contains(&r2)
            }
            Shape::Star => {
                // Fold the angle into [0, π/5]: outer vertex (radius 1) at 0, inner
                // vertex (radius 0.45) at π/5; inside means on the origin's side of that edge.
                const SECTOR: f32 = TAU / 5.0;
                let r = (u * u + v * v).sqrt();
                if r > 1.0 {
                    return false;
                }
                let mut phi = v.atan2(u).rem_euclid(SECTOR);
                if phi > SECTOR / 2.0 {
                    phi = SECTOR - phi;
                }
                let (px, py) = (r * phi.cos(), r * phi.sin());
                let (bx, by) = (0.45 * (PI / 5.0).cos(), 0.45 * (PI / 5.0).sin());
                let (ex, ey) = (bx - 1.0, by);
                ex * py - ey * (px - 1.0) >= 0.0
            }
        }
    }
}

impl Colour {
    /// Every colour, in class-list order.
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
    ];

    /// The word used in class names and captions.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
        }
    }

    /// The nominal sRGB value (before jitter), `[0, 255]` per channel.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [215.0, 35.0, 35.0],
            Colour::Green => [35.0, 165.0, 55.0],
            Colour::Blue => [35.0, 75.0, 220.0],
            Colour::Yellow => [235.0, 210.0, 30.0],
            Colour::Purple => [145.0, 55.0, 195.0],
            Colour::Orange => [245.0, 135.0, 20.0],
        }
    }
}

impl Texture {
    /// Every texture, in class-list order.
    pub const ALL: [Texture; 4] = [
        Texture::Solid,
        Texture::Striped,
        Texture::Dotted,
        Texture::Checkered,
    ];

    /// The word used in class names and captions.
    pub fn name(self) -> &'static str {
        match self {
            Texture::Solid => "solid",
            Texture::Striped => "striped",
            Texture::Dotted => "dotted",
            Texture::Checkered => "checkered",
        }
    }

    /// Whether `(u, v)` (object frame, texture phase added) falls on the dark shade.
    fn dark(self, u: f32, v: f32) -> bool {
        match self {
            Texture::Solid => false,
            Texture::Striped => (u / 0.45).rem_euclid(1.0) < 0.5,
            Texture::Dotted => {
                let fu = (u / 0.5).rem_euclid(1.0) - 0.5;
                let fv = (v / 0.5).rem_euclid(1.0) - 0.5;
                fu * fu + fv * fv < 0.3 * 0.3
            }
            Texture::Checkered => {
                ((u / 0.4).floor() as i64 + (v / 0.4).floor() as i64).rem_euclid(2) == 0
            }
        }
    }
}

/// One class of the world: a colour, a texture and a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Class {
    /// The colour word.
    pub colour: Colour,
    /// The texture word.
    pub texture: Texture,
    /// The shape word.
    pub shape: Shape,
}

impl Class {
    /// A class from its three attributes.
    pub fn new(colour: Colour, texture: Texture, shape: Shape) -> Self {
        Class {
            colour,
            texture,
            shape,
        }
    }

    /// The class name, `"{colour} {texture} {shape}"`, e.g. `"red striped triangle"`.
    pub fn name(&self) -> String {
        format!(
            "{} {} {}",
            self.colour.name(),
            self.texture.name(),
            self.shape.name()
        )
    }

    /// The position of this class in [`all_classes`].
    pub fn index(&self) -> usize {
        let c = Colour::ALL
            .iter()
            .position(|&x| x == self.colour)
            .expect("colour in ALL");
        let t = Texture::ALL
            .iter()
            .position(|&x| x == self.texture)
            .expect("texture in ALL");
        let s = Shape::ALL
            .iter()
            .position(|&x| x == self.shape)
            .expect("shape in ALL");
        (c * Texture::ALL.len() + t) * Shape::ALL.len() + s
    }

    /// The class at position `index` of [`all_classes`].
    ///
    /// # Panics
    /// If `index >= NUM_CLASSES`.
    pub fn from_index(index: usize) -> Self {
        assert!(
            index < NUM_CLASSES,
            "class index {index} out of range (the world has {NUM_CLASSES} classes)"
        );
        let (ns, nt) = (Shape::ALL.len(), Texture::ALL.len());
        Class::new(
            Colour::ALL[index / (ns * nt)],
            Texture::ALL[(index / ns) % nt],
            Shape::ALL[index % ns],
        )
    }

    /// A caption of this class from `template` (see [`CAPTION_TEMPLATES`]).
    pub fn caption(&self, template: &str) -> String {
        template
            .replace("{c}", self.colour.name())
            .replace("{t}", self.texture.name())
            .replace("{s}", self.shape.name())
    }
}

/// Every class of the world in a fixed order: colour-major, then texture, then shape.
pub fn all_classes() -> Vec<Class> {
    (0..NUM_CLASSES).map(Class::from_index).collect()
}

/// The names of `classes`, in order.
pub fn class_names(classes: &[Class]) -> Vec<String> {
    classes.iter().map(Class::name).collect()
}

/// How images look apart from their object's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// The pretraining ("web") style: light plain backgrounds, mild jitter.
    Pretrain,
    /// The downstream ("benchmark") style: noisy gradient backgrounds of random hue,
    /// distractor specks and strokes, stronger lighting and colour-cast jitter.
    Downstream,
}

/// A small mark drawn under the object in the downstream style.
#[derive(Debug, Clone, Copy)]
struct Distractor {
    /// Segment from `(x0, y0)` to `(x1, y1)` (equal ends make a dot).
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    /// Half thickness in pixels.
    radius: f32,
    rgb: [f32; 3],
}

impl Distractor {
    /// A dot (half the time) or a short thin stroke, of any colour, anywhere in a `side` image.
    fn sample(side: f32, rng: &mut ItemRng) -> Self {
        let (x0, y0) = (rng.random_range(0.0..side), rng.random_range(0.0..side));
        let (len, (ds, dc)) = if rng.random_bool(0.5) {
            (0.0, (0.0, 1.0))
        } else {
            (
                rng.random_range(3.0..side * 0.3),
                rng.random_range(0.0..TAU).sin_cos(),
            )
        };
        let rgb = [
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
        ];
        let radius = if len > 0.0 {
            rng.random_range(0.5..1.0)
        } else {
            rng.random_range(0.8..2.0)
        };
        Distractor {
            x0,
            y0,
            x1: x0 + len * dc,
            y1: y0 + len * ds,
            radius,
            rgb,
        }
    }

    fn covers(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (self.x1 - self.x0, self.y1 - self.y0);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((x - self.x0) * dx + (y - self.y0) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (px, py) = (self.x0 + t * dx - x, self.y0 + t * dy - y);
        px * px + py * py <= self.radius * self.radius
    }
}

/// Everything random about one image, drawn before any pixel is written.
struct Scene {
    class: Class,
    side: f32,
    cx: f32,
    cy: f32,
    inv_radius: f32,
    cos: f32,
    sin: f32,
    phase: (f32, f32),
    light: [f32; 3],
    dark: [f32; 3],
    /// Background colour at the top-left corner and its change along `grad_dir` per pixel.
    bg0: [f32; 3],
    bg_step: [f32; 3],
    grad_dir: (f32, f32),
    distractors: Vec<Distractor>,
    noise: f32,
}

fn mix3(a: [f32; 3], mut f: impl FnMut(usize, f32) -> f32) -> [f32; 3] {
    [f(0, a[0]), f(1, a[1]), f(2, a[2])]
}

impl Scene {
    fn sample(class: Class, style: Style, side: u32, rng: &mut ItemRng) -> Self {
        let s = side as f32;
        let radius = s * rng.random_range(0.24..0.38);
        let margin = radius * 0.8;
        let cx = rng.random_range(margin..s - margin);
        let cy = rng.random_range(margin..s - margin);
        let (sin, cos) = rng.random_range(0.0..TAU).sin_cos();
        let phase = (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0));
        // Lighting: one brightness factor and a per-channel colour cast.
        let (bright, cast) = match style {
            Style::Pretrain => (rng.random_range(0.92..1.05), 10.0),
            Style::Downstream => (rng.random_range(0.65..1.1), 30.0),
        };
        let nominal = class.colour.rgb();
        let light = mix3(nominal, |_, v| v * bright + rng.random_range(-cast..cast));
        let dark = mix3(light, |_, v| v * 0.35);
        let (bg0, bg_step, grad_dir, distractors, noise) = match style {
            Style::Pretrain => {
                let grey = rng.random_range(205.0..250.0);
                let bg0 = mix3([grey; 3], |_, v| v + rng.random_range(-8.0..8.0));
                (bg0, [0.0; 3], (1.0, 0.0), Vec::new(), 0.0)
            }
            Style::Downstream => {
                // Background brightness is the main knob of the style gap: the toy CLIP
                // has only seen light backgrounds, and its zero-shot accuracy falls
                // steadily as they darken (about 80% for levels 150..230, 25% for 30..170).
                // 80..210 leaves it clearly above chance but far from perfect.
                let tone = |rng: &mut ItemRng| {
                    let level = rng.random_range(80.0..210.0);
                    mix3([level; 3], |_, v| v + rng.random_range(-45.0..45.0))
                };
                let (from, to) = (tone(rng), tone(rng));
                let (gs, gc) = rng.random_range(0.0..TAU).sin_cos();
                // Project the image corners on the gradient direction so the ramp spans it.
                let corners = [0.0, s * gc, s * gs, s * (gc + gs)];
                let lo = corners.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = corners.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let span = (hi - lo).max(1.0);
                let bg_step = mix3(from, |c, v| (to[c] - v) / span);
                let bg0 = mix3(from, |c, v| v - bg_step[c] * lo);
                let count = rng.random_range(3..7);
                let distractors = (0..count).map(|_| Distractor::sample(s, rng)).collect();
                (
                    bg0,
                    bg_step,
                    (gc, gs),
                    distractors,
                    rng.random_range(10.0..28.0),
                )
            }
        };
        Scene {
            class,
            side: s,
            cx,
            cy,
            inv_radius: 1.0 / radius,
            cos,
            sin,
            phase,
            light,
            dark,
            bg0,
            bg_step,
            grad_dir,
            distractors,
            noise,
        }
    }

    fn background(&self, x: f32, y: f32) -> [f32; 3] {
        if let Some(d) = self.distractors.iter().rev().find(|d| d.covers(x, y)) {
            return d.rgb;
        }
        let t = x * self.grad_dir.0 + y * self.grad_dir.1;
        mix3(self.bg0, |c, v| v + self.bg_step[c] * t)
    }

    /// The colour at `(x, y)` in pixel units (pixel centres at `i + 0.5`).
    fn sample_at(&self, x: f32, y: f32) -> [f32; 3] {
        let (dx, dy) = (
            (x - self.cx) * self.inv_radius,
            (y - self.cy) * self.inv_radius,
        );
        let (u, v) = (
            dx * self.cos + dy * self.sin,
            -dx * self.sin + dy * self.cos,
        );
        if self.class.shape.contains(u, v) {
            if self.class.texture.dark(u + self.phase.0, v + self.phase.1) {
                self.dark
            } else {
                self.light
            }
        } else {
            self.background(x, y)
        }
    }

    fn draw(&self, rng: &mut ItemRng) -> RgbImage {
        let n = self.side as u32;
        let mut out = RgbImage::new(n, n);
        // 2×2 supersampling keeps edges and fine textures from aliasing at 32 px.
        const OFFSETS: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
        for (i, px) in out.as_mut().chunks_exact_mut(3).enumerate() {
            let (x, y) = ((i as u32 % n) as f32, (i as u32 / n) as f32);
            let mut acc = [0f32; 3];
            for (ox, oy) in OFFSETS {
                let c = self.sample_at(x + ox, y + oy);
                acc = mix3(acc, |k, a| a + c[k]);
            }
            let noise = if self.noise > 0.0 {
                let r = rng.next_u64();
                mix3([0.0; 3], |k, _| {
                    ((r >> (16 * k)) & 0xffff) as f32 / 65535.0 * 2.0 - 1.0
                })
            } else {
                [0.0; 3]
            };
            for k in 0..3 {
                px[k] = (acc[k] * 0.25 + noise[k] * self.noise)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        out
    }
}

/// Renders one image of `class` in `style`, `side` × `side` pixels; the same
/// arguments always give the same image.
pub fn render(class: Class, style: Style, side: u32, seed: u64) -> RgbImage {
    let mut rng = ItemRng::new(seed);
    let scene = Scene::sample(class, style, side, &mut rng);
    scene.draw(&mut rng)
}

/// Seeds of the independent random streams of this module.
mod stream {
    pub const PRETRAIN_ORDER: u64 = 0x7072_6574_7261_696e; // "pretrain"
    pub const PRETRAIN_ITEM: u64 = 0x7072_6574_6974_656d; // "pretitem"
    pub const DOWNSTREAM_TRAIN: u64 = 0x6473_7472_6169_6e00; // "dstrain"
    pub const DOWNSTREAM_TEST: u64 = 0x6473_7465_7374_0000; // "dstest"
}

/// The seed of item `index` of stream `stream`.
fn stream_seed(seed: u64, stream: u64, index: u64) -> u64 {
    item_seed(seed, stream, index)
}

/// One captioned pretraining image.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainItem {
    /// The class shown.
    pub class: Class,
    /// Its caption, from one of [`CAPTION_TEMPLATES`].
    pub caption: String,
    /// The image, in [`Style::Pretrain`].
    pub image: RgbImage,
}

/// The pretraining batch number `step`: `batch_size` captioned images of
/// pairwise different classes (so a contrastive loss has no duplicate positives;
/// beyond [`NUM_CLASSES`] classes repeat), rendered in parallel.
///
/// The batch depends only on `(seed, step, batch_size, side)`.
pub fn pretrain_batch(seed: u64, step: u64, batch_size: usize, side: u32) -> Vec<PretrainItem> {
    let mut order: Vec<usize> = (0..NUM_CLASSES).collect();
    ItemRng::new(stream_seed(seed, stream::PRETRAIN_ORDER, step)).shuffle(&mut order);
    (0..batch_size)
        .into_par_iter()
        .map(|slot| {
            let class = Class::from_index(order[slot % NUM_CLASSES]);
            let mut rng = ItemRng::new(item_seed(
                stream_seed(seed, stream::PRETRAIN_ITEM, step),
                0,
                slot as u64,
            ));
            let template = CAPTION_TEMPLATES[rng.random_range(0..CAPTION_TEMPLATES.len())];
            let image = render(class, Style::Pretrain, side, rng.next_u64());
            PretrainItem {
                class,
                caption: class.caption(template),
                image,
            }
        })
        .collect()
}

/// The most classes per half [`downstream_classes`] can give: 3 colour offsets ×
/// 6 shapes × 4 textures.
pub const MAX_CLASSES_PER_HALF: usize = 72;

/// The downstream class list: `classes_per_half` base classes, then as many novel
/// ones (see the module docs for the arrangement).
///
/// Classes come in blocks of 12: block `b` of half `h` pairs each shape `s` with colour
/// `(s + d) mod 6` for two colour offsets `d` (from {0, 1, 2} in the base half, {3, 4, 5}
/// in the novel half), with textures cycling through the block. So every block holds each
/// shape and colour twice and each texture three times, and the six blocks together give
/// each (shape, colour) pair of the half all four textures once.
///
/// # Errors
/// If `classes_per_half` is below 6 (some colour or shape would be missing from a
/// half) or above [`MAX_CLASSES_PER_HALF`].
pub fn downstream_classes(classes_per_half: usize) -> Result<Vec<Class>> {
    if !(6..=MAX_CLASSES_PER_HALF).contains(&classes_per_half) {
        return Err(DatasetError::Unsupported {
            dataset: "procedural".into(),
            reason: format!(
                "classes_per_half = {classes_per_half}; expected 6..={MAX_CLASSES_PER_HALF} so that every word occurs in both halves"
            ),
        });
    }
    // The colour offsets of each block, and a texture shift per block chosen so that
    // the four blocks that use a given offset give its pairs four different textures.
    const BLOCK_OFFSETS: [[usize; 2]; 6] = [[0, 1], [2, 0], [1, 2], [0, 1], [2, 0], [1, 2]];
    const BLOCK_TEXTURE_SHIFT: [usize; 6] = [0, 0, 0, 1, 1, 1];
    let class = |h: usize, j: usize| {
        let (b, k) = (j / 12, j % 12);
        let s = k % 6;
        let d = 3 * h + BLOCK_OFFSETS[b][k / 6];
        let t = (k + BLOCK_TEXTURE_SHIFT[b] + 2 * h) % 4;
        Class::new(Colour::ALL[(s + d) % 6], Texture::ALL[t], Shape::ALL[s])
    };
    Ok((0..2)
        .flat_map(|h| (0..classes_per_half).map(move |j| class(h, j)))
        .collect())
}

/// Settings of a [`Downstream`] dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamConfig {
    /// Base classes (and novel classes): 6..=72; multiples of 12 balance every word.
    pub classes_per_half: usize,
    /// Training images per class (few-shot sampling picks among them).
    pub train_per_class: usize,
    /// Test images per class.
    pub test_per_class: usize,
    /// Image side in pixels.
    pub side: u32,
    /// Seed of every image.
    pub seed: u64,
}

impl Default for DownstreamConfig {
    /// 12 + 12 classes, 32 train and 50 test images per class, [`DEFAULT_SIDE`], seed 1.
    fn default() -> Self {
        DownstreamConfig {
            classes_per_half: 12,
            train_per_class: 32,
            test_per_class: 50,
            side: DEFAULT_SIDE,
            seed: 1,
        }
    }
}

/// One downstream image: its label and the seed it is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    /// Class label, 0-based, into [`Downstream::classes`].
    pub label: usize,
    /// Render seed.
    pub seed: u64,
}

/// A downstream dataset of the procedural world, in [`Style::Downstream`]:
/// labels `0..n/2` are the base classes, `n/2..n` the novel ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Downstream {
    /// The settings it was built from.
    pub config: DownstreamConfig,
    /// Classes in label order (base, then novel).
    pub classes: Vec<Class>,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Training items, class-major (all images of label 0, then label 1, ...).
    pub train: Vec<Item>,
    /// Test items, class-major.
    pub test: Vec<Item>,
}

impl Downstream {
    /// Lists the dataset (no image is rendered until asked for).
    ///
    /// # Errors
    /// An unsupported `classes_per_half` (see [`downstream_classes`]) or a zero side.
    pub fn new(config: &DownstreamConfig) -> Result<Self> {
        if config.side == 0 {
            return Err(DatasetError::Unsupported {
                dataset: "procedural".into(),
                reason: "image side 0".into(),
            });
        }
        let classes = downstream_classes(config.classes_per_half)?;
        let items = |stream: u64, per_class: usize| -> Vec<Item> {
            (0..classes.len())
                .flat_map(|label| {
                    (0..per_class).map(move |k| {
                        let index = (label * per_class + k) as u64;
                        Item {
                            label,
                            seed: stream_seed(config.seed, stream, index),
                        }
                    })
                })
                .collect()
        };
        Ok(Downstream {
            train: items(stream::DOWNSTREAM_TRAIN, config.train_per_class),
            test: items(stream::DOWNSTREAM_TEST, config.test_per_class),
            class_names: class_names(&classes),
            classes,
            config: config.clone(),
        })
    }

    /// Number of classes (base + novel).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Number of base classes (labels `0..num_base()`); the rest are novel.
    pub fn num_base(&self) -> usize {
        self.classes.len() / 2
    }

    /// Whether `label` is a base class.
    pub fn is_base(&self, label: usize) -> bool {
        label < self.num_base()
    }

    /// Renders one item.
    pub fn image(&self, item: &Item) -> RgbImage {
        render(
            self.classes[item.label],
            Style::Downstream,
            self.config.side,
            item.seed,
        )
    }

    /// Renders several items in parallel, in order.
    pub fn images(&self, items: &[Item]) -> Vec<RgbImage> {
        items.par_iter().map(|it| self.image(it)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        let s: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| (x as i64 - y as i64).unsigned_abs())
            .sum();
        s as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn images_are_a_function_of_class_style_and_seed() {
        for style in [Style::Pretrain, Style::Downstream] {
            let c = Class::from_index(37);
            assert_eq!(render(c, style, 32, 9), render(c, style, 32, 9));
            assert_ne!(render(c, style, 32, 9), render(c, style, 32, 10));
        }
        assert_eq!(pretrain_batch(3, 5, 20, 32), pretrain_batch(3, 5, 20, 32));
        let cfg = DownstreamConfig::default();
        let (a, b) = (
            Downstream::new(&cfg).unwrap(),
            Downstream::new(&cfg).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a.image(&a.test[7]), b.images(&b.test[..8])[7]);
    }

    #[test]
    fn class_indices_round_trip_and_names_are_three_distinct_words() {
        let all = all_classes();
        assert_eq!(all.len(), NUM_CLASSES);
        let names: HashSet<String> = class_names(&all).into_iter().collect();
        assert_eq!(names.len(), NUM_CLASSES);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(c.name().split(' ').count(), 3);
        }
        assert_eq!(all[0].name(), "red solid circle");
    }

    #[test]
    fn base_and_novel_share_every_word_but_no_shape_colour_pair() {
        for per_half in [6, 12, 18, 24, 36, 48, 72] {
            let classes = downstream_classes(per_half).unwrap();
            let (base, novel) = classes.split_at(per_half);
            let distinct: HashSet<&Class> = classes.iter().collect();
            assert_eq!(distinct.len(), 2 * per_half, "{per_half}: classes repeat");
            let pairs = |h: &[Class]| {
                h.iter()
                    .map(|c| (c.shape, c.colour))
                    .collect::<HashSet<_>>()
            };
            assert!(
                pairs(base).is_disjoint(&pairs(novel)),
                "{per_half}: a (shape, colour) pair is in both halves"
            );
            for half in [base, novel] {
                let count = |f: &dyn Fn(&Class) -> bool| half.iter().filter(|c| f(c)).count();
                for s in Shape::ALL {
                    let n = count(&|c| c.shape == s);
                    assert_eq!(n, per_half / 6, "{per_half}: shape {s:?}");
                }
                for col in Colour::ALL {
                    let n = count(&|c| c.colour == col);
                    assert!(
                        n >= per_half / 6 && n <= per_half.div_ceil(6),
                        "{per_half}: colour {col:?} {n}"
                    );
                }
                for t in Texture::ALL {
                    let n = count(&|c| c.texture == t);
                    assert!(n >= 1, "{per_half}: texture {t:?} missing from a half");
                    if per_half % 12 == 0 {
                        assert_eq!(n, per_half / 4, "{per_half}: texture {t:?}");
                    }
                }
            }
        }
        assert!(downstream_classes(5).is_err());
        assert!(downstream_classes(73).is_err());
    }

    #[test]
    fn images_of_different_classes_differ() {
        // Same seed, so same geometry and background: only the class changes.
        let a = Class::new(Colour::Red, Texture::Solid, Shape::Circle);
        let changes = [
            Class::new(Colour::Blue, Texture::Solid, Shape::Circle),
            Class::new(Colour::Red, Texture::Striped, Shape::Circle),
            Class::new(Colour::Red, Texture::Solid, Shape::Star),
        ];
        for style in [Style::Pretrain, Style::Downstream] {
            for b in changes {
                let d = mean_abs_diff(&render(a, style, 32, 4), &render(b, style, 32, 4));
                assert!(
                    d > 1.0,
                    "{} vs {} in {style:?}: mean abs diff {d}",
                    a.name(),
                    b.name()
                );
            }
        }
    }

    #[test]
    fn styles_differ_in_background_statistics() {
        // The pretraining style has light plain backgrounds; the downstream one is
        // darker and noisy. Compare the mean brightness and the local roughness of
        // the top-left corner pixel neighbourhoods over many images.
        let stats = |style: Style| {
            let (mut bright, mut rough) = (0.0, 0.0);
            for seed in 0..200 {
                let img = render(
                    Class::from_index(seed as usize % NUM_CLASSES),
                    style,
                    32,
                    seed,
                );
                let raw = img.as_raw();
                bright += raw.iter().map(|&v| v as f64).sum::<f64>() / raw.len() as f64;
                rough += raw
                    .windows(4)
                    .map(|w| (w[0] as f64 - w[3] as f64).abs())
                    .sum::<f64>()
                    / raw.len() as f64;
            }
            (bright / 200.0, rough / 200.0)
        };
        let (pb, pr) = stats(Style::Pretrain);
        let (db, dr) = stats(Style::Downstream);
        assert!(pb > db + 40.0, "pretrain brightness {pb}, downstream {db}");
        assert!(dr > pr * 1.5, "pretrain roughness {pr}, downstream {dr}");
    }

    #[test]
    fn pretrain_batches_hold_distinct_classes_with_matching_captions() {
        let batch = pretrain_batch(0, 3, 64, 32);
        assert_eq!(batch.len(), 64);
        let classes: HashSet<Class> = batch.iter().map(|b| b.class).collect();
        assert_eq!(classes.len(), 64);
        for item in &batch {
            for word in [
                item.class.colour.name(),
                item.class.texture.name(),
                item.class.shape.name(),
            ] {
                assert!(
                    item.caption.contains(word),
                    "{:?} lacks {word}",
                    item.caption
                );
            }
            assert_eq!(item.image.dimensions(), (32, 32));
        }
        assert_ne!(pretrain_batch(0, 3, 8, 32), pretrain_batch(0, 4, 8, 32));
    }

    #[test]
    fn downstream_lists_base_then_novel_with_balanced_splits() {
        let ds = Downstream::new(&DownstreamConfig::default()).unwrap();
        assert_eq!(ds.num_classes(), 24);
        assert_eq!(ds.train.len(), 24 * 32);
        assert_eq!(ds.test.len(), 24 * 50);
        assert!(ds.is_base(11) && !ds.is_base(12));
        let seeds: HashSet<u64> = ds.train.iter().chain(&ds.test).map(|i| i.seed).collect();
        assert_eq!(
            seeds.len(),
            ds.train.len() + ds.test.len(),
            "train and test items share a seed"
        );
    }
}
