//! A file's type, from its first bytes only: never from its name or the client's headers.

/// Bytes of the start of a file that sniffing looks at.
pub const HEAD: usize = 8 * 1024;

/// The MIME type of a file starting with `head` (at most [`HEAD`] bytes, by the `infer`
/// crate's magic numbers), or `application/octet-stream`. Text is `text/plain` when `head` is valid UTF-8 (a multi-byte
/// character cut at the end allowed) without NUL or other control characters than tab and
/// line breaks; SVG (`image/svg+xml`) is text whose first element is `<svg`.
pub fn sniff(head: &[u8]) -> &'static str {
    let text = as_text(head);
    // Before the magic numbers, which call an SVG with an XML declaration `text/xml`.
    if text.is_some_and(first_element_is_svg) {
        return "image/svg+xml";
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    if text.is_some() {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

fn as_text(head: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A character cut by the end of the sample is still text.
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let clean = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{feff}'));
    (!text.is_empty() && clean).then_some(text)
}

fn first_element_is_svg(text: &str) -> bool {
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    // Skip the XML declaration, comments and a doctype.
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            rest = r.split_once("?>").map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->").map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("<!") {
            rest = r.split_once('>').map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    rest.get(..4)
        .is_some_and(|t| t.eq_ignore_ascii_case("<svg"))
}

/// Words that refuse an SVG wherever they appear (case-insensitive): anything that runs
/// (`script`, with or without a namespace prefix, `javascript:`/`vbscript:` URLs), embeds
/// other content (`foreignObject`, `iframe`, `embed`, `object`), loads it (`@import`, `data:`
/// URLs) or hides any of these (character references `&#…;`, entity declarations, a doctype).
const SVG_REFUSED: [&[u8]; 11] = [
    b"script",
    b"foreignobject",
    b"iframe",
    b"embed",
    b"<object",
    b"&#",
    b"<!entity",
    b"<!doctype",
    b"@import",
    b"data:",
    b"url(",
];

/// Whether an SVG holds something that runs or loads (a deny-list on the whole file, which
/// the caller reads whole: it refuses larger SVGs): any of [`SVG_REFUSED`], an event handler
/// attribute (`on…=`), or a link (`href`) to anything but a fragment of the same file
/// (`#id`). SVGs are never served inline either; this refuses them at upload.
pub fn svg_is_active(svg: &[u8]) -> bool {
    let lower = svg.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if SVG_REFUSED.iter().any(|n| has(n)) {
        return true;
    }
    let value_after = |i: usize| -> Option<u8> {
        // The first byte of the attribute value that follows `=` (quotes skipped), if the
        // name starting at `i` is followed by one.
        let rest = &lower[i..];
        let name_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_'))
            .count();
        let mut after = rest[name_len..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace());
        if after.next() != Some(&b'=') {
            return None;
        }
        after
            .find(|b| !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\''))
            .copied()
            .or(Some(0))
    };
    (1..lower.len()).any(|i| {
        let before = lower[i - 1];
        let starts_name = !before.is_ascii_alphanumeric() && !matches!(before, b'-' | b'_');
        if !starts_name {
            return false;
        }
        let rest = &lower[i..];
        // ` onload=`, `/onclick =`, `"onerror=`…: an attribute starting with "on".
        let handler = rest.starts_with(b"on")
            && rest.get(2).is_some_and(u8::is_ascii_alphabetic)
            && value_after(i).is_some();
        // `href=` or `xlink:href=` to anything but `#fragment`.
        let link = (rest.starts_with(b"href") || rest.starts_with(b"xlink:href"))
            && value_after(i).is_some_and(|first| first != b'#');
        handler || link
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(sniff(&elf), "application/x-executable");
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0\0\0"),
            "application/vnd.microsoft.portable-executable"
        );
        assert_eq!(sniff("hello, wörld\n".as_bytes()), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02garbage"), "application/octet-stream");
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<!-- x --><svg xmlns=\"\">"),
            "image/svg+xml"
        );
        assert_ne!(sniff(b"<html><svg>"), "image/svg+xml");
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><note/>"), "text/xml");
    }

    #[test]
    fn a_cut_character_is_still_text() {
        let text = "aé".as_bytes();
        assert_eq!(sniff(&text[..2]), "text/plain");
    }

    #[test]
    fn active_svgs_are_found() {
        assert!(svg_is_active(b"<svg><SCRIPT>alert(1)</script></svg>"));
        assert!(svg_is_active(b"<svg onload=\"x()\"></svg>"));
        assert!(svg_is_active(b"<svg><rect\n onClick = 'x'/></svg>"));
        assert!(svg_is_active(b"<svg><a href=\"JavaScript:x\"/></svg>"));
        assert!(!svg_is_active(
            b"<svg><rect fill=\"red\" width=\"1\"/><text>only</text></svg>"
        ));
        assert!(!svg_is_active(
            b"<svg><use href=\"#dot\"/><circle id=\"dot\" r=\"1\"/></svg>"
        ));
        // Namespace prefixes, character references, handlers after `/` or a quote, links.
        assert!(svg_is_active(
            b"<svg xmlns:s=\"x\"><s:script>x()</s:script></svg>"
        ));
        assert!(svg_is_active(b"<svg><a href=\"javascript&#58;x\"/></svg>"));
        assert!(svg_is_active(b"<svg/onload=x()>"));
        assert!(svg_is_active(b"<svg><rect x=\"1\"onclick=\"x\"/></svg>"));
        assert!(svg_is_active(
            b"<svg><image href=\"https://tracker.example/p.png\"/></svg>"
        ));
        assert!(svg_is_active(
            b"<svg><use xlink:href = 'other.svg#a'/></svg>"
        ));
        assert!(svg_is_active(b"<svg><style>@import 'x.css';</style></svg>"));
        assert!(svg_is_active(
            b"<svg><rect style=\"fill:url(http://x)\"/></svg>"
        ));
    }
}
