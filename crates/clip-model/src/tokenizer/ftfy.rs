//! A port of `ftfy.fix_text` from ftfy 6.1.1 with its default `TextFixerConfig`.
//!
//! Hand-written because no Rust crate implements ftfy: its mojibake repair depends on
//! Python's single-byte codecs, ftfy's "badness" heuristic and its exact order of fixes,
//! and CLIP's tokens change when any of them differs.

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

use super::charmap::{sloppy_cp1252_char, table, Charmap, CHARMAPS};

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
