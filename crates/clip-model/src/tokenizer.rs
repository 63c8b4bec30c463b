//! CLIP's byte-level BPE tokenizer, reproducing OpenAI's `clip/simple_tokenizer.py`
//! and `clip.tokenize` exactly.
//!
//! The pipeline for one text is:
//!
//! 1. **Cleaning** ([`Tokenizer::clean`]): `ftfy.fix_text` (a port of ftfy 6.1.1 with
//!    its default configuration: HTML entity unescaping, mojibake repair through the
//!    same single-byte codecs and "badness" heuristic, C1 controls, Latin ligatures,
//!    full-width characters, curly quotes, line breaks, terminal escapes, control
//!    characters, NFC), then Python's `html.unescape` twice, `strip`, collapsing runs
//!    of whitespace to one space, and lower-casing.
//! 2. **Pre-tokenisation** with CLIP's pattern
//!    `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!    (case-insensitive).
//! 3. **Byte-level BPE** on the UTF-8 bytes of each piece, with the 48 894 merges of
//!    `bpe_simple_vocab_16e6.txt.gz` (embedded in the crate). The vocabulary has 49 408
//!    entries; `<|startoftext|>` is [`SOT`] and `<|endoftext|>` is [`EOT`].
//! 4. [`Tokenizer::tokenize`]: `[SOT] + ids + [EOT]`, zero padded to the context
//!    length (77 for CLIP), an error when too long, or truncation that keeps the
//!    first `context_length` ids and overwrites the last with [`EOT`].
//!
//! ```
//! use clip_model::tokenizer::{Tokenizer, CONTEXT_LENGTH, EOT, SOT};
//!
//! let tok = Tokenizer::new();
//! let row = tok.tokenize("a photo of a cat.", CONTEXT_LENGTH, false).unwrap();
//! assert_eq!(row.len(), CONTEXT_LENGTH);
//! assert_eq!(&row[..9], &[SOT, 320, 1125, 539, 320, 2368, 269, EOT, 0]);
//! assert_eq!(tok.decode(&row[1..7]), "a photo of a cat . ");
//! ```
//!
//! BPE results are cached per pre-token (behind a mutex), so encoding thousands of
//! class names is cheap; a [`Tokenizer`] is `Send + Sync` and can be shared.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{LazyLock, Mutex};

use regex::Regex;

/// Id of `<|startoftext|>` in CLIP's vocabulary.
pub const SOT: u32 = 49406;
/// Id of `<|endoftext|>` in CLIP's vocabulary.
pub const EOT: u32 = 49407;
/// CLIP's text context length (number of token positions per row).
pub const CONTEXT_LENGTH: usize = 77;

/// Number of merges CLIP reads from the vocabulary file (`lines[1:49152-256-2+1]`).
const NUM_MERGES: usize = 49152 - 256 - 2;
const SOT_TEXT: &str = "<|startoftext|>";
const EOT_TEXT: &str = "<|endoftext|>";
/// Upper bound on cached pre-tokens; the cache is emptied when it is reached.
const CACHE_LIMIT: usize = 1 << 17;

/// The gzip-compressed vocabulary shipped with OpenAI's CLIP.
static EMBEDDED_VOCAB_GZ: &[u8] = include_bytes!("../bpe_simple_vocab_16e6.txt.gz");

/// Code points that Python's `regex` module (2026.5.9, Unicode 17, the version that
/// produced the reference fixture) counts as `\p{L}` but the `regex` crate's Unicode
/// tables (Unicode 16) do not yet.
const EXTRA_LETTERS: &str = concat!(
    r"\x{558}\x{58B}-\x{58C}\x{88F}\x{C5C}\x{CDC}\x{208F}\x{209D}-\x{209F}",
    r"\x{A7CE}-\x{A7CF}\x{A7D2}\x{A7D4}\x{A7DD}\x{A7E2}\x{A7F1}\x{AB6C}-\x{AB6D}",
    r"\x{107BB}-\x{107BF}\x{10940}-\x{10959}\x{10EC5}-\x{10EC7}\x{10ED9}-\x{10EEE}",
    r"\x{11B0A}\x{11DB0}-\x{11DDB}\x{11DF1}\x{16EA0}-\x{16EB8}\x{16EBB}-\x{16ED3}",
    r"\x{16FF2}-\x{16FF3}\x{187F8}-\x{187FF}\x{18CD6}-\x{18CDA}\x{18D09}-\x{18D20}",
    r"\x{18D80}-\x{18DF2}\x{18E00}-\x{19191}\x{191A0}-\x{191D2}\x{1B123}-\x{1B128}",
    r"\x{1B168}\x{1D6A6}\x{1DF1F}-\x{1DF24}\x{1DF2B}-\x{1DF81}\x{1DF90}-\x{1DF96}",
    r"\x{1DFCD}-\x{1DFFF}\x{1E6C0}-\x{1E6DE}\x{1E6E0}-\x{1E6E2}\x{1E6E4}-\x{1E6E5}",
    r"\x{1E6E7}-\x{1E6ED}\x{1E6F0}-\x{1E6F4}\x{1E6FE}-\x{1E6FF}\x{2B73A}-\x{2B73F}",
    r"\x{2B81E}\x{2CEA2}-\x{2CEAD}\x{323B0}-\x{33479}\x{3D000}-\x{3FC3F}",
);
/// As [`EXTRA_LETTERS`], for `\p{N}`.
const EXTRA_NUMBERS: &str =
    r"\x{11DE0}-\x{11DE9}\x{1246F}\x{12475}-\x{1247F}\x{12550}-\x{12686}\x{16FF4}-\x{16FF6}";

/// CLIP's pre-tokenisation pattern. The `regex` module's `IGNORECASE` only matters
/// for the literal alternatives (`'s` also matches `'ſ`), and it makes the negated
/// class reject U+0345 (whose case-fold is a letter), hence `\x{345}` below.
static TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| {
    let letters = format!(r"\p{{L}}{EXTRA_LETTERS}");
    let numbers = format!(r"\p{{N}}{EXTRA_NUMBERS}");
    Regex::new(&format!(
        r"(?i:<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d)|[{letters}]+|[{numbers}]|[^\s{letters}{numbers}\x{{345}}]+"
    ))
    .expect("valid token pattern")
});

/// `regex.sub(r'\s+', ' ', text)` from `whitespace_clean` (the `regex` module's `\s`
/// is Unicode `White_Space`, like Rust's).
static WHITESPACE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+").expect("valid whitespace pattern"));

/// Errors from [`Tokenizer`].
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The text needs more than `context_length` ids (counting SOT and EOT) and
    /// truncation was not requested. The message is the one `clip.tokenize` raises.
    #[error("Input {text} is too long for context length {context_length}")]
    TooLong {
        /// The text as given by the caller.
        text: String,
        /// Number of ids the text needs, SOT and EOT included.
        len: usize,
        /// The context length that was asked for.
        context_length: usize,
    },
    /// The vocabulary file could not be read (bad gzip data or not UTF-8).
    #[error("invalid BPE vocabulary: {0}")]
    Vocab(String),
}

/// CLIP's BPE tokenizer (OpenAI `SimpleTokenizer` plus `clip.tokenize`).
pub struct Tokenizer {
    /// Byte -> printable character (`bytes_to_unicode`).
    byte_encoder: [char; 256],
    /// Inverse of `byte_encoder`.
    byte_decoder: HashMap<char, u8>,
    /// Vocabulary string -> id (the last id wins for duplicate strings, as in Python).
    encoder: HashMap<String, u32>,
    /// Id -> vocabulary string; `None` for ids shadowed by a later duplicate.
    decoder: Vec<Option<String>>,
    /// Id of each single byte symbol.
    byte_ids: [u32; 256],
    /// Id of each single byte symbol followed by `</w>`.
    byte_end_ids: [u32; 256],
    /// (left id, right id) -> (merge rank, id of the merged symbol).
    merges: HashMap<(u32, u32), (u32, u32)>,
    sot: u32,
    eot: u32,
    /// Pre-token -> BPE ids.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl Tokenizer {
    /// Builds the tokenizer from the vocabulary embedded in the crate
    /// (`bpe_simple_vocab_16e6.txt.gz`, 49 408 ids).
    pub fn new() -> Self {
        Self::from_gz_bytes(EMBEDDED_VOCAB_GZ).expect("the embedded CLIP vocabulary is valid")
    }

    /// Builds a tokenizer from another gzip-compressed vocabulary file in the format of
    /// `bpe_simple_vocab_16e6.txt.gz` (a header line, then one merge `left right` per
    /// line). Like CLIP, it reads lines `1..=48894` (fewer if the file is shorter).
    pub fn from_gz_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| TokenizerError::Vocab(format!("cannot decompress the vocabulary: {e}")))?;
        Ok(Self::from_merges_text(&text))
    }

    fn from_merges_text(text: &str) -> Self {
        let byte_encoder = bytes_to_unicode();
        let byte_decoder: HashMap<char, u8> =
            (0..=255u8).map(|b| (byte_encoder[b as usize], b)).collect();

        let lines: Vec<&str> = text.split('\n').collect();
        let end = lines.len().min(NUM_MERGES + 1);
        let merges: Vec<Vec<&str>> = lines
            .get(1..end)
            .unwrap_or(&[])
            .iter()
            .map(|line| line.split(py_isspace).filter(|p| !p.is_empty()).collect())
            .collect();

        // Vocabulary order: bytes in `bytes_to_unicode` order, the same with `</w>`,
        // the merges, then the two special tokens.
        let order = bytes_to_unicode_order();
        let mut vocab: Vec<String> = Vec::with_capacity(512 + merges.len() + 2);
        vocab.extend(order.iter().map(|&b| byte_encoder[b as usize].to_string()));
        vocab.extend(
            order
                .iter()
                .map(|&b| format!("{}</w>", byte_encoder[b as usize])),
        );
        vocab.extend(merges.iter().map(|m| m.concat()));
        vocab.push(SOT_TEXT.to_string());
        vocab.push(EOT_TEXT.to_string());

        let mut encoder: HashMap<String, u32> = HashMap::with_capacity(vocab.len());
        for (id, s) in vocab.iter().enumerate() {
            encoder.insert(s.clone(), id as u32);
        }
        let decoder: Vec<Option<String>> = vocab
            .into_iter()
            .enumerate()
            .map(|(id, s)| (encoder.get(&s) == Some(&(id as u32))).then_some(s))
            .collect();

        let mut byte_ids = [0u32; 256];
        let mut byte_end_ids = [0u32; 256];
        for b in 0..256 {
            let c = byte_encoder[b];
            byte_ids[b] = encoder[&c.to_string()];
            byte_end_ids[b] = encoder[&format!("{c}</w>")];
        }

        // `bpe_ranks = dict(zip(merges, range(len(merges))))`: a repeated merge keeps its
        // last rank. Merges whose parts are not symbols can never apply.
        let mut merge_map: HashMap<(u32, u32), (u32, u32)> = HashMap::with_capacity(merges.len());
        for (rank, parts) in merges.iter().enumerate() {
            if let [left, right] = parts.as_slice() {
                if let (Some(&l), Some(&r), Some(&m)) = (
                    encoder.get(*left),
                    encoder.get(*right),
                    encoder.get(&parts.concat()),
                ) {
                    merge_map.insert((l, r), (rank as u32, m));
                }
            }
        }

        let sot = encoder[SOT_TEXT];
        let eot = encoder[EOT_TEXT];
        Tokenizer {
            byte_encoder,
            byte_decoder,
            encoder,
            decoder,
            byte_ids,
            byte_end_ids,
            merges: merge_map,
            sot,
            eot,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Number of ids in the vocabulary (49 408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.decoder.len()
    }

    /// Id of `<|startoftext|>` in this vocabulary ([`SOT`] for CLIP's).
    pub fn sot_id(&self) -> u32 {
        self.sot
    }

    /// Id of `<|endoftext|>` in this vocabulary ([`EOT`] for CLIP's).
    pub fn eot_id(&self) -> u32 {
        self.eot
    }

    /// Id of a vocabulary string such as `"cat</w>"`, if present.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.encoder.get(token).copied()
    }

    /// Vocabulary string of an id, if present.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.decoder.get(id as usize).and_then(|s| s.as_deref())
    }

    /// The text as CLIP sees it before pre-tokenisation:
    /// `whitespace_clean(basic_clean(text)).lower()`.
    pub fn clean(&self, text: &str) -> String {
        clean_text(text)
    }

    /// BPE ids of `text`, without SOT and EOT (`SimpleTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = clean_text(text);
        let mut ids = Vec::new();
        for piece in TOKEN_RE.find_iter(&cleaned) {
            self.bpe_into(piece.as_str(), &mut ids);
        }
        ids
    }

    /// The vocabulary strings of [`Tokenizer::encode`]'s ids (byte-level symbols such
    /// as `"photo</w>"`).
    pub fn bpe_tokens(&self, text: &str) -> Vec<String> {
        self.encode(text)
            .into_iter()
            .map(|id| self.id_to_token(id).unwrap_or_default().to_string())
            .collect()
    }

    /// Text of a sequence of ids (`SimpleTokenizer.decode`): the symbols' bytes decoded
    /// as UTF-8 (invalid sequences become U+FFFD) and every `</w>` replaced by a space.
    /// SOT/EOT decode to their literal strings and padding (id 0) to `!`, as in
    /// Python; ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            if let Some(symbol) = self.id_to_token(id) {
                bytes.extend(
                    symbol
                        .chars()
                        .filter_map(|c| self.byte_decoder.get(&c).copied()),
                );
            }
        }
        String::from_utf8_lossy(&bytes).replace("</w>", " ")
    }

    /// One `clip.tokenize` row: `[SOT] + encode(text) + [EOT]`, zero padded to
    /// `context_length`. When that is too long: with `truncate` the first
    /// `context_length` ids are kept and the last is set to EOT, otherwise
    /// [`TokenizerError::TooLong`] (also for `context_length == 0`, where nothing fits).
    pub fn tokenize(
        &self,
        text: &str,
        context_length: usize,
        truncate: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(context_length.max(2));
        ids.push(self.sot);
        ids.extend(self.encode(text));
        ids.push(self.eot);
        if ids.len() > context_length {
            if !truncate || context_length == 0 {
                return Err(TokenizerError::TooLong {
                    text: text.to_string(),
                    len: ids.len(),
                    context_length,
                });
            }
            ids.truncate(context_length);
            ids[context_length - 1] = self.eot;
        }
        ids.resize(context_length, 0);
        Ok(ids)
    }

    /// [`Tokenizer::tokenize`] for several texts: one row each, all of length
    /// `context_length`. Fails on the first text that is too long (without `truncate`).
    pub fn tokenize_batch(
        &self,
        texts: &[&str],
        context_length: usize,
        truncate: bool,
    ) -> Result<Vec<Vec<u32>>, TokenizerError> {
        texts
            .iter()
            .map(|t| self.tokenize(t, context_length, truncate))
            .collect()
    }

    /// Appends the BPE ids of one pre-token.
    fn bpe_into(&self, piece: &str, out: &mut Vec<u32>) {
        // The special strings are pre-seeded in Python's cache.
        if piece == SOT_TEXT {
            out.push(self.sot);
            return;
        }
        if piece == EOT_TEXT {
            out.push(self.eot);
            return;
        }
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(ids) = cache.get(piece) {
                out.extend_from_slice(ids);
                return;
            }
        }
        let ids = self.bpe(piece.as_bytes());
        out.extend_from_slice(&ids);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(piece.to_string(), ids);
    }

    /// `SimpleTokenizer.bpe`: repeatedly merge every occurrence of the lowest-ranked
    /// adjacent pair, left to right, until no pair is a merge.
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let Some((&last, init)) = bytes.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<u32> = init.iter().map(|&b| self.byte_ids[b as usize]).collect();
        word.push(self.byte_end_ids[last as usize]);
        while word.len() > 1 {
            let mut best: Option<(u32, u32, u32, u32)> = None;
            for pair in word.windows(2) {
                if let Some(&(rank, merged)) = self.merges.get(&(pair[0], pair[1])) {
                    if best.is_none_or(|b| rank < b.0) {
                        best = Some((rank, pair[0], pair[1], merged));
                    }
                }
            }
            let Some((_, first, second, merged)) = best else {
                break;
            };
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
        word
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Tokenizer {
    fn clone(&self) -> Self {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Tokenizer {
            byte_encoder: self.byte_encoder,
            byte_decoder: self.byte_decoder.clone(),
            encoder: self.encoder.clone(),
            decoder: self.decoder.clone(),
            byte_ids: self.byte_ids,
            byte_end_ids: self.byte_end_ids,
            merges: self.merges.clone(),
            sot: self.sot,
            eot: self.eot,
            cache: Mutex::new(cache),
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.merges.len())
            .field("sot", &self.sot)
            .field("eot", &self.eot)
            .field("cached_pieces", &cached)
            .finish()
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the others
/// to U+0100 onwards, in byte order.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// The byte order of `bytes_to_unicode().values()`: printable bytes first, then the rest.
fn bytes_to_unicode_order() -> Vec<u8> {
    let printable = |b: u8| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut order: Vec<u8> = (0..=255u8).filter(|&b| printable(b)).collect();
    order.extend((0..=255u8).filter(|&b| !printable(b)));
    order
}

/// Python's `str.isspace`.
fn py_isspace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1C}'..='\u{20}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `whitespace_clean(basic_clean(text)).lower()`.
fn clean_text(text: &str) -> String {
    // basic_clean: ftfy.fix_text, html.unescape twice, strip.
    let fixed = ftfy::fix_text(text);
    let unescaped = html::unescape(&html::unescape(&fixed));
    let basic = unescaped.trim_matches(py_isspace);
    // whitespace_clean: collapse \s+ to one space, strip; then lower().
    let collapsed = WHITESPACE_RE.replace_all(basic, " ");
    collapsed.trim_matches(py_isspace).to_lowercase()
}

/// Python's `html.unescape` (HTML5 named and numeric character references, with the
/// standard's rules for missing semicolons and invalid code points).
mod html {
    use std::collections::HashMap;
    use std::sync::LazyLock;

    use regex::{Captures, Regex};

    /// `html.entities.html5`: entity names (without `&`, with or without `;`) -> text.
    pub(super) static HTML5: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
        entities::ENTITIES
            .iter()
            .map(|e| (e.entity.trim_start_matches('&'), e.characters))
            .collect()
    });

    static CHARREF_RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)")
            .expect("valid charref pattern")
    });

    /// `html._invalid_charrefs`: replacements for some numeric references.
    fn invalid_charref(num: u32) -> Option<char> {
        match num {
            0x00 => Some('\u{FFFD}'),
            0x0D => Some('\r'),
            // Windows-1252 for 0x80..=0x9F, keeping the five undefined bytes.
            0x80..=0x9F => Some(super::ftfy::sloppy_cp1252_char(num as u8)),
            _ => None,
        }
    }

    /// `html._invalid_codepoints`: numeric references that decode to nothing.
    fn invalid_codepoint(num: u32) -> bool {
        matches!(num, 0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF)
            || (num & 0xFFFE == 0xFFFE && num <= 0x10FFFF)
    }

    fn replace_charref(s: &str) -> String {
        if let Some(num_text) = s.strip_prefix('#') {
            let (digits, radix) = match num_text.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (num_text, 10),
            };
            // Saturate: anything above U+10FFFF behaves the same.
            let mut num: u32 = 0;
            for d in digits.trim_end_matches(';').chars() {
                let v = d.to_digit(radix).unwrap_or(0);
                num = num.saturating_mul(radix).saturating_add(v).min(0x11_0000);
            }
            if let Some(c) = invalid_charref(num) {
                return c.to_string();
            }
            if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
                return "\u{FFFD}".to_string();
            }
            if invalid_codepoint(num) {
                return String::new();
            }
            return char::from_u32(num).map(String::from).unwrap_or_default();
        }
        if let Some(text) = HTML5.get(s) {
            return (*text).to_string();
        }
        // The longest prefix (at least two characters) that is an entity name.
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        for x in (2..bounds.len()).rev() {
            let (name, rest) = s.split_at(bounds[x]);
            if let Some(text) = HTML5.get(name) {
                return format!("{text}{rest}");
            }
        }
        format!("&{s}")
    }

    /// Python's `html.unescape(s)`.
    pub(super) fn unescape(s: &str) -> String {
        if !s.contains('&') {
            return s.to_string();
        }
        CHARREF_RE
            .replace_all(s, |caps: &Captures| replace_charref(&caps[1]))
            .into_owned()
    }
}

/// A port of `ftfy.fix_text` from ftfy 6.1.1 with its default `TextFixerConfig`.
mod ftfy {
    use std::collections::HashMap;
    use std::sync::LazyLock;

    use regex::bytes::Regex as BytesRegex;
    use regex::{Captures, Regex};
    use unicode_normalization::UnicodeNormalization;

    /// `config.max_decode_length`.
    const MAX_DECODE_LENGTH: usize = 1_000_000;

    /// `ftfy.fix_text(text)`: fixes each line (segment) separately. As in ftfy, once a
    /// segment contains `<`, HTML unescaping stays off for the rest of the text.
    pub(super) fn fix_text(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut unescape_html = true;
        let mut rest = text;
        while !rest.is_empty() {
            // Up to and including the next '\n', at most MAX_DECODE_LENGTH characters.
            let mut end = rest.len();
            for (count, (i, c)) in rest.char_indices().enumerate() {
                if count == MAX_DECODE_LENGTH {
                    end = i;
                    break;
                }
                if c == '\n' {
                    end = i + 1;
                    break;
                }
            }
            let (segment, tail) = rest.split_at(end);
            if unescape_html && segment.contains('<') {
                unescape_html = false;
            }
            out.push_str(&fix_segment(segment, unescape_html));
            rest = tail;
        }
        out
    }

    /// `ftfy.fix_and_explain`: apply the fixers until nothing changes.
    fn fix_segment(text: &str, unescape: bool) -> String {
        let mut text = text.to_string();
        loop {
            let orig = text.clone();
            if unescape {
                text = unescape_html(&text);
            }
            text = fix_encoding(&text);
            text = fix_c1_controls(&text);
            text = fix_latin_ligatures(&text);
            text = fix_character_width(&text);
            text = uncurl_quotes(&text);
            text = fix_line_breaks(&text);
            // fix_surrogates: a Rust string cannot hold surrogates.
            text = remove_terminal_escapes(&text);
            text = remove_control_chars(&text);
            text = text.nfc().collect();
            if text == orig {
                return text;
            }
        }
    }

    // ----------------------------------------------------------------------------
    // Single-byte codecs (`chardata.CHARMAP_ENCODINGS` and ftfy's sloppy codecs)
    // ----------------------------------------------------------------------------

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Charmap {
        Latin1,
        SloppyWindows1252,
        SloppyWindows1251,
        SloppyWindows1250,
        SloppyWindows1253,
        SloppyWindows1254,
        Iso8859_2,
        MacRoman,
        Cp437,
    }

    /// The order in which ftfy tries the encodings.
    const CHARMAPS: [Charmap; 9] = [
        Charmap::Latin1,
        Charmap::SloppyWindows1252,
        Charmap::SloppyWindows1251,
        Charmap::SloppyWindows1250,
        Charmap::SloppyWindows1253,
        Charmap::SloppyWindows1254,
        Charmap::Iso8859_2,
        Charmap::MacRoman,
        Charmap::Cp437,
    ];

    impl Charmap {
        /// Characters of bytes 0x80..=0xBF and 0xC0..=0xFF.
        fn high_half(self) -> [&'static str; 2] {
            match self {
                Charmap::Latin1 => [LATIN1_HIGH, LATIN1_TOP],
                Charmap::SloppyWindows1252 => [
                    "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}Ž\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}žŸ\u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿",
                    LATIN1_TOP,
                ],
                Charmap::SloppyWindows1251 => [
                    "ЂЃ‚ѓ„…†‡€‰Љ‹ЊЌЋЏђ‘’“”•–—\u{98}™љ›њќћџ\u{a0}ЎўЈ¤Ґ¦§Ё©Є«¬\u{ad}®Ї°±Ііґµ¶·ё№є»јЅѕї",
                    "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдежзийклмнопрстуфхцчшщъыьэюя",
                ],
                Charmap::SloppyWindows1250 => [
                    "€\u{81}‚\u{83}„…†‡\u{88}‰Š‹ŚŤŽŹ\u{90}‘’“”•–—\u{98}™š›śťžź\u{a0}ˇ˘Ł¤Ą¦§¨©Ş«¬\u{ad}®Ż°±˛ł´µ¶·¸ąş»Ľ˝ľż",
                    "ŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢßŕáâăäĺćçčéęëěíîďđńňóôőö÷řůúűüýţ˙",
                ],
                Charmap::SloppyWindows1253 => [
                    "€\u{81}‚ƒ„…†‡\u{88}‰\u{8a}‹\u{8c}\u{8d}\u{8e}\u{8f}\u{90}‘’“”•–—\u{98}™\u{9a}›\u{9c}\u{9d}\u{9e}\u{9f}\u{a0}΅Ά£¤¥¦§¨©ª«¬\u{ad}®―°±²³΄µ¶·ΈΉΊ»Ό½ΎΏ",
                    "ΐΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡÒΣΤΥΦΧΨΩΪΫάέήίΰαβγδεζηθικλμνξοπρςστυφχψωϊϋόύώÿ",
                ],
                Charmap::SloppyWindows1254 => [
                    "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}\u{8e}\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}\u{9e}Ÿ\u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿",
                    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏĞÑÒÓÔÕÖ×ØÙÚÛÜİŞßàáâãäåæçèéêëìíîïğñòóôõö÷øùúûüışÿ",
                ],
                Charmap::Iso8859_2 => [
                    "\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}\u{90}\u{91}\u{92}\u{93}\u{94}\u{95}\u{96}\u{97}\u{98}\u{99}\u{9a}\u{9b}\u{9c}\u{9d}\u{9e}\u{9f}\u{a0}Ą˘Ł¤ĽŚ§¨ŠŞŤŹ\u{ad}ŽŻ°ą˛ł´ľśˇ¸šşťź˝žż",
                    "ŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢßŕáâăäĺćçčéęëěíîďđńňóôőö÷řůúűüýţ˙",
                ],
                Charmap::MacRoman => [
                    "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø",
                    "¿¡¬√ƒ≈∆«»…\u{a0}ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{f8ff}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ",
                ],
                Charmap::Cp437 => [
                    "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐",
                    "└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}",
                ],
            }
        }

        /// The sloppy codecs decode byte 0x1A as U+FFFD (and encode U+FFFD as 0x1A).
        fn is_sloppy(self) -> bool {
            matches!(
                self,
                Charmap::SloppyWindows1252
                    | Charmap::SloppyWindows1251
                    | Charmap::SloppyWindows1250
                    | Charmap::SloppyWindows1253
                    | Charmap::SloppyWindows1254
            )
        }
    }

    const LATIN1_HIGH: &str = "\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}\u{90}\u{91}\u{92}\u{93}\u{94}\u{95}\u{96}\u{97}\u{98}\u{99}\u{9a}\u{9b}\u{9c}\u{9d}\u{9e}\u{9f}\u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿";
    const LATIN1_TOP: &str = "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ";

    struct CharmapTable {
        decode: [char; 256],
        encode: HashMap<char, u8>,
    }

    static TABLES: LazyLock<Vec<CharmapTable>> = LazyLock::new(|| {
        CHARMAPS
            .iter()
            .map(|&cm| {
                let mut decode = ['\0'; 256];
                for (b, slot) in decode.iter_mut().enumerate().take(0x80) {
                    *slot = char::from(b as u8);
                }
                if cm.is_sloppy() {
                    decode[0x1A] = '\u{FFFD}';
                }
                for (i, c) in cm.high_half().concat().chars().enumerate() {
                    decode[0x80 + i] = c;
                }
                let encode = decode
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| (c, b as u8))
                    .collect();
                CharmapTable { decode, encode }
            })
            .collect()
    });

    fn table(cm: Charmap) -> &'static CharmapTable {
        &TABLES[CHARMAPS.iter().position(|&c| c == cm).unwrap_or(0)]
    }

    /// `sloppy-windows-1252` decoding of one byte.
    pub(super) fn sloppy_cp1252_char(b: u8) -> char {
        table(Charmap::SloppyWindows1252).decode[b as usize]
    }

    /// `chardata.possible_encoding`: can `text` be encoded in `cm`?
    fn possible_encoding(text: &str, cm: Charmap) -> bool {
        let t = table(cm);
        text.chars().all(|c| t.encode.contains_key(&c))
    }

    fn encode_charmap(text: &str, cm: Charmap) -> Vec<u8> {
        let t = table(cm);
        text.chars()
            .filter_map(|c| t.encode.get(&c).copied())
            .collect()
    }

    /// Strict `windows-1252` decoding (undefined bytes fail).
    fn decode_windows_1252(bytes: &[u8]) -> Option<String> {
        bytes
            .iter()
            .map(|&b| match b {
                0x81 | 0x8D | 0x8F | 0x90 | 0x9D => None,
                0x00..=0x7F => Some(char::from(b)),
                _ => Some(sloppy_cp1252_char(b)),
            })
            .collect()
    }

    /// ftfy's `utf-8-variants` codec: UTF-8 plus CESU-8 surrogate pairs and Java's
    /// `C0 80` for U+0000. `None` where Python raises `UnicodeDecodeError`.
    fn decode_utf8_variants(b: &[u8]) -> Option<String> {
        let n = b.len();
        // Python's `$`: the end, or just before a final b"\n".
        let at_end = |i: usize| i == n || (i + 1 == n && b[i] == b'\n');
        let mut out = String::with_capacity(n);
        let mut start = 0;
        let mut i = 0;
        while i < n {
            if b[i] == 0xC0 && (at_end(i + 1) || b[i + 1] == 0x80) {
                out.push_str(std::str::from_utf8(&b[start..i]).ok()?);
                if i + 1 >= n {
                    return None;
                }
                out.push('\0');
                i += 2;
                start = i;
            } else if b[i] == 0xED
                && (at_end(i + 1)
                    || ((0xA0..=0xBF).contains(&b[i + 1])
                        && (at_end(i + 2) || (0x80..=0xBF).contains(&b[i + 2]))))
            {
                out.push_str(std::str::from_utf8(&b[start..i]).ok()?);
                let s = &b[i..];
                let cesu = s.len() >= 6
                    && (0xA0..=0xAF).contains(&s[1])
                    && (0x80..=0xBF).contains(&s[2])
                    && s[3] == 0xED
                    && (0xB0..=0xBF).contains(&s[4])
                    && ((0x80..=0xBF).contains(&s[5]) || at_end(i + 5));
                if !cesu {
                    return None;
                }
                let cp = ((u32::from(s[1]) & 0x0F) << 16)
                    + ((u32::from(s[2]) & 0x3F) << 10)
                    + ((u32::from(s[4]) & 0x0F) << 6)
                    + (u32::from(s[5]) & 0x3F)
                    + 0x10000;
                out.push(char::from_u32(cp)?);
                i += 6;
                start = i;
            } else {
                i += 1;
            }
        }
        out.push_str(std::str::from_utf8(&b[start..]).ok()?);
        Some(out)
    }

    // ----------------------------------------------------------------------------
    // The badness heuristic (`ftfy.badness`) and `chardata` expressions
    // ----------------------------------------------------------------------------

    const COMMON: &str = "\u{a0}\u{ad}·´–—―…’";
    const C1: &str = "\u{80}-\u{9f}";
    const BAD: &str = "¦¤¨¬¯¶§¸ƒˆˇ˘˛˜†‡‰⌐◊�ªº";
    const CURRENCY: &str = "¢£¥₧€";
    const START_PUNCTUATION: &str = "¡«¿©΄΅‘‚“„•‹\u{f8ff}";
    const END_PUNCTUATION: &str = "®»˝”›™";
    const NUMERIC: &str = "²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№";
    const KAOMOJI: &str = "Ò-ÖÙ-Üò-öø-üŐ°";
    const UPPER_ACCENTED: &str = "À-ÑØÜÝĂĄĆČĎĐĘĚĞİĹĽŁŃŇŒŘŚŞŠŢŤŮŰŸŹŻŽҐ";
    const LOWER_ACCENTED: &str = "ßà-ñăąćčďđęěğĺľłœŕśşšťüźżžґﬁﬂ";
    const UPPER_COMMON: &str = "ÞΑ-ΩΆΈΉΊΌΎΏΪΫЁ-Я";
    const LOWER_COMMON: &str = "α-ωάέήίΰа-џ";
    const BOX: &str = "│┌┐┘├┤┬┼═-╬▀▄█▌▐░▒▓";

    const UTF8_FIRST_OF_2: &str = "ÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßĂĆČĎĐĘĚĞİĹŃŇŐŘŞŢŮŰΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ";
    const UTF8_FIRST_OF_3: &str = "àáâãäåæçèéêëìíîïăćčďęěĺŕΰαβγδεζηθικλμνξοабвгдежзийклмноп";
    const UTF8_FIRST_OF_4: &str = "ðóđğπσру";
    const UTF8_CONTINUATION: &str = "\u{80}-¿ĄąĽľŁłŒœŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ–—―‘’‚“”„†‡•…‰‹›€№™ ";
    const UTF8_CONTINUATION_STRICT: &str =
        "\u{80}-¿ĄąĽľŁłŒœŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ†‡•‰‹›€№™";

    /// Python's `\s` for `str` patterns.
    const PY_SPACE_CLASS: &str = r"[\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]";
    /// Python's `\w` for `str` patterns (alphanumeric or `_`).
    const PY_WORD_CLASS: &str = r"[\p{L}\p{N}_]";

    /// Escapes a Python character-class body (characters and `a-b` ranges) for Rust.
    fn class_body(python: &str) -> String {
        let chars: Vec<char> = python.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            if i + 2 < chars.len() && chars[i + 1] == '-' {
                out.push_str(&format!(
                    "\\x{{{:X}}}-\\x{{{:X}}}",
                    chars[i] as u32,
                    chars[i + 2] as u32
                ));
                i += 3;
            } else {
                out.push_str(&format!("\\x{{{:X}}}", chars[i] as u32));
                i += 1;
            }
        }
        out
    }

    /// Fills `{name}` placeholders with escaped class bodies and `\s`/`\w` with
    /// Python's classes.
    fn expand(template: &str, names: &[(&str, &str)]) -> String {
        let mut out = template
            .replace(r"\s", PY_SPACE_CLASS)
            .replace(r"\w", PY_WORD_CLASS);
        for (name, body) in names {
            out = out.replace(&format!("{{{name}}}"), &class_body(body));
        }
        out
    }

    /// `badness.BADNESS_RE` (the verbose pattern with its whitespace and comments removed).
    static BADNESS_RE: LazyLock<Regex> = LazyLock::new(|| {
        let alternatives = [
            "[{c1}]",
            "[{bad}{lower_accented}{upper_accented}{box}{start_punctuation}{end_punctuation}{currency}{numeric}][{bad}]",
            "[a-zA-Z][{lower_common}{upper_common}][{bad}]",
            "[{bad}][{lower_accented}{upper_accented}{box}{start_punctuation}{end_punctuation}{currency}{numeric}]",
            "[{lower_accented}{lower_common}{box}{end_punctuation}{currency}{numeric}][{upper_accented}]",
            "[{box}{end_punctuation}{currency}{numeric}][{lower_accented}]",
            "[{lower_accented}{box}{end_punctuation}][{currency}]",
            r"\s[{upper_accented}][{currency}]",
            "[{upper_accented}{box}][{numeric}]",
            "[{lower_accented}{upper_accented}{box}{currency}{end_punctuation}][{start_punctuation}][{numeric}]",
            "[{lower_accented}{upper_accented}{currency}{numeric}{box}][{end_punctuation}][{start_punctuation}]",
            "[{currency}{numeric}{box}][{start_punctuation}]",
            "[a-z][{upper_accented}][{start_punctuation}{currency}]",
            "[{box}][{kaomoji}]",
            "[{lower_accented}{upper_accented}{currency}{numeric}{start_punctuation}{end_punctuation}][{box}]",
            "[{box}][{end_punctuation}]",
            r"[{lower_accented}{upper_accented}][{end_punctuation}]\w",
            // The ligature œ when not followed by an unaccented Latin letter.
            "[Œœ][^A-Za-z]",
            // Common Windows-1252 2-character mojibake.
            r"[ÂÃÎÐ][€Šš¢£Ÿž\xa0\xad®©°·»{start_punctuation}{end_punctuation}–—´]",
            "×[²³]",
            // Windows-1252 mojibake of Arabic words.
            "[ØÙ][{common}{currency}{bad}{numeric}{start_punctuation}ŸŠ®°µ»][ØÙ][{common}{currency}{bad}{numeric}{start_punctuation}ŸŠ®°µ»]",
            // Windows-1252 mojibake starting 3-character South Asian sequences.
            "à[²µ¹¼½¾]",
            // MacRoman mojibake.
            "√[±∂†≠®™´≤≥¥µø]",
            "≈[°¢]",
            "‚Ä[ìîïòôúùû†°¢π]",
            "‚[âó][àä°ê]",
            // Windows-1251 mojibake of characters in the U+2000 range.
            "вЂ",
            // Windows-1251 mojibake of Latin-1 characters and/or Cyrillic.
            "[ВГРС][{c1}{bad}{start_punctuation}{end_punctuation}{currency}°µ][ВГРС]",
            "ГўВЂВ.[A-Za-z ]",
            // Windows-1252 encodings of 'à' and 'á', and of \xa0 itself.
            r"Ã[\xa0¡]",
            r"[a-z]\s?[ÃÂ][ ]",
            "^[ÃÂ][ ]",
            // Â preceding a character as an encoding of the same character.
            "[a-z.,?!{end_punctuation}]Â[ {start_punctuation}{end_punctuation}]",
            // Windows-1253 mojibake of characters in the U+2000 range.
            r"β€[™\xa0Ά\xad®°]",
            // Windows-1253 mojibake of Latin-1 characters and/or Greek.
            "[ΒΓΞΟ][{c1}{bad}{start_punctuation}{end_punctuation}{currency}°][ΒΓΞΟ]",
        ];
        let names = [
            ("common", COMMON),
            ("c1", C1),
            ("bad", BAD),
            ("currency", CURRENCY),
            ("start_punctuation", START_PUNCTUATION),
            ("end_punctuation", END_PUNCTUATION),
            ("numeric", NUMERIC),
            ("kaomoji", KAOMOJI),
            ("upper_accented", UPPER_ACCENTED),
            ("lower_accented", LOWER_ACCENTED),
            ("upper_common", UPPER_COMMON),
            ("lower_common", LOWER_COMMON),
            ("box", BOX),
        ];
        Regex::new(&expand(&alternatives.join("|"), &names)).expect("valid badness pattern")
    });

    /// `badness.is_bad`: does the text look like it contains mojibake?
    fn is_bad(text: &str) -> bool {
        BADNESS_RE.is_match(text)
    }

    /// `chardata.UTF8_DETECTOR_RE` without its look-behind, which
    /// [`decode_inconsistent_utf8`] checks by hand.
    static UTF8_DETECTOR_RE: LazyLock<Regex> = LazyLock::new(|| {
        let template = "(?:[{f2}][{cont}]|[{f3}][{cont}]{2}|[{f4}][{cont}]{3})+";
        let names = [
            ("f2", UTF8_FIRST_OF_2),
            ("f3", UTF8_FIRST_OF_3),
            ("f4", UTF8_FIRST_OF_4),
            ("cont", UTF8_CONTINUATION),
        ];
        Regex::new(&expand(template, &names)).expect("valid UTF-8 detector pattern")
    });

    /// The look-behind class of `UTF8_DETECTOR_RE`.
    static UTF8_CONTINUATION_STRICT_RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!("^[{}]$", class_body(UTF8_CONTINUATION_STRICT))).expect("valid class")
    });

    /// `UTF8_DETECTOR_RE.sub(f, text)`, with the `(?<![strict])` look-behind.
    fn sub_utf8_detector(text: &str, mut f: impl FnMut(&str) -> String) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut pos = 0;
        while let Some(m) = UTF8_DETECTOR_RE.find_at(text, pos) {
            let start = m.start();
            let blocked = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| UTF8_CONTINUATION_STRICT_RE.is_match(c.encode_utf8(&mut [0; 4])));
            if blocked {
                // The look-behind fails here: try the next start position.
                pos = start + text[start..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            out.push_str(&text[last..start]);
            out.push_str(&f(m.as_str()));
            last = m.end();
            pos = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn has_utf8_detector_match(text: &str) -> bool {
        let mut found = false;
        sub_utf8_detector(text, |m| {
            found = true;
            m.to_string()
        });
        found
    }

    /// `chardata.ALTERED_UTF8_RE`.
    static ALTERED_UTF8_RE: LazyLock<BytesRegex> = LazyLock::new(|| {
        BytesRegex::new(concat!(
            r"(?-u)[\xc2\xc3\xc5\xce\xd0\xd9][ ]",
            r"|[\xe2\xe3][ ][\x80-\x84\x86-\x9f\xa1-\xbf]",
            r"|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf][ ]",
            r"|[\xf0][ ][\x80-\xbf][\x80-\xbf]",
            r"|[\xf0][\x80-\xbf][ ][\x80-\xbf]",
            r"|[\xf0][\x80-\xbf][\x80-\xbf][ ]",
        ))
        .expect("valid altered UTF-8 pattern")
    });

    /// `chardata.LOSSY_UTF8_RE`.
    static LOSSY_UTF8_RE: LazyLock<BytesRegex> = LazyLock::new(|| {
        BytesRegex::new(concat!(
            r"(?-u)[\xc2-\xdf][\x1a]",
            r"|[\xc2-\xc3][?]",
            r"|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]",
            r"|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]",
            r"|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]",
            r"|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]",
            r"|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]",
            r"|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]",
            r"|[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]",
            r"|\x1a",
        ))
        .expect("valid lossy UTF-8 pattern")
    });

    /// `fixes.restore_byte_a0`: put back 0xA0 bytes that became spaces.
    fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
        // A_GRAVE_WORD_RE = b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "
        let mut out = Vec::with_capacity(bytes.len() + 8);
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == 0xC3 && bytes.get(i + 1) == Some(&b' ') {
                let rest = &bytes[i + 2..];
                let excluded = [&b" "[..], b"quele", b"quela", b"quilo", b"s "]
                    .iter()
                    .any(|p| rest.starts_with(p));
                if !excluded {
                    out.extend_from_slice(b"\xc3\xa0 ");
                    i += 2;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        ALTERED_UTF8_RE
            .replace_all(&out, |caps: &regex::bytes::Captures| {
                caps[0]
                    .iter()
                    .map(|&b| if b == b' ' { 0xA0 } else { b })
                    .collect::<Vec<u8>>()
            })
            .into_owned()
    }

    /// `fixes.replace_lossy_sequences`.
    fn replace_lossy_sequences(bytes: &[u8]) -> Vec<u8> {
        LOSSY_UTF8_RE
            .replace_all(bytes, &b"\xef\xbf\xbd"[..])
            .into_owned()
    }

    /// `fixes.decode_inconsistent_utf8`: fix UTF-8 mojibake embedded in other text.
    fn decode_inconsistent_utf8(text: &str) -> String {
        let text_len = text.chars().count();
        sub_utf8_detector(text, |m| {
            if m.chars().count() < text_len && is_bad(m) {
                fix_encoding(m)
            } else {
                m.to_string()
            }
        })
    }

    /// `ftfy.fix_encoding` (default configuration).
    fn fix_encoding(text: &str) -> String {
        let mut text = text.to_string();
        loop {
            let next = fix_encoding_one_step(&text);
            if next == text {
                return text;
            }
            text = next;
        }
    }

    /// `ftfy._fix_encoding_one_step_and_explain`.
    fn fix_encoding_one_step(text: &str) -> String {
        if text.is_empty() || text.is_ascii() || !is_bad(text) {
            return text.to_string();
        }
        let mut latin1_possible = false;
        for cm in CHARMAPS {
            if !possible_encoding(text, cm) {
                continue;
            }
            latin1_possible |= cm == Charmap::Latin1;
            let mut bytes = encode_charmap(text, cm);
            if ALTERED_UTF8_RE.is_match(&bytes) {
                bytes = restore_byte_a0(&bytes);
            }
            if cm.is_sloppy() {
                bytes = replace_lossy_sequences(&bytes);
            }
            let decoded = if bytes.contains(&0xED) || bytes.contains(&0xC0) {
                decode_utf8_variants(&bytes)
            } else {
                String::from_utf8(bytes).ok()
            };
            if let Some(fixed) = decoded {
                return fixed;
            }
        }
        if has_utf8_detector_match(text) {
            let fixed = decode_inconsistent_utf8(text);
            if fixed != text {
                return fixed;
            }
        }
        // "windows-1252" itself is never in ftfy's list of possible encodings, so
        // Latin-1 text is always re-read as (strict) Windows-1252 here.
        if latin1_possible {
            if let Some(fixed) = decode_windows_1252(&encode_charmap(text, Charmap::Latin1)) {
                if fixed != text {
                    return fixed;
                }
            }
        }
        if text.chars().any(is_c1) {
            return fix_c1_controls(text);
        }
        text.to_string()
    }

    fn is_c1(c: char) -> bool {
        ('\u{80}'..='\u{9f}').contains(&c)
    }

    // ----------------------------------------------------------------------------
    // The other fixers (`ftfy.fixes`)
    // ----------------------------------------------------------------------------

    static HTML_ENTITY_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("valid entity pattern"));

    /// `chardata.HTML_ENTITIES`: HTML5 entities with semicolons, plus upper-case
    /// versions of lower-case names that are not entities themselves.
    static HTML_ENTITIES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        let mut map = HashMap::new();
        for (name, text) in super::html::HTML5.iter() {
            if !name.ends_with(';') {
                continue;
            }
            map.insert(format!("&{name}"), (*text).to_string());
            if *name == name.to_lowercase() {
                let upper = format!("&{}", name.to_uppercase());
                if super::html::unescape(&upper) == upper {
                    map.insert(upper, text.to_uppercase());
                }
            }
        }
        map
    });

    /// `fixes.unescape_html`.
    fn unescape_html(text: &str) -> String {
        if !text.contains('&') {
            return text.to_string();
        }
        HTML_ENTITY_RE
            .replace_all(text, |caps: &Captures| {
                let entity = &caps[0];
                if let Some(t) = HTML_ENTITIES.get(entity) {
                    t.clone()
                } else if entity.starts_with("&#") {
                    let unescaped = super::html::unescape(entity);
                    if unescaped.contains(';') {
                        entity.to_string()
                    } else {
                        unescaped
                    }
                } else {
                    entity.to_string()
                }
            })
            .into_owned()
    }

    /// `fixes.fix_c1_controls`: C1 controls read as Windows-1252.
    fn fix_c1_controls(text: &str) -> String {
        text.chars()
            .map(|c| {
                if is_c1(c) {
                    sloppy_cp1252_char(c as u8)
                } else {
                    c
                }
            })
            .collect()
    }

    /// `fixes.fix_latin_ligatures`.
    fn fix_latin_ligatures(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                'Ĳ' => out.push_str("IJ"),
                'ĳ' => out.push_str("ij"),
                'ŉ' => out.push_str("ʼn"),
                'Ǳ' => out.push_str("DZ"),
                'ǲ' => out.push_str("Dz"),
                'ǳ' => out.push_str("dz"),
                'Ǆ' => out.push_str("DŽ"),
                'ǅ' => out.push_str("Dž"),
                'ǆ' => out.push_str("dž"),
                'Ǉ' => out.push_str("LJ"),
                'ǈ' => out.push_str("Lj"),
                'ǉ' => out.push_str("lj"),
                'Ǌ' => out.push_str("NJ"),
                'ǋ' => out.push_str("Nj"),
                'ǌ' => out.push_str("nj"),
                'ﬀ' => out.push_str("ff"),
                'ﬁ' => out.push_str("fi"),
                'ﬂ' => out.push_str("fl"),
                'ﬃ' => out.push_str("ffi"),
                'ﬄ' => out.push_str("ffl"),
                'ﬅ' => out.push_str("ſt"),
                'ﬆ' => out.push_str("st"),
                _ => out.push(c),
            }
        }
        out
    }

    /// `chardata.WIDTH_MAP`: U+3000 and the NFKC forms of U+FF01..U+FFEF.
    static WIDTH_MAP: LazyLock<HashMap<char, String>> = LazyLock::new(|| {
        let mut map = HashMap::new();
        map.insert('\u{3000}', " ".to_string());
        for cp in 0xFF01..0xFFF0u32 {
            if let Some(c) = char::from_u32(cp) {
                let alt: String = std::iter::once(c).nfkc().collect();
                if alt.chars().ne(std::iter::once(c)) {
                    map.insert(c, alt);
                }
            }
        }
        map
    });

    /// `fixes.fix_character_width`.
    fn fix_character_width(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match WIDTH_MAP.get(&c) {
                Some(s) => out.push_str(s),
                None => out.push(c),
            }
        }
        out
    }

    /// `fixes.uncurl_quotes`.
    fn uncurl_quotes(text: &str) -> String {
        text.chars()
            .map(|c| match c {
                '\u{201c}'..='\u{201f}' => '"',
                '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
                _ => c,
            })
            .collect()
    }

    /// `fixes.fix_line_breaks`.
    fn fix_line_breaks(text: &str) -> String {
        text.replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
    }

    static ANSI_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").expect("valid ANSI pattern"));

    /// `fixes.remove_terminal_escapes`.
    fn remove_terminal_escapes(text: &str) -> String {
        if !text.contains('\u{1b}') {
            return text.to_string();
        }
        ANSI_RE.replace_all(text, "").into_owned()
    }

    /// `fixes.remove_control_chars`.
    fn remove_control_chars(text: &str) -> String {
        text.chars()
            .filter(|c| {
                !matches!(
                    c,
                    '\u{0}'..='\u{8}'
                        | '\u{B}'
                        | '\u{E}'..='\u{1F}'
                        | '\u{7F}'
                        | '\u{206A}'..='\u{206F}'
                        | '\u{FEFF}'
                        | '\u{FFF9}'..='\u{FFFC}'
                )
            })
            .collect()
    }

    #[cfg(test)]
    pub(super) mod testing {
        /// Exposes `ftfy.fix_text` to the tests.
        pub fn fix_text(text: &str) -> String {
            super::fix_text(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `tests/fixtures/maple-tiny/tokenizer.json`; `CLIP_TOKENIZER_FIXTURE` overrides it.
    fn fixture_path() -> PathBuf {
        if let Ok(p) = std::env::var("CLIP_TOKENIZER_FIXTURE") {
            return PathBuf::from(p);
        }
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/maple-tiny/tokenizer.json")
    }

    fn fixture() -> serde_json::Value {
        let path = fixture_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    fn ids(v: &serde_json::Value) -> Vec<u32> {
        v.as_array()
            .expect("array of ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    }

    fn tokenizer() -> &'static Tokenizer {
        static TOK: LazyLock<Tokenizer> = LazyLock::new(Tokenizer::new);
        &TOK
    }

    #[test]
    fn vocabulary_shape() {
        let tok = tokenizer();
        let fx = fixture();
        assert_eq!(tok.vocab_size(), 49408);
        assert_eq!(tok.vocab_size() as u64, fx["vocab_size"].as_u64().unwrap());
        assert_eq!(tok.sot_id(), SOT);
        assert_eq!(tok.eot_id(), EOT);
        assert_eq!(SOT as u64, fx["sot"].as_u64().unwrap());
        assert_eq!(EOT as u64, fx["eot"].as_u64().unwrap());
        assert_eq!(
            CONTEXT_LENGTH as u64,
            fx["context_length"].as_u64().unwrap()
        );
        assert_eq!(tok.id_to_token(SOT), Some("<|startoftext|>"));
        assert_eq!(tok.token_to_id("<|endoftext|>"), Some(EOT));
        assert_eq!(tok.id_to_token(0), Some("!"));
        assert_eq!(tok.id_to_token(256), Some("!</w>"));
        assert_eq!(tok.merges.len(), NUM_MERGES);
    }

    #[test]
    fn fixture_entries() {
        let tok = tokenizer();
        let fx = fixture();
        let entries = fx["entries"].as_array().expect("entries");
        assert!(entries.len() >= 80, "fixture has {} entries", entries.len());
        for e in entries {
            let text = e["text"].as_str().unwrap();
            assert_eq!(
                tok.clean(text),
                e["cleaned"].as_str().unwrap(),
                "clean({text:?})"
            );
            let enc = tok.encode(text);
            assert_eq!(enc, ids(&e["encode"]), "encode({text:?})");
            assert_eq!(
                enc.len() as u64,
                e["n_tokens"].as_u64().unwrap(),
                "n_tokens({text:?})"
            );
            let bpe: Vec<String> = e["bpe_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            assert_eq!(tok.bpe_tokens(text), bpe, "bpe_tokens({text:?})");
            match (&e["tokenize"], tok.tokenize(text, CONTEXT_LENGTH, false)) {
                (serde_json::Value::Null, Err(err)) => {
                    assert!(matches!(err, TokenizerError::TooLong { .. }));
                    let expected = e["tokenize_error"].as_str().unwrap();
                    assert_eq!(
                        format!("RuntimeError: {err}"),
                        expected,
                        "error for {text:?}"
                    );
                }
                (serde_json::Value::Null, Ok(_)) => panic!("tokenize({text:?}) should fail"),
                (row, Ok(got)) => assert_eq!(got, ids(row), "tokenize({text:?})"),
                (_, Err(err)) => panic!("tokenize({text:?}) failed: {err}"),
            }
            let trunc = tok
                .tokenize(text, CONTEXT_LENGTH, true)
                .expect("truncate never fails");
            assert_eq!(
                trunc,
                ids(&e["tokenize_truncate"]),
                "tokenize_truncate({text:?})"
            );
        }
    }

    #[test]
    fn fixture_batch() {
        let tok = tokenizer();
        let fx = fixture();
        let batch = &fx["batch_example"];
        let texts: Vec<&str> = batch["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let expected: Vec<Vec<u32>> = batch["tokenize"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        assert_eq!(
            tok.tokenize_batch(&texts, CONTEXT_LENGTH, false).unwrap(),
            expected
        );
        assert_eq!(
            tok.tokenize_batch(&texts, CONTEXT_LENGTH, true).unwrap(),
            expected
        );
        assert!(tok
            .tokenize_batch(&[], CONTEXT_LENGTH, false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn too_long_and_odd_context_lengths() {
        let tok = tokenizer();
        // "a photo of a cat." = 6 ids + SOT + EOT.
        let row = tok.tokenize("a photo of a cat.", 8, false).unwrap();
        assert_eq!(row, vec![SOT, 320, 1125, 539, 320, 2368, 269, EOT]);
        let err = tok.tokenize("a photo of a cat.", 7, false).unwrap_err();
        match &err {
            TokenizerError::TooLong {
                text,
                len,
                context_length,
            } => {
                assert_eq!(
                    (text.as_str(), *len, *context_length),
                    ("a photo of a cat.", 8, 7)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "Input a photo of a cat. is too long for context length 7"
        );
        assert_eq!(
            tok.tokenize("a photo of a cat.", 3, true).unwrap(),
            vec![SOT, 320, EOT]
        );
        assert_eq!(
            tok.tokenize("a photo of a cat.", 1, true).unwrap(),
            vec![EOT]
        );
        assert!(tok.tokenize("", 0, true).is_err());
        assert!(tok.tokenize("", 0, false).is_err());
        assert_eq!(tok.tokenize("", 2, false).unwrap(), vec![SOT, EOT]);
        let batch = tok.tokenize_batch(&["cat", "a photo of a cat."], 5, false);
        assert!(matches!(batch, Err(TokenizerError::TooLong { len: 8, .. })));
    }

    /// `decode(encode(t))` is the cleaned text's pre-tokens, each followed by a space.
    #[test]
    fn decode_round_trip() {
        let tok = tokenizer();
        let fx = fixture();
        let mut texts: Vec<String> = fx["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect();
        texts.extend(
            [
                "Ünïcödé façade — 東京タワー 🐈‍⬛",
                "x\u{0}y\u{7f}z",
                "mixed 12ab34 ,.;",
                "pneumonoultramicroscopic",
            ]
            .map(String::from),
        );
        for text in &texts {
            let cleaned = tok.clean(text);
            let mut expected = String::new();
            for piece in TOKEN_RE.find_iter(&cleaned) {
                expected.push_str(piece.as_str());
                if piece.as_str() != SOT_TEXT && piece.as_str() != EOT_TEXT {
                    expected.push(' ');
                }
            }
            let ids = tok.encode(text);
            assert_eq!(tok.decode(&ids), expected, "round trip of {text:?}");
            // Decoding the ids of a decoded text gives the same ids back.
            assert_eq!(tok.encode(&tok.decode(&ids)), ids, "re-encode of {text:?}");
        }
        assert_eq!(
            tok.decode(&[SOT, 320, 2368, EOT]),
            "<|startoftext|>a cat <|endoftext|>"
        );
        assert_eq!(tok.decode(&[u32::MAX, 320]), "a ");
        // A lone byte of a multi-byte character decodes to U+FFFD.
        let e_acute = tok.encode("é");
        assert_eq!(tok.decode(&e_acute), "é ");
        let lead = tok.token_to_id("Ã").unwrap();
        assert_eq!(tok.decode(&[lead]), "\u{FFFD}");
    }

    /// Cleaning cases computed with ftfy 6.1.1 and Python 3.11
    /// (`whitespace_clean(basic_clean(text)).lower()`).
    #[test]
    fn ftfy_cases() {
        let tok = tokenizer();
        let cases: &[(&str, &str)] = &[
            ("âœ” No problems", "✔ no problems"),
            ("&macr;\\_(ã\u{83}\u{84})_/&macr;", "¯\\_(ツ)_/¯"),
            (
                "Broken text&hellip; it&#x2019;s ﬂubberiﬁc!",
                "broken text… it's flubberific!",
            ),
            ("ＬＯＵＤ\u{3000}ＮＯＩＳＥＳ", "loud noises"),
            ("schÃ¶n", "schön"),
            ("voilÃ le travail", "voilà le travail"),
            ("P&EACUTE;REZ", "pérez"),
            ("BUNDESSTRA&SZLIG;E", "bundesstrasse"),
            ("&ntilde; &Ntilde; &NTILDE; &nTILDE;", "ñ ñ ñ &ntilde;"),
            ("&Jscr;ohn &HilbertSpace;ancock", "𝒥ohn ℋancock"),
            ("lâ\u{80}\u{99}Ã©tÃ©", "l'été"),
            ("â€œ like this â€\u{9d}", "\" like this \""),
            ("â€œmismatched quotesâ€�", "\"mismatched quotes�"),
            ("\u{1b}[36;44mI'm blue\u{1b}[0m", "i'm blue"),
            ("a\u{2028}b\u{d}\u{a}c\u{85}d", "a b c…d"),
            ("zero\u{feff}bom\u{200b}", "zerobom\u{200b}"),
            ("café\u{301}", "café\u{301}"),
            ("cafe\u{301}", "café"),
            ("\u{80}euro \u{99}", "€euro ™"),
            ("&amp;lt;b&amp;gt;", "<b>"),
            ("&lt;tag&gt; &amp;", "<tag> &"),
            ("<p>&eacute;</p>", "<p>é</p>"),
            (
                "5 &lt 6 &copy 2020 &notit; &#65 &#x1F600; &#128512;",
                "5 < 6 © 2020 ¬it; a 😀 😀",
            ),
            (
                "&#0; &#13; &#x80; &#1; &#xD800; &#99999999; &#xFFFF;",
                "� € � �",
            ),
            ("Ã la mode", "à la mode"),
            ("ÃƒÂ©", "é"),
            ("Ð¿Ñ€Ð¸Ð²ÐµÑ‚", "привет"),
            ("ã“ã‚“ã«ã¡ã¯", "ã\"ã'\"ã«ã¡ã¯"),
            ("Ã\u{80}\u{a0}", "à"),
            ("Ã©À\u{80}x é¦", "éà€x é¦"),
            ("ΑΒΓΔ Ǆ ǅ ĳ", "αβγδ dž dž ij"),
            ("ÅÄÖ åäö", "åäö åäö"),
            ("twoâ€“lines\u{a}second Ã©\u{a}", "two–lines second é"),
            ("Ã\u{a0} quelle", "à quelle"),
            ("fÃ cil", "fà cil"),
            ("Ã s vezes", "às vezes"),
            ("ÃƒÆ’Ã‚Â©", "é"),
            ("ðŸ˜€ emoji", "😀 emoji"),
            ("Ã¢â‚¬Å“quotedÃ¢â‚¬\u{9d}", "\"quoted\""),
            ("Ã©À\u{a}", "é"),
            ("â€¦ the end", "… the end"),
            (
                "The Mona Lisa doesnâ€™t have eyebrows.",
                "the mona lisa doesn't have eyebrows.",
            ),
            ("í\u{a0}½í¸\u{8d}", "😍"),
            ("Ãí\u{a0}½í¸\u{8d}", "ã😍"),
            ("piñata Ã±", "piñata ñ"),
            ("ΜΑΪΟΣ ς Σ ΣΑΣ", "μαϊος ς σ σας"),
            ("İstanbul", "i\u{307}stanbul"),
            ("ǅemal", "džemal"),
            ("Ꮚ", "ꮚ"),
            ("x\u{1c}y\u{1f}", "xy"),
            ("&#x85; &#133;", "… …"),
            ("&NotNestedGreaterGreater;", "⪢\u{338}"),
        ];
        for (text, expected) in cases {
            assert_eq!(
                &tok.clean(text),
                expected,
                "clean({text:?}), fix_text gave {:?}",
                ftfy::testing::fix_text(text)
            );
        }
    }

    #[test]
    fn invalid_vocab_and_traits() {
        assert!(matches!(
            Tokenizer::from_gz_bytes(b"not gzip"),
            Err(TokenizerError::Vocab(_))
        ));
        fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_send_sync::<Tokenizer>();
        let tok = tokenizer().clone();
        assert_eq!(tok.encode("golden retriever"), vec![3878, 28394]);
        assert!(format!("{tok:?}").contains("49408"));
    }

    #[test]
    fn small_custom_vocab() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all("#version: test\nc a\nca t</w>\n".as_bytes())
            .unwrap();
        let tok = Tokenizer::from_gz_bytes(&gz.finish().unwrap()).unwrap();
        // As in Python, the empty line after the final newline is a (useless) merge
        // whose empty string still takes an id: 512 + 3 + 2 ids.
        assert_eq!(tok.vocab_size(), 517);
        assert_eq!(tok.sot_id(), 515);
        assert_eq!(tok.eot_id(), 516);
        assert_eq!(tok.bpe_tokens("cat cap"), vec!["cat</w>", "ca", "p</w>"]);
        assert_eq!(
            tok.tokenize("cat", 4, false).unwrap(),
            vec![515, 513, 516, 0]
        );
    }
}
