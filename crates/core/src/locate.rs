//! Finding where a definition or a reference sits in a YAML file, so that semantic errors (found after
//! parsing, when serde's positions are gone) still name a line and column.
//!
//! This works on the text: a top-level section (`feature_views:`) holds list items (`- name: x` or
//! `- {name: x, ...}`); an item's block runs to the next item of the same indentation. It handles the
//! block and flow styles the docs show; anything else falls back to the item's first line.

/// Where an item is declared: its `name:` value, and the lines its block spans (1-based, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Items of a top-level `section`, as (name, span).
pub fn items(text: &str, section: &str) -> Vec<(String, Span)> {
    let lines: Vec<&str> = text.lines().collect();
    let header = format!("{section}:");
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_end() == header || l.starts_with(&format!("{header} ")))
    else {
        return Vec::new();
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| !is_blank_or_comment(l) && indent(l) == 0 && !l.starts_with('-'))
        .map(|p| start + 1 + p)
        .unwrap_or(lines.len());
    let body = &lines[start + 1..end];
    let Some(item_indent) = body
        .iter()
        .find(|l| l.trim_start().starts_with('-'))
        .map(|l| indent(l))
    else {
        return Vec::new();
    };
    let starts: Vec<usize> = body
        .iter()
        .enumerate()
        .filter(|(_, l)| indent(l) == item_indent && l.trim_start().starts_with('-'))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let e = starts.get(n + 1).copied().unwrap_or(body.len());
        let first_line = start + 1 + s + 1;
        let mut span = Span {
            line: first_line,
            column: item_indent + 1,
            end_line: start + 1 + e,
        };
        let mut name = None;
        for (k, line) in body[s..e].iter().enumerate() {
            let content_start = if k == 0 { item_indent + 1 } else { 0 };
            let rest = &line[content_start.min(line.len())..];
            let rest_trim = rest.trim_start().trim_start_matches('{').trim_start();
            let own_level = k == 0 || indent(line) == item_indent + 2;
            if own_level && let Some(v) = rest_trim.strip_prefix("name:") {
                let value = first_scalar(v);
                let col = line.find(&value).map(|c| c + 1).unwrap_or(1);
                span.line = first_line + k;
                span.column = col;
                name = Some(value);
                break;
            }
            if k == 0
                && let Some(pos) = rest.find("{name:").or_else(|| rest.find(", name:"))
            {
                let v = &rest[pos..];
                let v = &v[v.find("name:").unwrap() + 5..];
                let value = first_scalar(v);
                span.column = line.find(&value).map(|c| c + 1).unwrap_or(1);
                name = Some(value);
                break;
            }
        }
        if let Some(name) = name {
            out.push((name, span));
        }
    }
    out
}

/// The lines of each list item under `key:` inside the block of lines `from..=to` (1-based,
/// inclusive): `(first line, last line)` per item, in order. Lets a check point at the `n`-th
/// entry of a nested list (two entries may share a name, so a name cannot find them).
pub fn nested_items(text: &str, from: usize, to: usize, key: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let to = to.min(lines.len());
    let header = format!("{key}:");
    let Some(k) = (from.max(1)..=to).find(|&n| {
        let t = lines[n - 1].trim_start().trim_start_matches("- ");
        t.trim_end() == header || t.starts_with(&format!("{header} "))
    }) else {
        return Vec::new();
    };
    let key_indent = indent(lines[k - 1]);
    let mut starts = Vec::new();
    let mut end = to;
    for n in k + 1..=to {
        let line = lines[n - 1];
        if is_blank_or_comment(line) {
            continue;
        }
        let i = indent(line);
        if line.trim_start().starts_with('-') && i >= key_indent && starts.is_empty()
            || starts.first().is_some_and(|&(_, first_indent)| {
                i == first_indent && line.trim_start().starts_with('-')
            })
        {
            starts.push((n, i));
        } else if i <= key_indent || starts.first().is_some_and(|&(_, fi)| i < fi) {
            end = n - 1;
            break;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(j, &(line, _))| {
            let last = starts.get(j + 1).map_or(end, |&(next, _)| next - 1);
            (line, last)
        })
        .collect()
}

/// The first scalar in `text`: unquoted up to `,`/`}`/`#`, or the inside of quotes.
fn first_scalar(text: &str) -> String {
    let t = text.trim_start();
    if let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
        return t[1..].split(q).next().unwrap_or("").to_string();
    }
    t.split([',', '}', '#'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Where `token` first stands as a whole word within lines `from..=to` (1-based); with `after`, only
/// on lines after one that contains it (e.g. `features:` within a view).
pub fn find_token(
    text: &str,
    from: usize,
    to: usize,
    after: Option<&str>,
    token: &str,
) -> Option<(usize, usize)> {
    let mut armed = after.is_none();
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .take(to + 1 - from.min(to + 1))
    {
        let lineno = i + 1;
        let mut search_from = 0;
        if !armed {
            match after.and_then(|a| line.find(a)) {
                Some(p) => {
                    armed = true;
                    search_from = p + after.map_or(0, str::len);
                }
                None => continue,
            }
        }
        let hay = &line[search_from..];
        let mut offset = 0;
        while let Some(p) = hay[offset..].find(token) {
            let at = offset + p;
            let before = hay[..at].chars().next_back();
            let after_c = hay[at + token.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !word(before) && !word(after_c) {
                return Some((lineno, search_from + at + 1));
            }
            offset = at + token.len();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_items_are_found_by_position_in_flow_and_block_style() {
        let text = "feature_views:\n  - name: v\n    aggregations:\n      - {name: a, window: 1d}\n      - name: a\n        window: 0\n    tags: {x: y}\n";
        assert_eq!(nested_items(text, 2, 7, "aggregations"), [(4, 4), (5, 6)]);
        assert!(nested_items(text, 2, 7, "features").is_empty());
    }

    const TEXT: &str = "\
entities:
  - name: driver
    join_keys: [driver_id]
  - {name: customer, join_keys: [customer_id]}
feature_views:
  - name: stats
    entities: [drivr]
    features:
      - {name: conv_rate, dtype: float32}
";

    #[test]
    fn finds_block_and_flow_items() {
        let e = items(TEXT, "entities");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, "driver");
        assert_eq!((e[0].1.line, e[0].1.column), (2, 11));
        assert_eq!(e[1].0, "customer");
        assert_eq!(e[1].1.line, 4);
        let v = items(TEXT, "feature_views");
        assert_eq!(v.len(), 1, "nested feature items are not views");
        assert_eq!(v[0].0, "stats");
        assert_eq!(v[0].1.end_line, 9);
    }

    #[test]
    fn finds_whole_word_tokens() {
        assert_eq!(find_token(TEXT, 6, 9, None, "drivr"), Some((7, 16)));
        assert_eq!(
            find_token(TEXT, 6, 9, Some("features:"), "conv_rate"),
            Some((9, 16))
        );
        assert_eq!(find_token(TEXT, 1, 9, None, "conv"), None);
    }
}
