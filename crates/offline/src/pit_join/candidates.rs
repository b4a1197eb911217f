//! The probe side: one pass over a partition of feature rows, keeping per entity slot the latest
//! feature row that belongs to it, and only the payload of rows that still hold a slot.

use std::sync::Arc;

use asof_core::pit;
use datafusion::arrow::array::{Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{interleave_record_batch, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;

use super::PitJoinOptions;
use super::entity_index::EntityIndex;
use crate::keyed_inputs::nanos;

/// A feature row held by a slot: its ordering fields and where its payload lives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) ts: i64,
    pub(super) created: Option<i64>,
    batch: u32,
    row: u32,
}

impl Held {
    #[inline]
    pub(super) fn newer_than(&self, other: &Held) -> bool {
        pit::newer((self.ts, self.created), (other.ts, other.created))
    }

    /// (batch, row) of its payload among its partition's [`Candidates::payload`].
    pub(super) fn location(&self) -> (usize, usize) {
        (self.batch as usize, self.row as usize)
    }
}

/// One probe partition's result: per slot the latest row that belongs to it (not yet propagated to
/// later slots of the same key), and the payload batches those rows point into.
#[derive(Debug)]
pub(super) struct Candidates {
    pub(super) best: Vec<Option<Held>>,
    /// Payload columns (the feature side's non-key columns) of held rows only.
    batches: Vec<RecordBatch>,
    payload_schema: SchemaRef,
    retained_rows: usize,
    held: usize,
    /// Feature rows read, and rows that belonged to a slot (within time and TTL).
    pub(super) rows_in: usize,
    pub(super) rows_used: usize,
}

impl Candidates {
    /// Memory per entity slot, before any payload is held.
    pub(super) const BYTES_PER_SLOT: usize = size_of::<Option<Held>>();

    pub(super) fn new(slots: usize, payload_schema: SchemaRef) -> Self {
        Candidates {
            best: vec![None; slots],
            batches: Vec::new(),
            payload_schema,
            retained_rows: 0,
            held: 0,
            rows_in: 0,
            rows_used: 0,
        }
    }

    /// Folds one feature batch in. Rows outside every slot's reach (no entity row of that key at
    /// or after the row became known, or too old for the TTL of the slot they belong to) are
    /// dropped here: the TTL of a later slot is stricter still.
    pub(super) fn add_batch(
        &mut self,
        batch: &RecordBatch,
        index: &EntityIndex,
        options: &PitJoinOptions,
    ) -> Result<()> {
        let n = batch.num_rows();
        self.rows_in += n;
        if n == 0 {
            return Ok(());
        }
        let k = options.key_count;
        let groups = index.groups_of(&batch.columns()[..k])?;
        let ts = nanos("PitJoinExec", batch, options.right_ts)?;
        let created = options
            .right_created
            .map(|c| nanos("PitJoinExec", batch, c))
            .transpose()?;
        let id = self.batches.len() as u32;
        let mut touched: Vec<u32> = Vec::new();
        for (row, group) in groups.into_iter().enumerate() {
            let Some(g) = group else { continue };
            if ts.is_null(row) {
                continue;
            }
            let t = ts.value(row);
            let c = created
                .as_ref()
                .and_then(|c| c.is_valid(row).then(|| c.value(row)));
            let Some(slot) = index.slot_for(g, pit::known_from(t, c, options.filter_by_created))
            else {
                continue;
            };
            if !pit::within_ttl(t, index.times[slot], options.ttl) {
                continue;
            }
            self.rows_used += 1;
            let held = Held {
                ts: t,
                created: c,
                batch: id,
                row: row as u32,
            };
            let entry = &mut self.best[slot];
            if entry.is_none_or(|b| held.newer_than(&b)) {
                if entry.is_none() {
                    self.held += 1;
                }
                *entry = Some(held);
                touched.push(slot as u32);
            }
        }
        self.retain(batch, id, touched, k)?;
        if self.retained_rows > 2 * self.held + 65_536 {
            self.compact()?;
        }
        Ok(())
    }

    /// Keeps the payload of this batch's rows that still hold a slot, renumbered densely.
    fn retain(&mut self, batch: &RecordBatch, id: u32, touched: Vec<u32>, k: usize) -> Result<()> {
        let mut slots: Vec<u32> = touched
            .into_iter()
            .filter(|&s| self.best[s as usize].is_some_and(|h| h.batch == id))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        if slots.is_empty() {
            return Ok(());
        }
        let rows: Vec<u32> = slots
            .iter()
            .map(|&s| self.best[s as usize].expect("filtered above").row)
            .collect();
        for (new_row, &s) in slots.iter().enumerate() {
            if let Some(h) = self.best[s as usize].as_mut() {
                h.row = new_row as u32;
            }
        }
        let payload = RecordBatch::try_new(
            Arc::clone(&self.payload_schema),
            batch.columns()[k..].to_vec(),
        )?;
        let kept = take_record_batch(&payload, &UInt32Array::from(rows))?;
        self.retained_rows += kept.num_rows();
        self.batches.push(kept);
        Ok(())
    }

    /// Copies the payload of every held row into one batch, dropping rows that lost their slot.
    fn compact(&mut self) -> Result<()> {
        let mut refs = Vec::with_capacity(self.held);
        for h in self.best.iter_mut().flatten() {
            refs.push((h.batch as usize, h.row as usize));
            h.batch = 0;
            h.row = refs.len() as u32 - 1;
        }
        let sources: Vec<&RecordBatch> = self.batches.iter().collect();
        let merged = interleave_record_batch(&sources, &refs)?;
        self.retained_rows = merged.num_rows();
        self.batches = vec![merged];
        Ok(())
    }

    /// The payload batches, for the final gather.
    pub(super) fn payload(&self) -> &[RecordBatch] {
        &self.batches
    }

    pub(super) fn memory_size(&self) -> usize {
        self.best.capacity() * Self::BYTES_PER_SLOT
            + self
                .batches
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum::<usize>()
    }
}
