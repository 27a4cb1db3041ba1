//! The prompt's language (ISO 639-1), from its script and, for Latin text, its commonest words.
//! Enough to tell policies "this is Japanese" or "this is Spanish"; unsure means `None`.

/// Latin-script languages told apart by their function words.
#[rustfmt::skip]
const STOPWORDS: &[(&str, &[&str])] = &[
    ("en", &["the", "and", "is", "of", "to", "what", "how", "with", "this", "that", "for", "you", "are", "can", "in", "a", "i", "my",
             "me", "it", "be", "on", "at", "your", "do", "does", "why", "who", "when", "where", "write", "give", "make", "please",
             "about", "from", "if", "than", "between", "each", "an", "should", "would", "there", "which", "have", "has"]),
    ("es", &["el", "la", "los", "las", "de", "que", "y", "es", "en", "un", "una", "por", "para", "cómo", "qué", "con", "del",
             "pero", "muy", "más", "cuando", "como", "su", "al", "lo", "se", "mi", "tu", "si", "está", "puedo"]),
    ("fr", &["le", "la", "les", "de", "des", "et", "est", "un", "une", "pour", "que", "qui", "dans", "avec", "du", "je", "vous",
             "quand", "vers", "sont", "mais", "où", "ou", "ne", "pas", "au", "aux", "ça", "sur", "ce", "il", "elle"]),
    ("de", &["der", "die", "das", "und", "ist", "ein", "eine", "nicht", "mit", "für", "ich", "wie", "den", "zu", "von", "sie",
             "auf", "dem", "im", "es", "auch", "aus", "bitte", "dieser", "diese", "einen", "oder", "mir", "mein", "meine"]),
    ("pt", &["o", "a", "os", "as", "de", "que", "e", "é", "um", "uma", "para", "com", "não", "do", "da", "em", "você",
             "mas", "ao", "se", "na", "no", "por", "mais", "isso", "eu", "meu", "minha"]),
    ("it", &["il", "lo", "la", "gli", "le", "di", "che", "e", "è", "un", "una", "per", "con", "non", "del", "della", "sono",
             "ma", "nel", "alla", "dei", "come", "più", "anche", "poi", "al", "mi", "questo"]),
    ("nl", &["de", "het", "een", "en", "is", "van", "dat", "niet", "ik", "je", "met", "voor", "op", "zijn", "wat"]),
];

/// Letters (almost) only one of the Latin-script languages uses: a tie-breaker.
const MARKS: &[(&str, &str)] = &[("es", "ñ¿¡"), ("fr", "çèêëàâîôûœ"), ("de", "äöüß"), ("pt", "ãõ"), ("it", "ìò")];

/// Detect the language of `text` (reads at most its first 800 bytes).
pub fn detect(text: &str) -> Option<&'static str> {
    let mut end = text.len().min(800);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let (mut latin, mut han, mut kana, mut hangul, mut cyrillic, mut arabic, mut devanagari, mut greek) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    for c in text.chars() {
        match c as u32 {
            0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F => latin += 1,
            0x3040..=0x30FF => kana += 1,
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => han += 1,
            0xAC00..=0xD7AF | 0x1100..=0x11FF => hangul += 1,
            0x0400..=0x04FF => cyrillic += 1,
            0x0600..=0x06FF => arabic += 1,
            0x0900..=0x097F => devanagari += 1,
            0x0370..=0x03FF => greek += 1,
            _ => {}
        }
    }
    let letters = latin + han + kana + hangul + cyrillic + arabic + devanagari + greek;
    if letters == 0 {
        return None;
    }
    // scripts other than Latin decide when they are a fair share of the letters (code and
    // product names in Latin letters are common in any language)
    let share = |n: u32| n * 5 >= letters;
    if share(kana) || (kana > 0 && share(han)) {
        return Some("ja");
    }
    let scripts = [(han, "zh"), (hangul, "ko"), (cyrillic, "ru"), (arabic, "ar"), (devanagari, "hi"), (greek, "el")];
    if let Some((_, lang)) = scripts.iter().filter(|(n, _)| share(*n)).max_by_key(|(n, _)| *n) {
        return Some(lang);
    }
    latin_language(text)
}

/// Function word -> the languages (bits, in [`STOPWORDS`] order) that use it.
static WORDS: std::sync::LazyLock<std::collections::HashMap<&'static str, u8>> = std::sync::LazyLock::new(|| {
    let mut map = std::collections::HashMap::new();
    for (i, (_, list)) in STOPWORDS.iter().enumerate() {
        for w in *list {
            *map.entry(*w).or_insert(0u8) |= 1 << i;
        }
    }
    map
});

fn bump(counts: &mut [u32; STOPWORDS.len()], bits: u8, by: u32) {
    for (i, n) in counts.iter_mut().enumerate() {
        if bits & (1 << i) != 0 {
            *n += by;
        }
    }
}

fn latin_language(text: &str) -> Option<&'static str> {
    let mut counts = [0u32; STOPWORDS.len()];
    // letters only one language uses, each counted once
    let mut marked = 0u8;
    for c in text.chars().filter(|c| !c.is_ascii()) {
        for (lang, marks) in MARKS {
            if marks.contains(c.to_lowercase().next().unwrap_or(c))
                && let Some(i) = STOPWORDS.iter().position(|(l, _)| l == lang)
            {
                marked |= 1 << i;
            }
        }
    }
    bump(&mut counts, marked, 2);
    let mut words = 0u32;
    let mut buf = [0u8; 16];
    for w in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).take(80) {
        words += 1;
        // function words are short; ASCII ones are lower-cased on the stack
        if w.len() > 12 {
            continue;
        }
        let bits = if w.is_ascii() {
            let lower = &mut buf[..w.len()];
            lower.copy_from_slice(w.as_bytes());
            lower.make_ascii_lowercase();
            std::str::from_utf8(lower).ok().and_then(|l| WORDS.get(l)).copied()
        } else {
            WORDS.get(w.to_lowercase().as_str()).copied()
        };
        if let Some(bits) = bits {
            bump(&mut counts, bits, 1);
        }
    }
    // first best wins a tie, so English (listed first) is the default of plain ASCII text
    let (best, n) = counts.iter().enumerate().fold((0, 0), |acc, (i, &n)| if n > acc.1 { (i, n) } else { acc });
    let second = counts.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, n)| *n).max().unwrap_or(0);
    let ascii = text.chars().filter(char::is_ascii_alphabetic).count() * 100
        >= text.chars().filter(|c| c.is_alphabetic()).count() * 97;
    if n == second || n == 0 {
        // no evidence either way: plain ASCII prose reads as English
        return (ascii && words > 0).then_some("en");
    }
    STOPWORDS.get(best).map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn scripts_and_common_words_name_the_language() {
        assert_eq!(detect("How do I reverse a list in Python?"), Some("en"));
        assert_eq!(detect("¿Cómo puedo invertir una lista en Python?"), Some("es"));
        assert_eq!(detect("Écris un poème sur la mer et les bateaux"), Some("fr"));
        assert_eq!(detect("Wie berechne ich die Fläche eines Kreises mit dem Radius 3?"), Some("de"));
        assert_eq!(detect("用Python写一个函数来反转列表"), Some("zh"));
        assert_eq!(detect("リストを逆順にする関数を書いてください"), Some("ja"));
        assert_eq!(detect("Напиши стихотворение о море"), Some("ru"));
        assert_eq!(detect("12345 + 678"), None);
    }
}
