//! Arrow columns as [`asof_core::window::EventValues`], so the offline operator feeds the same
//! sliding-window rule the online store calls.

use std::cmp::Ordering;

use asof_core::window::EventValues;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DynComparator, Float32Array, Float64Array, Int32Array, Int64Array,
    make_comparator,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use datafusion::common::Result;

/// Typed access to the numeric columns sums read.
enum Numbers {
    Int32(Int32Array),
    Int64(Int64Array),
    Float32(Float32Array),
    Float64(Float64Array),
    None,
}

/// One aggregated column of every kept event, in the order the operator slides over.
pub(super) struct Column {
    array: ArrayRef,
    numbers: Numbers,
    /// Orders values the way `asof_core::window::compare_values` does (floats by total order).
    compare: Option<DynComparator>,
}

impl Column {
    pub(super) fn new(array: ArrayRef, ordered: bool) -> Result<Self> {
        let numbers = match array.data_type() {
            DataType::Int32 => Numbers::Int32(array.as_primitive::<Int32Type>().clone()),
            DataType::Int64 => Numbers::Int64(array.as_primitive::<Int64Type>().clone()),
            DataType::Float32 => Numbers::Float32(array.as_primitive::<Float32Type>().clone()),
            DataType::Float64 => Numbers::Float64(array.as_primitive::<Float64Type>().clone()),
            _ => Numbers::None,
        };
        let compare = if ordered && matches!(numbers, Numbers::None) {
            Some(make_comparator(&array, &array, SortOptions::default())?)
        } else {
            None
        };
        Ok(Column {
            array,
            numbers,
            compare,
        })
    }

    pub(super) fn array(&self) -> &ArrayRef {
        &self.array
    }

    /// The events `offset..` of this column (one key's run).
    pub(super) fn from(&self, offset: usize) -> Run<'_> {
        Run {
            column: self,
            offset,
        }
    }
}

/// A key's events within a [`Column`]: index 0 is the key's first event.
pub(super) struct Run<'a> {
    column: &'a Column,
    offset: usize,
}

impl EventValues for Run<'_> {
    #[inline]
    fn is_valid(&self, i: usize) -> bool {
        self.column.array.is_valid(self.offset + i)
    }

    #[inline]
    fn int(&self, i: usize) -> i64 {
        let i = self.offset + i;
        match &self.column.numbers {
            Numbers::Int32(a) => i64::from(a.value(i)),
            Numbers::Int64(a) => a.value(i),
            _ => 0,
        }
    }

    #[inline]
    fn float(&self, i: usize) -> f64 {
        let i = self.offset + i;
        match &self.column.numbers {
            Numbers::Int32(a) => f64::from(a.value(i)),
            Numbers::Int64(a) => a.value(i) as f64,
            Numbers::Float32(a) => f64::from(a.value(i)),
            Numbers::Float64(a) => a.value(i),
            Numbers::None => f64::NAN,
        }
    }

    #[inline]
    fn compare(&self, i: usize, j: usize) -> Ordering {
        let (i, j) = (self.offset + i, self.offset + j);
        // Numbers directly (the common case, and the hot loop of `min`/`max`); anything else
        // through arrow's comparator. Both order floats by IEEE total order.
        match &self.column.numbers {
            Numbers::Int32(a) => a.value(i).cmp(&a.value(j)),
            Numbers::Int64(a) => a.value(i).cmp(&a.value(j)),
            Numbers::Float32(a) => a.value(i).total_cmp(&a.value(j)),
            Numbers::Float64(a) => a.value(i).total_cmp(&a.value(j)),
            Numbers::None => match &self.column.compare {
                Some(c) => c(i, j),
                None => Ordering::Equal,
            },
        }
    }
}
