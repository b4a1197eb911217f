//! Aggregated views online: an entity's events read from its log, aggregated as of the request's
//! time by the same rule ([`asof_core::window`]) the offline operator slides, so serving equals
//! the training set at every `as_of` the log still covers (events back to the longest window
//! before the key's newest one).

use asof_core::ResolvedView;
use asof_core::spec::{Aggregation, Feature};
use asof_core::value::{StoredEvent, Value, header};
use asof_core::window::{self, Function, Output};

use crate::error::{ServerError, ServerResult};

/// One entity's answer: the newest event time in the longest window (`None`: no event there) and
/// the value of each requested aggregation, in request order.
#[derive(Debug)]
pub struct Aggregated {
    pub newest: Option<i64>,
    pub values: Vec<Value>,
}

/// A request's reads of one aggregated view as of one time, prepared once for all its entities.
#[derive(Debug)]
pub struct Aggregator<'v> {
    /// The columns a stored event carries (`FeatureView::event_columns`).
    columns: Vec<Feature>,
    /// Per requested feature: its aggregation and the index of its column among `columns`.
    requested: Vec<(&'v Aggregation, Option<usize>)>,
    longest: i64,
    as_of: i64,
    /// The byte range of an entity's log the read needs: events in the longest window.
    pub from: Vec<u8>,
    pub to: Vec<u8>,
}

impl<'v> Aggregator<'v> {
    pub fn new(view: &'v ResolvedView, as_of: i64) -> Self {
        let columns = view.view.event_columns();
        let requested = view
            .features
            .iter()
            .map(|f| {
                let a = view
                    .view
                    .aggregations
                    .iter()
                    .find(|a| a.name == f.name)
                    .expect("an aggregated view's features are its aggregations");
                let column = a
                    .column
                    .as_ref()
                    .and_then(|c| columns.iter().position(|x| &x.name == c));
                (a, column)
            })
            .collect();
        let longest = view.view.longest_window().unwrap_or(i64::MAX);
        Aggregator {
            columns,
            requested,
            longest,
            as_of,
            from: header(window::oldest_in_window(as_of, longest), None),
            to: header(as_of.saturating_add(1), None),
        }
    }

    /// Aggregates an entity's log members in `from..to`.
    pub fn aggregate(&self, members: &[Vec<u8>]) -> ServerResult<Aggregated> {
        let corrupt = |e: asof_core::value::DecodeError| ServerError::Transport(e.to_string());
        // Decoded column by column; `order` is each event's (ts, created, ordinal), the order
        // `last` breaks ties by.
        let mut order: Vec<(i64, i64, u32)> = Vec::with_capacity(members.len());
        let mut column_values: Vec<Vec<Value>> = (0..self.columns.len())
            .map(|_| Vec::with_capacity(members.len()))
            .collect();
        for m in members {
            let (row, ordinal) = StoredEvent::read(m).map_err(corrupt)?;
            order.push((row.event_ts, row.created_ts.unwrap_or(i64::MIN), ordinal));
            for column in &mut column_values {
                column.push(Value::Null);
            }
            for field in row {
                let field = field.map_err(corrupt)?;
                if let Some(i) = self
                    .columns
                    .iter()
                    .position(|c| c.name.as_bytes() == field.name)
                {
                    *column_values[i].last_mut().expect("pushed above") =
                        field.value().map_err(corrupt)?;
                }
            }
        }
        // Members come in byte order, which is (ts, created) order; only ties on both can be out
        // of ordinal order.
        if !order.is_sorted() {
            let mut by: Vec<usize> = (0..order.len()).collect();
            by.sort_by_key(|&e| order[e]);
            order = by.iter().map(|&e| order[e]).collect();
            for column in &mut column_values {
                *column = by
                    .iter()
                    .map(|&e| std::mem::replace(&mut column[e], Value::Null))
                    .collect();
            }
        }
        let ts: Vec<i64> = order.iter().map(|e| e.0).collect();
        let mut newest = None;
        window::newest_in_window(&ts, self.longest, &[self.as_of], |_, t| newest = t);
        let mut values = Vec::with_capacity(self.requested.len());
        for (a, column) in &self.requested {
            let column = column.map(|i| column_values[i].as_slice());
            let mut out = Output::Count(0);
            window::slide(
                a.function,
                a.window_nanos(),
                a.dtype.as_ref(),
                &ts,
                column,
                &[self.as_of],
                |_, o| out = o,
            );
            values.push(match out {
                Output::Count(n) => Value::Int64(n),
                Output::Int(v) => v.map_or(Value::Null, Value::Int64),
                Output::Float(v) => v.map_or(Value::Null, Value::Float64),
                Output::Pick(i) => match (i, column) {
                    (Some(i), Some(c)) => c[i].clone(),
                    _ => Value::Null,
                },
            });
        }
        Ok(Aggregated { newest, values })
    }

    /// The value of requested feature `feature` for an entity with no events (a null key): what
    /// the rule answers over an empty window.
    pub fn empty_value(&self, feature: usize) -> Value {
        match self.requested[feature].0.function {
            Function::Count => Value::Int64(0),
            _ => Value::Null,
        }
    }
}
