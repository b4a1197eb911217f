//! Scalar feature values and the stored row format shared by every online store.
//!
//! A stored row is `header | payload`. The header is 32 ASCII hex digits: the event timestamp then the
//! created timestamp (absent = all zeros), each an i64 with its sign bit flipped, so that comparing
//! headers as bytes compares `(event_ts, created_ts)`. Stores compare headers to refuse a write older
//! than what they hold (Redis does it inside a script, atomically). The payload is
//! `n: u16 LE | n × (name_len: u16 LE | name | value)`, features by name so that a view can gain
//! features without invalidating rows already written.
//!
//! A delete event is stored like a row, header and all, with the feature count [`DELETED`] and no
//! features: it orders against values by the same header comparison, so a late, older value never
//! resurrects a deleted entity, and readers see it as "no value" ([`crate::pit`]).

use crate::time::Nanos;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Nanoseconds since the epoch, UTC.
    Timestamp(Nanos),
    List(Vec<Value>),
}

pub const HEADER_LEN: usize = 32;

/// The feature count that marks a stored delete event (no view has that many features).
pub const DELETED: u16 = u16::MAX;

/// The stored form of "this entity has no value from `event_ts` on".
pub fn encode_delete(event_ts: Nanos, created_ts: Option<Nanos>) -> Vec<u8> {
    let mut out = header(event_ts, created_ts);
    out.extend_from_slice(&DELETED.to_le_bytes());
    out
}

/// One view's row for one entity, as stored online.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub event_ts: Nanos,
    pub created_ts: Option<Nanos>,
    pub features: Vec<(String, Value)>,
}

fn ordered_hex(v: i64, out: &mut Vec<u8>) {
    let u = (v as u64) ^ (1u64 << 63);
    out.extend_from_slice(format!("{u:016x}").as_bytes());
}

/// Reads 16 lowercase hex digits (as `ordered_hex` writes them) without UTF-8 or radix parsing:
/// every served row goes through here.
fn parse_ordered_hex(b: &[u8]) -> Option<i64> {
    if b.len() != 16 {
        return None;
    }
    let mut u = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        u = (u << 4) | u64::from(d);
    }
    Some((u ^ (1u64 << 63)) as i64)
}

/// The byte-comparable header of a row with these timestamps.
pub fn header(event_ts: Nanos, created_ts: Option<Nanos>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    ordered_hex(event_ts, &mut out);
    match created_ts {
        Some(c) => ordered_hex(c, &mut out),
        None => out.extend_from_slice(&[b'0'; 16]),
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error("stored row is corrupt: {0}")]
pub struct DecodeError(&'static str);

impl StoredRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(self.event_ts, self.created_ts);
        out.extend_from_slice(&(self.features.len() as u16).to_le_bytes());
        for (name, v) in &self.features {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            encode_value(v, &mut out);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<StoredRow, DecodeError> {
        let row = RowReader::new(bytes)?;
        let (event_ts, created_ts) = (row.event_ts, row.created_ts);
        let features = row
            .map(|field| {
                let field = field?;
                Ok((field.name()?.to_string(), field.value()?))
            })
            .collect::<Result<_, _>>()?;
        Ok(StoredRow {
            event_ts,
            created_ts,
            features,
        })
    }
}

/// One event of an aggregated view, as its per-key event log stores it: the row encoding of its
/// timestamps and columns, then its ordinal (big-endian u32) among the events of the same write
/// with equal key, event and created times. The bytes are the event's identity: writing the same
/// event again (a replayed push, a second materialization) adds nothing, while two equal events of
/// one write differ by their ordinal and both count. Logs order members as bytes, so a range of
/// headers ([`header`]) is a range of event times.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub row: StoredRow,
    pub ordinal: u32,
}

impl StoredEvent {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.row.encode();
        out.extend_from_slice(&self.ordinal.to_be_bytes());
        out
    }

    /// What an event log whose newest stored member is `stored` keeps of a write of `members`:
    /// the members to add and the header below which it keeps nothing, that is the oldest event
    /// time a read at or after the log's newest event (stored or new) can use, `horizon` being
    /// the view's longest window. `None` when there is nothing to write or keep.
    pub fn admit<'m>(
        members: &'m [Vec<u8>],
        stored: Option<&[u8]>,
        horizon: i64,
    ) -> Option<(Vec<&'m [u8]>, Vec<u8>)> {
        let newest = members.iter().map(Vec::as_slice).chain(stored).max()?;
        let ts = parse_ordered_hex(newest.get(..16).unwrap_or_default()).unwrap_or(i64::MIN);
        let keep_from = header(crate::window::oldest_in_window(ts, horizon), None);
        let kept = members
            .iter()
            .map(Vec::as_slice)
            .filter(|m| *m >= keep_from.as_slice())
            .collect();
        Some((kept, keep_from))
    }

    /// The event's ordinal and a reader over its row.
    pub fn read(bytes: &[u8]) -> Result<(RowReader<'_>, u32), DecodeError> {
        let split = bytes
            .len()
            .checked_sub(4)
            .ok_or(DecodeError("event too short"))?;
        let ordinal = u32::from_be_bytes(bytes[split..].try_into().expect("four bytes"));
        Ok((RowReader::new(&bytes[..split])?, ordinal))
    }
}

/// A stored row read in place: its timestamps, then its features in stored order, each decoded
/// only if asked. Serving reads rows this way to decode just the requested features, with no name
/// allocated or validated per feature per row; [`StoredRow::decode`] is this reader, collected.
#[derive(Debug)]
pub struct RowReader<'a> {
    pub event_ts: Nanos,
    pub created_ts: Option<Nanos>,
    /// A delete event: it has no features.
    pub deleted: bool,
    remaining: u16,
    r: Reader<'a>,
}

impl<'a> RowReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN + 2 {
            return Err(DecodeError("too short"));
        }
        let event_ts = parse_ordered_hex(&bytes[..16]).ok_or(DecodeError("bad event timestamp"))?;
        let created = &bytes[16..32];
        let created_ts = if created.iter().all(|b| *b == b'0') {
            None
        } else {
            Some(parse_ordered_hex(created).ok_or(DecodeError("bad created timestamp"))?)
        };
        let mut r = Reader {
            b: &bytes[HEADER_LEN..],
        };
        let count = r.u16()?;
        let deleted = count == DELETED;
        Ok(RowReader {
            event_ts,
            created_ts,
            deleted,
            remaining: if deleted { 0 } else { count },
            r,
        })
    }
}

/// One stored feature, not yet decoded.
#[derive(Debug, Clone, Copy)]
pub struct StoredField<'a> {
    /// The name's bytes: compare them with a wanted name's bytes to skip UTF-8 validation.
    pub name: &'a [u8],
    value: &'a [u8],
}

impl<'a> StoredField<'a> {
    pub fn name(&self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.name).map_err(|_| DecodeError("bad name"))
    }

    pub fn value(&self) -> Result<Value, DecodeError> {
        Reader { b: self.value }.value()
    }
}

impl<'a> Iterator for RowReader<'a> {
    type Item = Result<StoredField<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut feature = || {
            let len = self.r.u16()? as usize;
            let name = self.r.take(len)?;
            let value = self.r.encoded_value()?;
            Ok(StoredField { name, value })
        };
        let item = feature();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int32(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Int64(i) => {
            out.push(3);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float32(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float64(f) => {
            out.push(5);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            out.push(6);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(7);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::List(items) => {
            out.push(9);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for i in items {
                encode_value(i, out);
            }
        }
    }
}

#[derive(Debug)]
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    /// The next value's bytes (tag included), skipped over without decoding. Its layout must
    /// match [`Reader::value`]'s.
    fn encoded_value(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.b;
        self.skip_value()?;
        Ok(&start[..start.len() - self.b.len()])
    }

    fn skip_value(&mut self) -> Result<(), DecodeError> {
        let len = match self.take(1)?[0] {
            0 => 0,
            1 => 1,
            2 | 4 => 4,
            3 | 5 | 8 => 8,
            6 | 7 => self.u32()? as usize,
            9 => {
                for _ in 0..self.u32()? {
                    self.skip_value()?;
                }
                0
            }
            _ => return Err(DecodeError("unknown value tag")),
        };
        self.take(len).map(drop)
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(self.take(1)?[0] != 0),
            2 => Value::Int32(i32::from_le_bytes(self.arr()?)),
            3 => Value::Int64(i64::from_le_bytes(self.arr()?)),
            4 => Value::Float32(f32::from_le_bytes(self.arr()?)),
            5 => Value::Float64(f64::from_le_bytes(self.arr()?)),
            6 => {
                let n = self.u32()? as usize;
                Value::String(
                    String::from_utf8(self.take(n)?.to_vec())
                        .map_err(|_| DecodeError("bad utf-8"))?,
                )
            }
            7 => {
                let n = self.u32()? as usize;
                Value::Bytes(self.take(n)?.to_vec())
            }
            8 => Value::Timestamp(i64::from_le_bytes(self.arr()?)),
            9 => {
                let n = self.u32()? as usize;
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Value::List(items)
            }
            _ => return Err(DecodeError("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_every_type() {
        let row = StoredRow {
            event_ts: -5,
            created_ts: Some(7),
            features: vec![
                ("a".into(), Value::Null),
                ("b".into(), Value::Bool(true)),
                ("c".into(), Value::Int32(-3)),
                ("d".into(), Value::Int64(i64::MAX)),
                ("e".into(), Value::Float32(1.5)),
                ("f".into(), Value::Float64(-2.25)),
                ("g".into(), Value::String("héllo".into())),
                ("h".into(), Value::Bytes(vec![0, 255])),
                ("i".into(), Value::Timestamp(123)),
                (
                    "j".into(),
                    Value::List(vec![Value::Float32(0.5), Value::Null]),
                ),
            ],
        };
        assert_eq!(StoredRow::decode(&row.encode()).unwrap(), row);
        assert!(StoredRow::decode(&row.encode()[..40]).is_err());
        let mut header = row.encode();
        header[3] = b'G';
        assert!(
            StoredRow::decode(&header).is_err(),
            "a non-hex header digit"
        );
    }

    /// A field's value is decoded only when asked: a bad value is reported for that field and
    /// does not stop the reader from reaching the fields after it.
    #[test]
    fn fields_decode_on_demand() {
        let row = StoredRow {
            event_ts: 1,
            created_ts: None,
            features: vec![
                ("list".into(), Value::List(vec![Value::String("x".into())])),
                ("text".into(), Value::String("ok".into())),
                ("n".into(), Value::Int64(42)),
            ],
        };
        let mut bytes = row.encode();
        let ok = bytes.windows(2).position(|w| w == b"ok").unwrap();
        bytes[ok] = 0xff;
        let fields: Vec<StoredField<'_>> = RowReader::new(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let names: Vec<&[u8]> = fields.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"list"[..], b"text", b"n"]);
        assert_eq!(fields[0].value().unwrap(), row.features[0].1);
        assert!(
            fields[1].value().is_err(),
            "invalid UTF-8 in a string value"
        );
        assert_eq!(fields[2].value().unwrap(), Value::Int64(42));
    }

    #[test]
    fn a_delete_is_a_row_without_features_that_orders_by_its_header() {
        let bytes = encode_delete(10, Some(3));
        let row = RowReader::new(&bytes).unwrap();
        assert!(row.deleted);
        assert_eq!((row.event_ts, row.created_ts), (10, Some(3)));
        assert_eq!(row.count(), 0);
        let value = StoredRow {
            event_ts: 9,
            created_ts: None,
            features: vec![("x".into(), Value::Int64(1))],
        }
        .encode();
        assert!(!RowReader::new(&value).unwrap().deleted);
        assert!(
            bytes[..HEADER_LEN] > value[..HEADER_LEN],
            "the later event wins"
        );
    }

    proptest! {
        #[test]
        fn header_bytes_order_like_timestamps(a in any::<i64>(), b in any::<i64>(), ca in proptest::option::of(any::<i64>()), cb in proptest::option::of(any::<i64>())) {
            let ha = header(a, ca);
            let hb = header(b, cb);
            // Absent created sorts below every present one except i64::MIN (which encodes as zeros too).
            let key = |t: i64, c: Option<i64>| (t, c.unwrap_or(i64::MIN));
            prop_assert_eq!(ha.cmp(&hb), key(a, ca).cmp(&key(b, cb)));
        }
    }
}
