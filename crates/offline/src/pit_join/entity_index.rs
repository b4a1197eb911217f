//! The build side of the join: the entity rows grouped by key and ordered by time, so that a feature
//! row finds the first entity row that may see it with one hash lookup and one binary search.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::Result;
use hashbrown::HashMap;

/// Key columns to dense group ids. One integer key is hashed as an `i64`, the common case and the
/// fast one; anything else (strings, composite keys) goes through arrow's row encoding, whose bytes
/// are equal exactly when the keys are.
#[derive(Debug)]
enum KeyMap {
    Int(HashMap<i64, u32>),
    Rows {
        converter: RowConverter,
        map: HashMap<Box<[u8]>, u32>,
    },
}

fn is_int_key(types: &[DataType]) -> bool {
    matches!(
        types,
        [DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32]
    )
}

fn int_keys(column: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(column, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn all_valid(keys: &[ArrayRef], i: usize) -> bool {
    keys.iter().all(|k| k.is_valid(i))
}

impl KeyMap {
    fn new(types: &[DataType]) -> Result<Self> {
        Ok(if is_int_key(types) {
            KeyMap::Int(HashMap::new())
        } else {
            let fields = types.iter().cloned().map(SortField::new).collect();
            KeyMap::Rows {
                converter: RowConverter::new(fields)?,
                map: HashMap::new(),
            }
        })
    }

    /// Per row, the group id of its key (`None` for a null in any key column); unseen keys get
    /// the next id.
    fn insert(&mut self, keys: &[ArrayRef]) -> Result<Vec<Option<u32>>> {
        match self {
            KeyMap::Int(map) => {
                let ints = int_keys(&keys[0])?;
                Ok(ints
                    .iter()
                    .map(|key| {
                        let next = map.len() as u32;
                        key.map(|k| *map.entry(k).or_insert(next))
                    })
                    .collect())
            }
            KeyMap::Rows { converter, map } => {
                let rows = converter.convert_columns(keys)?;
                Ok((0..rows.num_rows())
                    .map(|i| {
                        if !all_valid(keys, i) {
                            return None;
                        }
                        let bytes = rows.row(i);
                        let bytes = bytes.as_ref();
                        Some(match map.get(bytes) {
                            Some(g) => *g,
                            None => {
                                let next = map.len() as u32;
                                map.insert(bytes.into(), next);
                                next
                            }
                        })
                    })
                    .collect())
            }
        }
    }

    /// Per row, the group id of its key; `None` for a null or a key no entity row has.
    fn lookup(&self, keys: &[ArrayRef]) -> Result<Vec<Option<u32>>> {
        match self {
            KeyMap::Int(map) => {
                let ints = int_keys(&keys[0])?;
                Ok(ints
                    .iter()
                    .map(|key| key.and_then(|k| map.get(&k).copied()))
                    .collect())
            }
            KeyMap::Rows { converter, map } => {
                let rows = converter.convert_columns(keys)?;
                Ok((0..rows.num_rows())
                    .map(|i| {
                        all_valid(keys, i)
                            .then(|| map.get(rows.row(i).as_ref()).copied())
                            .flatten()
                    })
                    .collect())
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            KeyMap::Int(m) => m.len(),
            KeyMap::Rows { map, .. } => map.len(),
        }
    }

    fn memory_size(&self) -> usize {
        match self {
            KeyMap::Int(m) => m.allocation_size(),
            KeyMap::Rows { converter, map } => {
                converter.size()
                    + map.allocation_size()
                    + map.keys().map(|k| k.len()).sum::<usize>()
            }
        }
    }
}

/// The entity rows that can match (key and time not null), as "slots": sorted by key group, then
/// by time. A feature row known from time `v` belongs to the first slot of its key whose time is
/// `>= v`; every later slot of that key sees it too, which the final prefix pass accounts for.
#[derive(Debug)]
pub(crate) struct EntityIndex {
    keys: KeyMap,
    /// Slot -> entity row number.
    pub(crate) rows: Vec<u32>,
    /// Slot -> entity time (UTC ns).
    pub(crate) times: Vec<i64>,
    /// Group `g` owns slots `starts[g]..starts[g + 1]`.
    pub(crate) starts: Vec<u32>,
}

impl EntityIndex {
    /// Indexes `entities`, whose first `key_count` columns are the keys and column `ts` the time.
    pub(crate) fn build(entities: &RecordBatch, key_count: usize, ts: usize) -> Result<Self> {
        let key_cols = &entities.columns()[..key_count];
        let types: Vec<DataType> = key_cols.iter().map(|c| c.data_type().clone()).collect();
        let mut keys = KeyMap::new(&types)?;
        let times_col: &Int64Array = entities.column(ts).as_primitive();
        let groups = keys.insert(key_cols)?;
        // Counting sort by group keeps each group's rows in input order; then each group is
        // sorted by time (stable, so equal times keep input order too).
        let mut starts = vec![0u32; keys.len() + 1];
        for (i, g) in groups.iter().enumerate() {
            if let Some(g) = g
                && times_col.is_valid(i)
            {
                starts[*g as usize + 1] += 1;
            }
        }
        for g in 0..keys.len() {
            starts[g + 1] += starts[g];
        }
        let total = *starts.last().expect("at least one entry") as usize;
        let mut fill = starts.clone();
        let mut rows = vec![0u32; total];
        for (i, g) in groups.iter().enumerate() {
            if let Some(g) = g
                && times_col.is_valid(i)
            {
                rows[fill[*g as usize] as usize] = i as u32;
                fill[*g as usize] += 1;
            }
        }
        let times_of = times_col.values();
        for g in 0..keys.len() {
            let slots = &mut rows[starts[g] as usize..starts[g + 1] as usize];
            slots.sort_by_key(|&r| times_of[r as usize]);
        }
        let times = rows.iter().map(|&r| times_of[r as usize]).collect();
        Ok(EntityIndex {
            keys,
            rows,
            times,
            starts,
        })
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.rows.len()
    }

    /// Per row of a feature batch's key columns, the key's group (`None`: null, or a key no entity
    /// row has).
    pub(crate) fn groups_of(&self, keys: &[ArrayRef]) -> Result<Vec<Option<u32>>> {
        self.keys.lookup(keys)
    }

    /// The first slot of group `g` whose time is `>= known_from`, if any.
    #[inline]
    pub(crate) fn slot_for(&self, g: u32, known_from: i64) -> Option<usize> {
        let (lo, hi) = (
            self.starts[g as usize] as usize,
            self.starts[g as usize + 1] as usize,
        );
        let p = self.times[lo..hi].partition_point(|&t| t < known_from);
        (lo + p < hi).then_some(lo + p)
    }

    /// Slot ranges of each key group, in slot order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.starts.windows(2).map(|w| w[0] as usize..w[1] as usize)
    }

    pub(crate) fn memory_size(&self) -> usize {
        self.keys.memory_size()
            + self.rows.capacity() * 4
            + self.times.capacity() * 8
            + self.starts.capacity() * 4
    }
}
