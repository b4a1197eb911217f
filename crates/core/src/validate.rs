//! Semantic validation of a loaded repo: names, references, and (when the data exists) the source
//! schemas. All problems are collected, each located at its file, line and column.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::dtype::DType;
use crate::error::{CoreError, CoreResult, Diagnostic, did_you_mean};
use crate::locate;
use crate::repo::{Located, Repo};
use crate::spec::{DocumentIndex, EmbeddingProvider, Entity, FeatureView, Source, SourceType};

/// A column of a source's data, as an engine sees it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// The asof dtype this column maps to, when it maps to one.
    pub dtype: Option<DType>,
    /// The engine's own name for the type, for messages.
    pub type_name: String,
    /// Why this column cannot be a join key (with the fix), or `None` if it can. The engine's
    /// type model decides; core only reports.
    pub key_problem: Option<String>,
    /// The key type of this column when it can be a join key.
    pub key_type: Option<crate::keys::KeyType>,
}

/// Reads a source's schema. Implemented by the offline store; core has no Parquet reader.
pub trait SchemaProbe {
    /// The source's columns, or `Ok(None)` when its data does not exist yet (checks are skipped).
    fn columns(&self, repo_dir: &Path, source: &Source) -> Result<Option<Vec<ColumnInfo>>, String>;
}

/// A probe that never finds data: validates definitions only.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProbe;

impl SchemaProbe for NoProbe {
    fn columns(&self, _: &Path, _: &Source) -> Result<Option<Vec<ColumnInfo>>, String> {
        Ok(None)
    }
}

struct Checker<'a> {
    repo: &'a Repo,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// Reports `message` at `token` inside a definition's block (or at its name).
    fn at<T>(
        &mut self,
        item: &Located<T>,
        after: Option<&str>,
        token: &str,
        message: String,
        hint: Option<String>,
    ) {
        let text = self.repo.text(&item.file);
        let (line, col) = locate::find_token(
            text,
            item.span.line,
            item.span.end_line.max(item.span.line),
            after,
            token,
        )
        .unwrap_or((item.span.line, item.span.column));
        self.diags
            .push(Diagnostic::new(&item.file, line, col, message).with_hint(hint));
    }

    /// Reports `message` at `token` within lines `lines` of `item`'s file (an entry of a nested
    /// list), or at the entry's first line.
    fn at_lines<T>(
        &mut self,
        item: &Located<T>,
        lines: (usize, usize),
        token: &str,
        message: String,
        hint: Option<String>,
    ) {
        let text = self.repo.text(&item.file);
        let (line, col) = locate::find_token(text, lines.0, lines.1, None, token)
            .unwrap_or((lines.0, item.span.column));
        self.diags
            .push(Diagnostic::new(&item.file, line, col, message).with_hint(hint));
    }

    fn check_names<T>(&mut self, kind: &str, items: &[Located<T>], name: impl Fn(&T) -> &str) {
        let mut seen: HashMap<&str, (&PathBuf, usize)> = HashMap::new();
        for item in items {
            let n = name(&item.def);
            if !is_identifier(n) {
                self.diags.push(Diagnostic::new(
                    &item.file,
                    item.span.line,
                    item.span.column,
                    format!("{kind} name `{n}` is not an identifier: use letters, digits and `_`, starting with a letter or `_`"),
                ));
            }
            if let Some((file, line)) = seen.get(n) {
                self.diags.push(
                    Diagnostic::new(
                        &item.file,
                        item.span.line,
                        item.span.column,
                        format!("duplicate {kind} `{n}`"),
                    )
                    .with_hint(Some(format!("also defined at {}:{line}", file.display()))),
                );
            } else {
                seen.insert(n, (&item.file, item.span.line));
            }
        }
    }
}

/// The project name is part of every online key (`asof:{project}:{view}:`): a `:` or a glob
/// character in it could make one project's keys a prefix or a pattern match of another's.
fn check_project_name(ck: &mut Checker<'_>) {
    let project = &ck.repo.config.project;
    let ok = project
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return;
    }
    let config_text =
        std::fs::read_to_string(ck.repo.dir.join(crate::config::CONFIG_FILE)).unwrap_or_default();
    let (line, column) = locate::find_token(
        &config_text,
        1,
        config_text.lines().count(),
        Some("project"),
        project,
    )
    .unwrap_or((1, 1));
    ck.diags.push(
        Diagnostic::new(
            crate::config::CONFIG_FILE,
            line,
            column,
            format!("project name `{project}` may hold only letters, digits, `_` and `-`, starting with a letter or `_`"),
        )
        .with_hint(Some(format!(
            "e.g. `project: {}`",
            sanitized_project(project)
        ))),
    );
}

fn sanitized_project(project: &str) -> String {
    let s: String = project
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s
    } else {
        format!("_{s}")
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates the repo and returns its definitions as a catalog, or every problem found.
pub fn validate(repo: &Repo, probe: &dyn SchemaProbe) -> CoreResult<Catalog> {
    let mut ck = Checker {
        repo,
        diags: Vec::new(),
    };
    check_project_name(&mut ck);
    ck.check_names("entity", &repo.entities, |e| &e.name);
    ck.check_names("source", &repo.sources, |s| &s.name);
    ck.check_names("feature view", &repo.feature_views, |v| &v.name);
    ck.check_names("feature service", &repo.feature_services, |s| &s.name);
    ck.check_names("document index", &repo.document_indexes, |d| &d.name);

    let entities: BTreeMap<&str, _> = repo
        .entities
        .iter()
        .map(|e| (e.def.name.as_str(), &e.def))
        .collect();
    let sources: BTreeMap<&str, _> = repo
        .sources
        .iter()
        .map(|s| (s.def.name.as_str(), s))
        .collect();
    let views: BTreeMap<&str, _> = repo
        .feature_views
        .iter()
        .map(|v| (v.def.name.as_str(), &v.def))
        .collect();

    for e in &repo.entities {
        let mut seen_keys = std::collections::HashSet::new();
        for k in &e.def.join_keys {
            if !is_identifier(k) {
                ck.at(
                    e,
                    Some("join_keys"),
                    k,
                    format!(
                        "entity `{}`: join key `{k}` is not an identifier",
                        e.def.name
                    ),
                    Some("use letters, digits and `_`, starting with a letter or `_`".into()),
                );
            }
            if !seen_keys.insert(k.as_str()) {
                ck.at(
                    e,
                    Some("join_keys"),
                    k,
                    format!("entity `{}` lists join key `{k}` twice", e.def.name),
                    Some("list each key once".into()),
                );
            }
        }
        if e.def.join_keys.is_empty() {
            ck.at(
                e,
                None,
                "join_keys",
                format!("entity `{}` has no join keys", e.def.name),
                Some("list at least one, e.g. `join_keys: [driver_id]`".into()),
            );
        }
    }

    for s in &repo.sources {
        let d = &s.def;
        let present = [
            ("connection", d.connection.is_some()),
            ("password_env", d.password_env.is_some()),
            ("table", d.table.is_some()),
        ];
        check_source_kind(
            &mut ck,
            s,
            &format!("source `{}`", d.name),
            d.kind,
            &[
                ("path", !d.path.is_empty()),
                ("timestamp_field", !d.timestamp_field.is_empty()),
            ],
            &present,
            d.connection.as_deref(),
        );
    }
    for idx in &repo.document_indexes {
        let d = &idx.def.source;
        let present = [
            ("connection", d.connection.is_some()),
            ("password_env", d.password_env.is_some()),
            ("table", d.table.is_some()),
            ("id_column", d.id_column.is_some()),
            ("text_column", d.text_column.is_some()),
            ("updated_at_column", d.updated_at_column.is_some()),
        ];
        check_source_kind(
            &mut ck,
            idx,
            &format!("document index `{}`'s source", idx.def.name),
            d.kind,
            &[("path", !d.path.is_empty()), ("format", d.format.is_some())],
            &present,
            d.connection.as_deref(),
        );
    }

    // Source schemas, probed once each.
    let mut schemas: HashMap<&str, Option<Vec<ColumnInfo>>> = HashMap::new();
    for s in &repo.sources {
        if s.def.kind == SourceType::Postgres {
            // Checked against the table when the stream starts.
            schemas.insert(s.def.name.as_str(), None);
            continue;
        }
        match probe.columns(&repo.dir, &s.def) {
            Ok(cols) => {
                if let Some(cols) = &cols {
                    check_source_columns(&mut ck, s, cols);
                }
                schemas.insert(s.def.name.as_str(), cols);
            }
            Err(msg) => ck.at(
                s,
                None,
                "path",
                format!("source `{}`: {msg}", s.def.name),
                None,
            ),
        }
    }

    let mut key_types = BTreeMap::new();
    // Aggregated views with their column types and output features filled in.
    let mut aggregated: HashMap<String, FeatureView> = HashMap::new();
    for v in &repo.feature_views {
        let view = &v.def;
        if view.entities.is_empty() {
            ck.at(
                v,
                None,
                "entities",
                format!("feature view `{}` has no entities", view.name),
                Some("list the entities whose keys identify its rows".into()),
            );
        }
        let mut join_keys = Vec::new();
        for e in &view.entities {
            match entities.get(e.as_str()) {
                Some(ent) => join_keys.extend(ent.join_keys.iter().cloned()),
                None => ck.at(
                    v,
                    Some("entities"),
                    e,
                    format!("feature view `{}` names unknown entity `{e}`", view.name),
                    did_you_mean(e, entities.keys().copied()),
                ),
            }
        }
        let source = sources.get(view.source.as_str());
        if source.is_none() {
            ck.at(
                v,
                Some("source"),
                &view.source,
                format!(
                    "feature view `{}` names unknown source `{}`",
                    view.name, view.source
                ),
                did_you_mean(&view.source, sources.keys().copied()),
            );
        }
        let mut seen = HashMap::new();
        for f in &view.features {
            if !is_identifier(&f.name) {
                ck.at(
                    v,
                    Some("features"),
                    &f.name,
                    format!("feature name `{}` is not an identifier", f.name),
                    None,
                );
            }
            if seen.insert(f.name.as_str(), ()).is_some() {
                ck.at(
                    v,
                    Some("features"),
                    &f.name,
                    format!(
                        "feature view `{}` declares feature `{}` twice",
                        view.name, f.name
                    ),
                    None,
                );
            }
            if join_keys.contains(&f.name) {
                ck.at(
                    v,
                    Some("features"),
                    &f.name,
                    format!(
                        "feature `{}` has the name of a join key of view `{}`",
                        f.name, view.name
                    ),
                    None,
                );
            }
        }
        let cols = source.and_then(|s| schemas.get(s.def.name.as_str()).cloned().flatten());
        if view.is_aggregated() {
            let filled = check_aggregations(&mut ck, v, &join_keys, source, cols.as_deref());
            aggregated.insert(view.name.clone(), filled);
        } else if view.features.is_empty() {
            ck.at(
                v,
                None,
                "features",
                format!("feature view `{}` declares no features", view.name),
                Some("list `features:` with a name and dtype each, or `aggregations:`".into()),
            );
        }
        let (Some(source), Some(Some(cols))) = (
            source,
            source.map(|s| schemas.get(s.def.name.as_str()).cloned().flatten()),
        ) else {
            continue;
        };
        let by_name: HashMap<&str, &ColumnInfo> =
            cols.iter().map(|c| (c.name.as_str(), c)).collect();
        let types: BTreeMap<String, crate::keys::KeyType> = join_keys
            .iter()
            .filter_map(|k| Some((k.clone(), by_name.get(k.as_str())?.key_type?)))
            .collect();
        if !types.is_empty() {
            key_types.insert(view.name.clone(), types);
        }
        let all: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        // Key problems point at the view's first entity: that is where its keys come from.
        let entity_token = view
            .entities
            .first()
            .map(String::as_str)
            .unwrap_or("entities");
        for key in &join_keys {
            let (message, hint) = match by_name.get(key.as_str()) {
                Some(c) => match &c.key_problem {
                    Some(problem) => (
                        format!(
                            "feature view `{}`: join key `{key}` of source `{}` ({}): {problem}",
                            view.name, source.def.name, source.def.path
                        ),
                        None,
                    ),
                    None => continue,
                },
                None => (
                    format!(
                        "feature view `{}`: join key `{key}` is not a column of source `{}` ({})",
                        view.name, source.def.name, source.def.path
                    ),
                    did_you_mean(key, all.iter().copied()),
                ),
            };
            ck.at(v, Some("entities"), entity_token, message, hint);
        }
        for f in view.features.iter().filter(|_| !view.is_aggregated()) {
            let col = source.def.column_for_feature(&f.name);
            match by_name.get(col) {
                None => ck.at(
                    v,
                    Some("features"),
                    &f.name,
                    format!("feature `{}` of view `{}`: column `{col}` is not in source `{}` ({})", f.name, view.name, source.def.name, source.def.path),
                    did_you_mean(col, all.iter().copied()).or_else(|| Some("map a differently named column with the source's `field_mapping`".into())),
                ),
                Some(c) if c.dtype.as_ref() != Some(&f.dtype) => ck.at(
                    v,
                    Some("features"),
                    &f.name,
                    format!("feature `{}` of view `{}` is declared `{}` but column `{col}` of source `{}` is {}", f.name, view.name, f.dtype, source.def.name, c.type_name),
                    c.dtype.as_ref().map(|d| format!("declare it `dtype: {d}`")),
                ),
                Some(_) => {}
            }
        }
    }

    for s in &repo.feature_services {
        if s.def.features.is_empty() {
            ck.at(
                s,
                None,
                "features",
                format!("feature service `{}` lists no features", s.def.name),
                None,
            );
        }
        for r in &s.def.features {
            let (vname, fname) = match r.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (r.as_str(), None),
            };
            match views.get(vname) {
                None => ck.at(
                    s,
                    Some("features"),
                    vname,
                    format!(
                        "feature service `{}` references unknown feature view `{vname}`",
                        s.def.name
                    ),
                    did_you_mean(vname, views.keys().copied()),
                ),
                Some(view) => {
                    if let Some(f) = fname
                        && !view.feature_names().any(|n| n == f)
                    {
                        ck.at(
                            s,
                            Some("features"),
                            f,
                            format!(
                                "feature service `{}`: view `{vname}` has no feature `{f}`",
                                s.def.name
                            ),
                            did_you_mean(f, view.feature_names()),
                        );
                    }
                }
            }
        }
    }

    for d in &repo.document_indexes {
        check_document_index(&mut ck, d, &entities, &views, &schemas);
    }

    if !ck.diags.is_empty() {
        ck.diags
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        ck.diags.dedup();
        return Err(CoreError::Invalid(ck.diags));
    }
    let mut catalog = Catalog {
        key_types,
        ..Catalog::default()
    };
    for e in &repo.entities {
        catalog.entities.insert(e.def.name.clone(), e.def.clone());
    }
    for s in &repo.sources {
        catalog.sources.insert(s.def.name.clone(), s.def.clone());
    }
    for v in &repo.feature_views {
        let view = aggregated
            .remove(&v.def.name)
            .unwrap_or_else(|| v.def.clone());
        catalog.feature_views.insert(v.def.name.clone(), view);
    }
    for s in &repo.feature_services {
        catalog
            .feature_services
            .insert(s.def.name.clone(), s.def.clone());
    }
    for d in &repo.document_indexes {
        catalog
            .document_indexes
            .insert(d.def.name.clone(), d.def.clone());
    }
    Ok(catalog)
}

/// Checks an aggregated view's aggregations and returns the view with each column's type and the
/// output features filled in (the registry records them, so every path reads the same types).
fn check_aggregations(
    ck: &mut Checker<'_>,
    v: &Located<FeatureView>,
    join_keys: &[String],
    source: Option<&&Located<Source>>,
    cols: Option<&[ColumnInfo]>,
) -> FeatureView {
    let view = &v.def;
    let mut filled = view.clone();
    if !view.features.is_empty() {
        ck.at(
            v,
            None,
            "features",
            format!(
                "feature view `{}` lists both `features` and `aggregations`",
                view.name
            ),
            Some("an aggregated view's features are its aggregations: remove `features` (or move plain features to a view of their own)".into()),
        );
    }
    if !view.ttl.is_unlimited() {
        ck.at(
            v,
            None,
            "ttl",
            format!(
                "feature view `{}` has a `ttl` and `aggregations`",
                view.name
            ),
            Some(
                "each aggregation's `window` bounds how old its events may be: remove `ttl`".into(),
            ),
        );
    }
    let by_name: HashMap<&str, &ColumnInfo> = cols
        .unwrap_or_default()
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let source_name = source.map(|s| s.def.name.as_str()).unwrap_or("?");
    let mut seen = std::collections::HashSet::new();
    let mut features = Vec::new();
    // Each aggregation's column type, probed or declared: aggregations of one column must agree.
    let types: Vec<Option<DType>> = view
        .aggregations
        .iter()
        .map(|a| {
            let probed = a
                .column
                .as_ref()
                .and_then(|c| by_name.get(c.as_str())?.dtype.clone());
            probed.or_else(|| a.dtype.clone())
        })
        .collect();
    // Each aggregation's own lines: two may share a name, so the name cannot find them.
    let entries = locate::nested_items(
        ck.repo.text(&v.file),
        v.span.line,
        v.span.end_line,
        "aggregations",
    );
    for (n, (a, out)) in view
        .aggregations
        .iter()
        .zip(&mut filled.aggregations)
        .enumerate()
    {
        let name = a.name.as_str();
        let lines = entries
            .get(n)
            .copied()
            .unwrap_or((v.span.line, v.span.end_line.max(v.span.line)));
        if !is_identifier(name) {
            ck.at_lines(
                v,
                lines,
                name,
                format!("aggregation name `{name}` is not an identifier"),
                Some("use letters, digits and `_`, starting with a letter or `_`".into()),
            );
        }
        if !seen.insert(name) {
            ck.at_lines(
                v,
                lines,
                name,
                format!(
                    "feature view `{}` has two aggregations named `{name}`",
                    view.name
                ),
                Some("give each output its own name, e.g. `clicks_7d` and `clicks_1d`".into()),
            );
        }
        if join_keys.iter().any(|k| k == name) {
            ck.at_lines(
                v,
                lines,
                name,
                format!(
                    "aggregation `{name}` has the name of a join key of view `{}`",
                    view.name
                ),
                None,
            );
        }
        if a.window.is_unlimited() {
            ck.at_lines(
                v,
                lines,
                "window",
                format!(
                    "aggregation `{name}` of view `{}`: the window must be a positive duration",
                    view.name
                ),
                Some("write e.g. `window: 7d`, `window: 1h` or `window: 90s`".into()),
            );
        }
        let Some(column) = &a.column else {
            if a.function.needs_column() {
                ck.at_lines(
                    v,
                    lines,
                    "function",
                    format!(
                        "aggregation `{name}` of view `{}`: `{}` needs a `column`",
                        view.name,
                        a.function.name()
                    ),
                    Some("name the source column to aggregate, e.g. `column: amount`".into()),
                );
            }
            features.push(crate::spec::Feature {
                name: name.into(),
                dtype: DType::Int64,
                description: String::new(),
            });
            continue;
        };
        if join_keys.contains(column) {
            ck.at_lines(
                v,
                lines,
                column,
                format!(
                    "aggregation `{name}` of view `{}` aggregates join key `{column}`",
                    view.name
                ),
                Some("aggregate a value column; `count` without a column counts events".into()),
            );
        }
        if cols.is_some() {
            match by_name.get(column.as_str()) {
                None => {
                    let all: Vec<&str> = by_name.keys().copied().collect();
                    ck.at_lines(v, lines, column, format!("aggregation `{name}` of view `{}`: column `{column}` is not in source `{source_name}`", view.name), did_you_mean(column, all.iter().copied()));
                }
                Some(c) => match (&c.dtype, &a.dtype) {
                    (None, _) => ck.at_lines(v, lines, column, format!("aggregation `{name}` of view `{}`: column `{column}` of source `{source_name}` is {}, which asof cannot aggregate", view.name, c.type_name), None),
                    (Some(have), Some(declared)) if have != declared => ck.at_lines(v, lines, "dtype", format!("aggregation `{name}` of view `{}` declares `{declared}` but column `{column}` of source `{source_name}` is {}", view.name, c.type_name), Some(format!("declare `dtype: {have}` or leave it out"))),
                    (Some(have), _) => out.dtype = Some(have.clone()),
                },
            }
        }
        if let Some(d) = &out.dtype
            && let Some((other, _)) = view.aggregations.iter().zip(&types).find(|(b, t)| {
                b.column.as_ref() == Some(column) && t.as_ref().is_some_and(|t| t != d)
            })
        {
            ck.at_lines(v, lines, "dtype", format!("aggregations `{name}` and `{}` of view `{}` give column `{column}` different types", other.name, view.name), Some("declare one `dtype` for the column".into()));
        }
        match &out.dtype {
            None => ck.at_lines(v, lines, column, format!("aggregation `{name}` of view `{}`: the type of column `{column}` is unknown (source `{source_name}` cannot be read now)", view.name), Some("declare it, e.g. `dtype: float64`, or write the source's data before `apply`".into())),
            Some(d) => {
                if let Some(problem) = crate::window::unfit(a.function, d) {
                    ck.at_lines(v, lines, "function", format!("aggregation `{name}` of view `{}`: {problem} (column `{column}` is {d})", view.name), Some("use `count`, `last`, `min` or `max` for it, or aggregate a numeric column".into()));
                }
                if let Some(t) = out.output_type() {
                    features.push(crate::spec::Feature { name: name.into(), dtype: t, description: String::new() });
                }
            }
        }
    }
    filled.features = features;
    filled
}

/// A source declares the fields of its kind and no others: files need `file_fields`; PostgreSQL
/// needs a connection (without a password in it) and a table.
fn check_source_kind<T>(
    ck: &mut Checker<'_>,
    item: &Located<T>,
    what: &str,
    kind: SourceType,
    file_fields: &[(&str, bool)],
    postgres_fields: &[(&str, bool)],
    connection: Option<&str>,
) {
    let (needed, foreign, kind_name): (Vec<(&str, bool)>, _, _) = match kind {
        SourceType::File => (file_fields.to_vec(), postgres_fields, "a file source"),
        SourceType::Postgres => (
            postgres_fields
                .iter()
                .filter(|(f, _)| *f == "connection" || *f == "table")
                .copied()
                .collect(),
            file_fields,
            "a `type: postgres` source",
        ),
    };
    for (field, present) in needed {
        if !present {
            ck.at(
                item,
                None,
                "source",
                format!("{what} has no `{field}`, which {kind_name} needs"),
                Some(match kind {
                    SourceType::File => "add it, or set `type: postgres` to follow a table".into(),
                    SourceType::Postgres => "e.g. `connection: postgresql://asof@127.0.0.1:5432/rides` and `table: public.driver_stats`".into(),
                }),
            );
        }
    }
    for (field, present) in foreign {
        // A PostgreSQL source may name its event column; a file source may not name a table.
        if *present && !(kind == SourceType::Postgres && *field == "timestamp_field") {
            ck.at(
                item,
                Some(field),
                field,
                format!("{what}: `{field}` does not apply to {kind_name}"),
                Some("remove it, or set the source's `type` to the kind it belongs to".into()),
            );
        }
    }
    if let Some(url) = connection
        && let Some(rest) = url.split_once("://").map(|(_, r)| r)
        && let Some((userinfo, _)) = rest.split_once('@')
        && userinfo.contains(':')
    {
        ck.at(
            item,
            Some("connection"),
            url,
            format!(
                "{what}: the connection URL holds a password; repo files are not the place for it"
            ),
            Some(
                "remove it from the URL and name an environment variable with `password_env`"
                    .into(),
            ),
        );
    }
}

fn check_source_columns(ck: &mut Checker<'_>, s: &Located<Source>, cols: &[ColumnInfo]) {
    let find = |n: &str| cols.iter().find(|c| c.name == n);
    let all: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    let mut ts_fields = vec![("timestamp_field", &s.def.timestamp_field)];
    if let Some(c) = &s.def.created_timestamp_field {
        ts_fields.push(("created_timestamp_field", c));
    }
    for (field, col) in ts_fields {
        match find(col) {
            None => ck.at(
                s,
                Some(field),
                col,
                format!(
                    "source `{}`: {field} `{col}` is not a column of {}",
                    s.def.name, s.def.path
                ),
                did_you_mean(col, all.iter().copied()),
            ),
            Some(c) if c.dtype != Some(DType::Timestamp) => ck.at(
                s,
                Some(field),
                col,
                format!(
                    "source `{}`: {field} `{col}` must be a timestamp column, but it is {}",
                    s.def.name, c.type_name
                ),
                None,
            ),
            Some(_) => {}
        }
    }
    for from in s.def.field_mapping.keys() {
        if find(from).is_none() {
            ck.at(
                s,
                Some("field_mapping"),
                from,
                format!(
                    "source `{}`: field_mapping names column `{from}`, which is not in {}",
                    s.def.name, s.def.path
                ),
                did_you_mean(from, all.iter().copied()),
            );
        }
    }
}

/// Largest HNSW-friendly dimensionality we accept; beyond it a typo (an extra zero) is likelier.
const MAX_DIMS: usize = 65_536;

fn check_document_index(
    ck: &mut Checker<'_>,
    d: &Located<DocumentIndex>,
    entities: &BTreeMap<&str, &Entity>,
    views: &BTreeMap<&str, &FeatureView>,
    schemas: &HashMap<&str, Option<Vec<ColumnInfo>>>,
) {
    let idx = &d.def;
    match entities.get(idx.entity.as_str()) {
        None => ck.at(
            d,
            Some("entity"),
            &idx.entity,
            format!(
                "document index `{}` names unknown entity `{}`",
                idx.name, idx.entity
            ),
            did_you_mean(&idx.entity, entities.keys().copied()),
        ),
        Some(e) if e.join_keys.len() != 1 => ck.at(
            d,
            Some("entity"),
            &idx.entity,
            format!(
                "document index `{}`: entity `{}` has {} join keys, but a doc id is one value",
                idx.name,
                idx.entity,
                e.join_keys.len()
            ),
            Some("use an entity with a single join key, e.g. `join_keys: [doc_id]`".into()),
        ),
        Some(_) => {}
    }
    let c = &idx.chunking;
    if c.max_tokens == 0 {
        ck.at(
            d,
            Some("chunking"),
            "max_tokens",
            format!(
                "document index `{}`: chunking.max_tokens must be at least 1",
                idx.name
            ),
            None,
        );
    } else if c.overlap >= c.max_tokens {
        ck.at(
            d,
            Some("chunking"),
            "overlap",
            format!(
                "document index `{}`: chunking.overlap ({}) must be smaller than max_tokens ({})",
                idx.name, c.overlap, c.max_tokens
            ),
            None,
        );
    }
    if c.version != "v1" {
        ck.at(
            d,
            Some("chunking"),
            &c.version,
            format!(
                "document index `{}`: unknown chunker version `{}`",
                idx.name, c.version
            ),
            Some("this asof knows chunker `v1`".into()),
        );
    }
    let e = &idx.embedding;
    if e.dims == 0 || e.dims > MAX_DIMS {
        ck.at(
            d,
            Some("embedding"),
            "dims",
            format!(
                "document index `{}`: embedding.dims must be between 1 and {MAX_DIMS}, not {}",
                idx.name, e.dims
            ),
            None,
        );
    }
    if e.model.trim().is_empty() {
        ck.at(
            d,
            Some("embedding"),
            "model",
            format!("document index `{}`: embedding.model is empty", idx.name),
            None,
        );
    }
    if e.provider == EmbeddingProvider::Hashing && (e.url.is_some() || e.api_key_env.is_some()) {
        ck.at(
            d,
            Some("embedding"),
            "provider",
            format!(
                "document index `{}`: the hashing embedder runs locally and takes no url or api_key_env",
                idx.name
            ),
            Some("remove them, or use `provider: openai`".into()),
        );
    }
    if matches!(e.batch_size, Some(0)) || matches!(e.concurrency, Some(0)) {
        ck.at(
            d,
            Some("embedding"),
            "embedding",
            format!(
                "document index `{}`: embedding.batch_size and concurrency must be at least 1",
                idx.name
            ),
            None,
        );
    }
    for r in &idx.reranker_features {
        let (vname, fname) = match r.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (r.as_str(), None),
        };
        let Some(view) = views.get(vname) else {
            ck.at(
                d,
                Some("reranker_features"),
                vname,
                format!(
                    "document index `{}`: reranker feature `{r}` names unknown feature view `{vname}`",
                    idx.name
                ),
                did_you_mean(vname, views.keys().copied()),
            );
            continue;
        };
        if let Some(f) = fname
            && !view.feature_names().any(|n| n == f)
        {
            ck.at(
                d,
                Some("reranker_features"),
                f,
                format!(
                    "document index `{}`: view `{vname}` has no feature `{f}`",
                    idx.name
                ),
                did_you_mean(f, view.feature_names()),
            );
        }
        if view.entities != [idx.entity.clone()] {
            ck.at(
                d,
                Some("reranker_features"),
                vname,
                format!(
                    "document index `{}`: reranker feature view `{vname}` is keyed by [{}], not by the index's entity `{}` alone",
                    idx.name,
                    view.entities.join(", "),
                    idx.entity
                ),
                Some("reranker features are looked up by doc id: use views of the document entity".into()),
            );
            continue;
        }
        // Doc ids are strings; a view keyed by integers would never match one.
        let key = entities
            .get(idx.entity.as_str())
            .and_then(|e| e.join_keys.first());
        let column = key.and_then(|k| {
            schemas
                .get(view.source.as_str())?
                .as_ref()?
                .iter()
                .find(|c| &c.name == k)
        });
        if let (Some(k), Some(c)) = (key, column)
            && c.dtype != Some(DType::String)
        {
            ck.at(
                d,
                Some("reranker_features"),
                vname,
                format!(
                    "document index `{}`: doc ids are strings, but join key `{k}` of view `{vname}`'s source `{}` is {}",
                    idx.name, view.source, c.type_name
                ),
                Some(format!("store `{k}` as a string column")),
            );
        }
    }
}
