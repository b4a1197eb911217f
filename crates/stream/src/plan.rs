//! How a table's columns feed a stream's targets: per view, which columns are its keys, event and
//! created times and features; for an index, its doc id, text, version and metadata columns. Built
//! by name from the table's columns (at start, and again from each Relation message, so a column
//! added or reordered later is read right), with every type checked against the one type model.

use std::collections::BTreeMap;

use asof_core::ResolvedView;
use asof_core::keys::KeyValue;
use asof_core::spec::{COMMIT_TIME_COLUMN, DocumentIndex};
use asof_core::value::Value;
use asof_retrieval::document::Document;

use crate::pg_types::{self, PgKind};
use crate::pgoutput::{Cell, Tuple};

/// A column of the followed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// As PostgreSQL spells it (`numeric(10,2)`), for messages.
    pub type_name: String,
}

/// Where a time comes from: the commit, or a column.
#[derive(Debug, Clone, Copy)]
enum TimeFrom {
    Commit,
    Column(usize, PgKind),
}

#[derive(Debug, Clone)]
pub struct ViewPlan {
    pub view: ResolvedView,
    keys: Vec<(usize, PgKind)>,
    event: TimeFrom,
    created: Option<TimeFrom>,
    /// Per event column of the view (`FeatureView::event_columns`): its column and kind.
    features: Vec<(usize, PgKind)>,
    /// The view's event columns, in `features`' order.
    columns: Vec<asof_core::spec::Feature>,
}

#[derive(Debug, Clone)]
pub struct IndexPlan {
    pub index: DocumentIndex,
    id: (usize, PgKind),
    text: usize,
    updated_at: TimeFrom,
    metadata: Vec<(String, usize, Option<PgKind>)>,
}

/// One row change as a view sees it.
#[derive(Debug, Clone)]
pub enum ViewChange {
    /// Feature values; `None` where an unchanged TOASTed value was left out of the message.
    Upsert {
        keys: Vec<KeyValue>,
        event_ts: i64,
        created_ts: Option<i64>,
        features: Vec<Option<Value>>,
    },
    Delete {
        keys: Vec<KeyValue>,
        event_ts: i64,
        created_ts: Option<i64>,
    },
}

impl ViewChange {
    pub fn keys(&self) -> &[KeyValue] {
        match self {
            ViewChange::Upsert { keys, .. } | ViewChange::Delete { keys, .. } => keys,
        }
    }
}

/// One row change as an index sees it.
#[derive(Debug, Clone)]
pub enum DocChange {
    Upsert(Document),
    /// The text was left out (unchanged TOAST): only version and metadata move.
    Refresh(Document),
    Delete(String),
}

fn find<'a>(columns: &'a [Column], name: &str) -> Result<(usize, &'a Column), String> {
    columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let hint = asof_core::error::did_you_mean(name, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            format!(
                "the table has no column `{name}`{hint} (its columns: {})",
                names.join(", ")
            )
        })
}

fn time_from(columns: &[Column], name: &str, what: &str) -> Result<TimeFrom, String> {
    if name == COMMIT_TIME_COLUMN {
        return Ok(TimeFrom::Commit);
    }
    let (i, c) = find(columns, name)?;
    match pg_types::kind_of(c.type_oid) {
        Some(k @ (PgKind::Timestamp | PgKind::TimestampTz | PgKind::Date)) => {
            Ok(TimeFrom::Column(i, k))
        }
        _ => Err(format!(
            "{what} `{name}` is `{}`, not a timestamp, timestamptz or date",
            c.type_name
        )),
    }
}

fn key_column(columns: &[Column], name: &str) -> Result<(usize, PgKind), String> {
    let (i, c) = find(columns, name)?;
    let kind = pg_types::kind_of(c.type_oid);
    match (kind, pg_types::key_problem(kind, &c.type_name)) {
        (Some(k), None) => Ok((i, k)),
        (_, problem) => Err(format!(
            "key column `{name}`: {}",
            problem.unwrap_or_default()
        )),
    }
}

impl ViewPlan {
    /// Every problem is reported with the column and the fix in mind.
    pub fn build(view: &ResolvedView, columns: &[Column]) -> Result<ViewPlan, String> {
        let mut keys = Vec::new();
        for k in &view.join_keys {
            keys.push(key_column(columns, k)?);
        }
        let event = time_from(columns, &view.source.timestamp_field, "timestamp_field")?;
        let created = match &view.source.created_timestamp_field {
            Some(c) => Some(time_from(columns, c, "created_timestamp_field")?),
            None => None,
        };
        let mut features = Vec::new();
        let columns_spec = view.view.event_columns();
        for f in &columns_spec {
            let col = view.source.column_for_feature(&f.name);
            let (i, c) = find(columns, col)
                .map_err(|e| format!("feature `{}` of view `{}`: {e}", f.name, view.view.name))?;
            let kind = pg_types::kind_of(c.type_oid);
            if let Some(problem) = pg_types::feature_problem(kind, &c.type_name, &f.dtype) {
                return Err(format!(
                    "feature `{}` of view `{}` (column `{col}`): {problem}; declare a matching dtype or cast the column in a view",
                    f.name, view.view.name
                ));
            }
            features.push((i, kind.expect("checked above")));
        }
        Ok(ViewPlan {
            view: view.clone(),
            keys,
            event,
            created,
            features,
            columns: columns_spec,
        })
    }

    /// Whether the view aggregates events: it takes each insert as an event and nothing else.
    pub fn takes_events(&self) -> bool {
        self.view.view.is_aggregated()
    }

    /// An inserted or updated row (`new`) as a change; `old` is the old key when the update moved
    /// the row to another key, which becomes a delete of the old key first.
    pub fn upsert(
        &self,
        new: &Tuple,
        old: Option<&Tuple>,
        commit_ns: i64,
    ) -> Result<Vec<ViewChange>, String> {
        let keys = self.keys_of(new)?;
        let event_ts = time_of(self.event, new, commit_ns)?;
        let created_ts = self
            .created
            .map(|c| time_of(c, new, commit_ns))
            .transpose()?;
        let mut out = Vec::with_capacity(2);
        if let Some(old) = old {
            let old_keys = self.keys_of(old)?;
            if old_keys != keys {
                out.push(ViewChange::Delete {
                    keys: old_keys,
                    event_ts: commit_ns.max(event_ts),
                    created_ts: created_ts.map(|_| commit_ns),
                });
            }
        }
        let mut features = Vec::with_capacity(self.features.len());
        for ((i, kind), f) in self.features.iter().zip(&self.columns) {
            features.push(match cell(new, *i)? {
                Cell::Null => Some(Value::Null),
                Cell::Unchanged => None,
                Cell::Text(t) => Some(
                    pg_types::parse_value(*kind, &f.dtype, t)
                        .map_err(|e| format!("feature `{}`: {e}", f.name))?,
                ),
            });
        }
        out.push(ViewChange::Upsert {
            keys,
            event_ts,
            created_ts,
            features,
        });
        Ok(out)
    }

    /// A deleted row (its old key, or whole old row): a delete event at the commit time.
    pub fn delete(&self, old: &Tuple, commit_ns: i64) -> Result<ViewChange, String> {
        Ok(ViewChange::Delete {
            keys: self.keys_of(old)?,
            event_ts: commit_ns,
            created_ts: self.created.map(|_| commit_ns),
        })
    }

    fn keys_of(&self, t: &Tuple) -> Result<Vec<KeyValue>, String> {
        self.keys
            .iter()
            .zip(&self.view.join_keys)
            .map(|((i, kind), name)| match cell(t, *i)? {
                Cell::Text(s) => {
                    pg_types::parse_key(*kind, s).map_err(|e| format!("key `{name}`: {e}"))
                }
                _ => Err(format!("key `{name}` is null or missing in the change")),
            })
            .collect()
    }
}

impl IndexPlan {
    pub fn build(index: &DocumentIndex, columns: &[Column]) -> Result<IndexPlan, String> {
        let source = &index.source;
        let id = key_column(columns, source.id_column())?;
        let (text, c) = find(columns, source.text_column())?;
        if !matches!(
            pg_types::kind_of(c.type_oid),
            Some(PgKind::Text | PgKind::Json)
        ) {
            return Err(format!(
                "text_column `{}` is `{}`, not text",
                c.name, c.type_name
            ));
        }
        let updated_at = match &source.updated_at_column {
            Some(u) => time_from(columns, u, "updated_at_column")?,
            None => TimeFrom::Commit,
        };
        let used: Vec<usize> = [
            Some(id.0),
            Some(text),
            match updated_at {
                TimeFrom::Column(i, _) => Some(i),
                TimeFrom::Commit => None,
            },
        ]
        .into_iter()
        .flatten()
        .collect();
        let metadata = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .map(|(i, c)| (c.name.clone(), i, pg_types::kind_of(c.type_oid)))
            .collect();
        Ok(IndexPlan {
            index: index.clone(),
            id,
            text,
            updated_at,
            metadata,
        })
    }

    pub fn upsert(&self, new: &Tuple, commit_ns: i64) -> Result<DocChange, String> {
        let doc_id = self.doc_id(new)?;
        let version_ns = time_of(self.updated_at, new, commit_ns)?;
        let version = chrono::DateTime::from_timestamp_nanos(version_ns)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let mut metadata = BTreeMap::new();
        for (name, i, kind) in &self.metadata {
            let v = match cell(new, *i)? {
                Cell::Text(t) => pg_types::to_json(*kind, t),
                Cell::Null | Cell::Unchanged => continue,
            };
            metadata.insert(name.clone(), v);
        }
        let doc = |text: String| Document {
            doc_id: doc_id.clone(),
            text,
            version: version.clone(),
            metadata: metadata.clone(),
        };
        Ok(match cell(new, self.text)? {
            Cell::Text(t) => DocChange::Upsert(doc(t.clone())),
            Cell::Null => DocChange::Upsert(doc(String::new())),
            Cell::Unchanged => DocChange::Refresh(doc(String::new())),
        })
    }

    pub fn delete(&self, old: &Tuple) -> Result<DocChange, String> {
        Ok(DocChange::Delete(self.doc_id(old)?))
    }

    /// The version time of a change, for lag: its `updated_at_column` or commit time.
    pub fn version_ns(&self, new: &Tuple, commit_ns: i64) -> i64 {
        time_of(self.updated_at, new, commit_ns).unwrap_or(commit_ns)
    }

    fn doc_id(&self, t: &Tuple) -> Result<String, String> {
        match cell(t, self.id.0)? {
            Cell::Text(s) => Ok(s.clone()),
            _ => Err(format!(
                "doc id column `{}` is null or missing in the change",
                self.index.source.id_column()
            )),
        }
    }
}

fn cell(t: &Tuple, i: usize) -> Result<&Cell, String> {
    t.get(i).ok_or_else(|| {
        format!(
            "the change has {} columns, wanted column {}",
            t.len(),
            i + 1
        )
    })
}

fn time_of(from: TimeFrom, t: &Tuple, commit_ns: i64) -> Result<i64, String> {
    match from {
        TimeFrom::Commit => Ok(commit_ns),
        TimeFrom::Column(i, kind) => match cell(t, i)? {
            Cell::Text(s) => pg_types::parse_time(kind, s),
            Cell::Null => Err(format!("time column {} is null", i + 1)),
            Cell::Unchanged => Err(format!("time column {} was left out", i + 1)),
        },
    }
}
