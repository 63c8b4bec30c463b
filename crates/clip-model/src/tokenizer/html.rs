//! Python's `html.unescape` (HTML5 named and numeric character references, with the
//! standard's rules for missing semicolons and invalid code points), as CLIP's cleaning
//! applies it twice after ftfy.
//!
//! Hand-written because the HTML crates decode entities by the HTML5 tokenizer's rules,
//! which differ from Python's `html.unescape` on missing semicolons, longest-prefix matches
//! and invalid code points; tokens must equal the reference's exactly.

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
        0x80..=0x9F => Some(super::charmap::sloppy_cp1252_char(num as u8)),
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
