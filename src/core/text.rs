//! Free text people read: an alarm's text, a note, an address. What it may hold.

/// Is `c` a character that is not seen itself but changes how the text around it is
/// shown or read: the bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E,
/// U+200F, U+061C), which can make "Nøkkelboks 1234" read "Nøkkelboks 4321" on a
/// nurse's phone; the zero-width characters (U+200B–U+200D, U+2060–U+2064, U+FEFF,
/// U+180E, the soft hyphen U+00AD), which make two texts that look the same differ; and
/// the other invisible format characters (U+206A–U+206F, U+FFF9–U+FFFB, the tags
/// U+E0000–U+E007F). Emoji joined with U+200D are refused with them: send them apart.
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// Why `text` cannot be shown to people as it was written, if it cannot: a control
/// character (but a newline where `newlines`), or a hidden one ([`is_hidden`]). The
/// reason names the first such character by its code point.
pub fn refused(text: &str, newlines: bool) -> Option<String> {
    let c = text.chars().find(|&c| (c.is_control() && !(newlines && c == '\n')) || is_hidden(c))?;
    let what = if c.is_control() {
        "a control character"
    } else {
        "an invisible formatting character (bidirectional or zero-width), which can make text read differently from what was sent"
    };
    Some(format!("contains {what}: U+{:04X}", c as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_control_characters_are_refused_and_named() {
        assert_eq!(refused("Nøkkelboks 1234, 2. etasje. Ring på! 👍", false), None);
        assert_eq!(refused("linje 1\nlinje 2", true), None);
        assert_eq!(refused("linje 1\nlinje 2", false).as_deref(), Some("contains a control character: U+000A"));
        for c in ['\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200B}', '\u{200F}', '\u{FEFF}', '\u{00AD}', '\u{E0041}'] {
            let why = refused(&format!("Nøkkelboks {c}1234"), true).unwrap_or_else(|| panic!("U+{:04X} taken", c as u32));
            assert!(why.contains(&format!("U+{:04X}", c as u32)) && why.contains("invisible"), "{why}");
        }
        assert!(refused("bell\u{7}", true).unwrap().contains("control"));
    }
}
