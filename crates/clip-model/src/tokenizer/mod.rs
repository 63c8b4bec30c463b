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
//!
//! **Why hand-written.** Ids must equal the reference's exactly. The `tokenizers` crate's
//! CLIP pre-tokenizer skips `ftfy` and Python's `html.unescape`, which change real class
//! names and prompts, and no crate ports ftfy. This module holds the byte-level BPE and
//! the public API; `ftfy` and `html` hold the two cleaning ports.

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
static EMBEDDED_VOCAB_GZ: &[u8] = include_bytes!("../../bpe_simple_vocab_16e6.txt.gz");

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

mod charmap;
mod ftfy;
mod html;
#[cfg(test)]
mod tests;
