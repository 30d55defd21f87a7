//! What user-chosen text shown to other users may contain (display names, status texts, group
//! names and descriptions, device labels): no control characters, and no bidirectional
//! formatting characters: embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069),
//! which let a name render as something else than it is ("evil\u{202E}nimda" shows as "evil"
//! followed by "admin" reversed), and the invisible direction marks (U+200E LRM, U+200F RLM,
//! U+061C ALM), which reorder neutral characters around them ("a\u{200F}-b" may show as
//! "a-b" or "b-a") and make two names that look alike different strings.

/// Whether `c` is a bidi formatting character: an embedding, override or isolate control, or
/// a direction mark.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// One line of display text: no control characters (newline and tab included), no bidi controls.
pub(crate) fn is_clean_line(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || is_bidi_control(c))
}

/// Multi-line display text: like [`is_clean_line`], but newlines and tabs are allowed.
pub(crate) fn is_clean_text(s: &str) -> bool {
    !s.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_and_bidi_overrides() {
        assert!(is_clean_line("Zoë 🙂 مرحبا"));
        for bad in [
            "a\u{202E}b",
            "\u{2066}x",
            "x\u{2069}",
            "\u{202A}",
            "left\u{200E}mark",
            "right\u{200F}mark",
            "arabic\u{061C}mark",
            "a\nb",
            "\u{1b}[31m",
            "\0",
        ] {
            assert!(!is_clean_line(bad), "{bad:?}");
        }
        assert!(is_clean_text("two\nlines\tand a tab"));
        assert!(!is_clean_text("two\nlines\u{202D}"));
        assert!(!is_clean_text("bell\u{7}"));
        assert!(!is_clean_text("mark\u{200F}"));
    }
}
