//! Cutting documents into chunks. The algorithm is versioned (`chunking.version`): the same text cut
//! differently is a different index, so a new version builds a new index version.

use asof_core::spec::Chunking;

use crate::document::Document;

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// `doc_id#ordinal`: stable while the document's chunk boundaries stay put, so an edit near
    /// the end of a document re-embeds only the chunks it touched.
    pub chunk_id: String,
    pub ordinal: usize,
    pub text: String,
}

/// The chunk id of a document's `ordinal`-th chunk.
pub fn chunk_id(doc_id: &str, ordinal: usize) -> String {
    format!("{doc_id}#{ordinal}")
}

/// Chunker `v1`: whitespace tokens in windows of `max_tokens`, each starting `max_tokens - overlap`
/// tokens after the previous one; a chunk's text is its tokens joined by single spaces. An empty
/// document has no chunks.
pub fn chunk(doc: &Document, spec: &Chunking) -> Vec<Chunk> {
    let tokens: Vec<&str> = doc.text.split_whitespace().collect();
    let max = spec.max_tokens.max(1);
    let step = max.saturating_sub(spec.overlap).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        let end = (start + max).min(tokens.len());
        out.push(Chunk {
            chunk_id: chunk_id(&doc.doc_id, out.len()),
            ordinal: out.len(),
            text: tokens[start..end].join(" "),
        });
        if end == tokens.len() {
            break;
        }
        start += step;
    }
    out
}

/// A document's text from its `v1` chunks (any order): each chunk after the first adds the tokens
/// past its overlap with the one before. Equal to the document up to whitespace.
pub fn join_chunks(chunks: &mut [(usize, &str)], spec: &Chunking) -> String {
    chunks.sort_by_key(|(ordinal, _)| *ordinal);
    let overlap = spec.overlap.min(spec.max_tokens.saturating_sub(1));
    let mut tokens: Vec<&str> = Vec::new();
    for (i, (_, text)) in chunks.iter().enumerate() {
        let skip = if i == 0 { 0 } else { overlap };
        tokens.extend(text.split_whitespace().skip(skip));
    }
    tokens.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_join_back_into_their_document() {
        let text = "one two three four five six seven eight nine ten eleven";
        for (max_tokens, overlap) in [(3, 0), (4, 1), (5, 2), (20, 3)] {
            let spec = Chunking {
                max_tokens,
                overlap,
                version: "v1".into(),
            };
            let chunks = chunk(&doc(text), &spec);
            let mut parts: Vec<(usize, &str)> = chunks
                .iter()
                .rev()
                .map(|c| (c.ordinal, c.text.as_str()))
                .collect();
            assert_eq!(
                join_chunks(&mut parts, &spec),
                text,
                "{max_tokens}/{overlap}"
            );
        }
    }

    fn doc(text: &str) -> Document {
        Document {
            doc_id: "d".into(),
            text: text.into(),
            version: String::new(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn windows_overlap_and_cover_every_token() {
        let text: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        let spec = Chunking {
            max_tokens: 4,
            overlap: 1,
            version: "v1".into(),
        };
        let chunks = chunk(&doc(&text.join("  \n")), &spec);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["t0 t1 t2 t3", "t3 t4 t5 t6", "t6 t7 t8 t9"]);
        assert_eq!(chunks[2].chunk_id, "d#2");
        assert!(chunk(&doc("  "), &spec).is_empty());
    }

    #[test]
    fn an_edit_at_the_end_keeps_earlier_chunks_identical() {
        let spec = Chunking {
            max_tokens: 3,
            overlap: 0,
            version: "v1".into(),
        };
        let a = chunk(&doc("a b c d e f g"), &spec);
        let b = chunk(&doc("a b c d e f CHANGED"), &spec);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
    }
}
