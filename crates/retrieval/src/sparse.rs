//! The sparse arm: BM25 (tantivy; Lucene's formula, k1 = 1.2, b = 0.75) over a generation's live
//! chunks, with English stop words and Snowball stemming. It is written into the generation's
//! folder beside the graph, so it has exactly the generation's chunks: a tombstoned or changed
//! chunk is in neither arm once the generation that dropped it is live.

use std::path::Path;

use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::error::{RetrievalError, RetrievalResult};
use crate::layout::PointRecord;

/// The folder of a generation's BM25 index.
pub const DIR: &str = "bm25";
const ANALYZER: &str = "asof_en";
const ID: &str = "id";
const TEXT: &str = "text";

fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => builder
            .filter(stop)
            .filter(Stemmer::new(Language::English))
            .build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let id = b.add_u64_field(ID, INDEXED | FAST | STORED);
    let text = b.add_text_field(
        TEXT,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        ),
    );
    (b.build(), id, text)
}

fn err(dir: &Path, e: impl std::fmt::Display) -> RetrievalError {
    RetrievalError::Corrupt {
        path: dir.to_path_buf(),
        message: format!("BM25 index: {e}"),
    }
}

/// Writes the BM25 index of `points` into `generation_dir/bm25` (a generation being built).
pub fn build(generation_dir: &Path, points: &[PointRecord]) -> RetrievalResult<()> {
    let dir = generation_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| RetrievalError::io(&dir, e))?;
    let (schema, id, text) = schema();
    let index = Index::create_in_dir(&dir, schema).map_err(|e| err(&dir, e))?;
    index.tokenizers().register(ANALYZER, analyzer());
    // One thread and one segment per build: the same chunks always make the same index.
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, 64 << 20)
        .map_err(|e| err(&dir, e))?;
    for p in points {
        let mut doc = TantivyDocument::default();
        doc.add_u64(id, p.id as u64);
        doc.add_text(text, &p.text);
        writer.add_document(doc).map_err(|e| err(&dir, e))?;
    }
    writer.commit().map_err(|e| err(&dir, e))?;
    writer.wait_merging_threads().map_err(|e| err(&dir, e))?;
    Ok(())
}

/// A generation's BM25 index, open for search.
pub struct SparseIndex {
    reader: IndexReader,
    text: Field,
    index: Index,
}

impl std::fmt::Debug for SparseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseIndex").finish_non_exhaustive()
    }
}

impl SparseIndex {
    /// The generation's BM25 index, or `None` for a generation written before asof had one.
    pub fn open(generation_dir: &Path) -> RetrievalResult<Option<Self>> {
        let dir = generation_dir.join(DIR);
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Index::open_in_dir(&dir).map_err(|e| err(&dir, e))?;
        index.tokenizers().register(ANALYZER, analyzer());
        let text = index.schema().get_field(TEXT).map_err(|e| err(&dir, e))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err(&dir, e))?;
        Ok(Some(SparseIndex {
            reader,
            text,
            index,
        }))
    }

    /// The query's terms, as the index analysed the chunks.
    fn terms(&self, query: &str) -> Vec<Term> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(ANALYZER)
            .unwrap_or_else(analyzer);
        let mut stream = analyzer.token_stream(query);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(self.text, &token.text));
        }
        terms
    }

    /// The `n` best chunk ids for `query` by BM25 among those `allowed` accepts, best first, with
    /// their scores. Every query term is optional (OR), as in Lucene's default.
    pub fn search(
        &self,
        query: &str,
        n: usize,
        allowed: impl Fn(u64) -> bool + Clone + Send + Sync + 'static,
    ) -> RetrievalResult<Vec<(usize, f32)>> {
        let terms = self.terms(query);
        if terms.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                )
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let collector = FilterCollector::new(
            ID.to_string(),
            move |id: u64| allowed(id),
            TopDocs::with_limit(n).order_by_score(),
        );
        let top = searcher
            .search(&query, &collector)
            .map_err(|e| RetrievalError::Query(format!("BM25 search: {e}")))?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ids = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64(ID)
                .map_err(|e| RetrievalError::Query(format!("BM25 ids: {e}")))?;
            if let Some(id) = ids.first(address.doc_id) {
                out.push((id as usize, score));
            }
        }
        Ok(out)
    }
}
