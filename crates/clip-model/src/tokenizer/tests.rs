//! Tokenizer tests: the reference fixture, ftfy and `html.unescape` cases.

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
