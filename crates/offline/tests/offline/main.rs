//! Integration tests of the offline store on real Parquet files: the ASOF operator against a
//! brute-force oracle on random tables (proptest), golden cases, and bad input.

mod golden;
mod oracle;
mod pit_props;
mod window_props;
