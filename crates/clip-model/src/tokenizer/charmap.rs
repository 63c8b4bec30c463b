//! The single-byte codecs ftfy tries when repairing mojibake (`chardata.CHARMAP_ENCODINGS`
//! and ftfy's "sloppy" Windows codecs), as byte <-> char tables. Shared by the ftfy port
//! ([`super::ftfy`]) and HTML unescaping ([`super::html`], which maps the C1 numeric
//! references through Windows-1252), so neither imports the other.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A single-byte codec.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Charmap {
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
pub(super) const CHARMAPS: [Charmap; 9] = [
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
    pub(super) fn is_sloppy(self) -> bool {
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

/// A codec's byte -> char table and its inverse.
pub(super) struct CharmapTable {
    /// The character of each byte.
    pub(super) decode: [char; 256],
    /// The byte of each character the codec can encode.
    pub(super) encode: HashMap<char, u8>,
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

/// The table of `cm`.
pub(super) fn table(cm: Charmap) -> &'static CharmapTable {
    &TABLES[CHARMAPS.iter().position(|&c| c == cm).unwrap_or(0)]
}

/// `sloppy-windows-1252` decoding of one byte.
pub(super) fn sloppy_cp1252_char(b: u8) -> char {
    table(Charmap::SloppyWindows1252).decode[b as usize]
}
