//! Plain text of a message's content: for previews (CONTRACT §10.1) and sentiment (§10.2).

/// Characters of a preview at most, before the `…` that marks a cut.
pub const PREVIEW_CHARS: usize = 120;

/// The content as plain text: html tags removed (the text inside kept, scripts and styles
/// dropped), entities decoded, whitespace collapsed to single spaces and trimmed.
pub fn plain(kind: &str, content: &str) -> String {
    let text = if kind == "html" {
        let stripped = ammonia::Builder::empty().clean(content).to_string();
        html_escape::decode_html_entities(&stripped).into_owned()
    } else {
        content.to_string()
    };
    collapse(&text)
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `plain` cut to [`PREVIEW_CHARS`] characters (never inside one), with `…` when cut.
pub fn preview(plain: &str) -> String {
    match plain.char_indices().nth(PREVIEW_CHARS) {
        None => plain.to_string(),
        Some((at, _)) => format!("{}…", plain[..at].trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            plain(
                "html",
                "<p>Hello&nbsp;<b>world</b> &amp; <i>you</i></p>\n\n<div>  next&lt;3 </div>"
            ),
            "Hello world & you next<3"
        );
        assert_eq!(plain("html", "<script>alert(1)</script>ok"), "ok");
        assert_eq!(plain("text", "  a \t b\n"), "a b");
        assert_eq!(plain("text", "<b>not html</b>"), "<b>not html</b>");
    }

    #[test]
    fn previews_cut_on_a_character_boundary() {
        let short = "é".repeat(PREVIEW_CHARS);
        assert_eq!(preview(&short), short);
        let long = "😀".repeat(PREVIEW_CHARS + 5);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with("😀…"));
    }
}
