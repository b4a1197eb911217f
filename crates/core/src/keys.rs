//! The online key layout: a stable, versioned binary encoding of entity keys, and the store key of a
//! (project, view, entity) triple. Materialization, pushes and serving all build keys here, so a
//! value written by one path is always found by the others.
//!
//! Entity key, version 1:
//! `0x01 | n: u8 | n × (name_len: u16 LE | name | tag: u8 | len: u32 LE | bytes)`, join keys sorted by
//! name (reordering a view's entities does not move its data). Integers of any width encode as i64
//! (tag `i`, 8 bytes LE) so an int32 key in one table finds an int64 key in another; strings use tag
//! `s`, bytes tag `b`.
//!
//! Store key: `asof:{project}:{view}:` followed by the entity key. Per-view keys let a deleted view's
//! data be removed, and a view's expiry never touch another view's values.

use crate::value::Value;

pub const ENTITY_KEY_VERSION: u8 = 1;

/// A join-key value. Only these types identify entities; others are rejected before encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    Int(i64),
    Str(String),
    Bytes(Vec<u8>),
}

/// The type of a join key, as the key encoding holds it: what a request's key values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Int,
    String,
    Bytes,
}

impl KeyType {
    /// "an integer", "a string", "bytes": for messages.
    pub fn described(self) -> &'static str {
        match self {
            KeyType::Int => "an integer",
            KeyType::String => "a string",
            KeyType::Bytes => "bytes",
        }
    }
}

impl KeyValue {
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::Int(_) => KeyType::Int,
            KeyValue::Str(_) => KeyType::String,
            KeyValue::Bytes(_) => KeyType::Bytes,
        }
    }

    /// The key value for a scalar, or `None` for nulls and types that cannot be keys.
    pub fn from_value(v: &Value) -> Option<KeyValue> {
        match v {
            Value::Int32(i) => Some(KeyValue::Int(i64::from(*i))),
            Value::Int64(i) => Some(KeyValue::Int(*i)),
            Value::String(s) => Some(KeyValue::Str(s.clone())),
            Value::Bytes(b) => Some(KeyValue::Bytes(b.clone())),
            _ => None,
        }
    }
}

/// Encodes one entity's key: `names[i]` holds `values[i]`.
pub fn encode_entity_key(names: &[&str], values: &[&KeyValue]) -> Vec<u8> {
    debug_assert_eq!(names.len(), values.len());
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    let mut out = Vec::with_capacity(2 + names.len() * 24);
    out.push(ENTITY_KEY_VERSION);
    out.push(u8::try_from(names.len()).expect("fewer than 256 join keys"));
    for i in order {
        let name = names[i].as_bytes();
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        let (tag, bytes): (u8, &[u8]) = match values[i] {
            KeyValue::Int(v) => {
                out.push(b'i');
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
                continue;
            }
            KeyValue::Str(s) => (b's', s.as_bytes()),
            KeyValue::Bytes(b) => (b'b', b),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The prefix every store key of a view starts with.
pub fn view_prefix(project: &str, view: &str) -> Vec<u8> {
    prefix_with_room(project, view, 0)
}

/// The prefix of every store key of a view and of no other key: the view prefix and the entity
/// key's version byte. Project and view names hold no `:` (validation rejects it), so project `p`
/// view `v` can never be a prefix of project `p:v`'s keys; the version byte makes the match exact
/// even so. Deleting a view removes exactly the keys under this prefix.
pub fn view_keys_prefix(project: &str, view: &str) -> Vec<u8> {
    let mut k = prefix_with_room(project, view, 1);
    k.push(ENTITY_KEY_VERSION);
    k
}

/// The prefix, in a buffer with `room` more bytes reserved: serving builds a key per entity row.
fn prefix_with_room(project: &str, view: &str, room: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(7 + project.len() + view.len() + room);
    for part in [
        b"asof:".as_slice(),
        project.as_bytes(),
        b":",
        view.as_bytes(),
        b":",
    ] {
        k.extend_from_slice(part);
    }
    k
}

/// The name an aggregated view's event logs are kept under: a namespace of its own (`#` is in no
/// identifier), so a view that turns from plain to aggregated never finds its old rows there.
fn events_namespace(view: &str) -> String {
    format!("{view}#events")
}

/// The store key of an entity's event log in an aggregated view.
pub fn events_key(project: &str, view: &str, entity_key: &[u8]) -> Vec<u8> {
    store_key(project, &events_namespace(view), entity_key)
}

/// The prefix of every event log of a view ([`view_keys_prefix`] for its rows).
pub fn view_events_prefix(project: &str, view: &str) -> Vec<u8> {
    view_keys_prefix(project, &events_namespace(view))
}

/// The store key of an entity's row in a view.
pub fn store_key(project: &str, view: &str, entity_key: &[u8]) -> Vec<u8> {
    let mut k = prefix_with_room(project, view, entity_key.len());
    k.extend_from_slice(entity_key);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_names_does_not_matter_and_int_widths_agree() {
        let a = encode_entity_key(
            &["b", "a"],
            &[&KeyValue::Int(1), &KeyValue::Str("x".into())],
        );
        let b = encode_entity_key(
            &["a", "b"],
            &[&KeyValue::Str("x".into()), &KeyValue::Int(1)],
        );
        assert_eq!(a, b);
        assert_eq!(
            KeyValue::from_value(&Value::Int32(7)),
            KeyValue::from_value(&Value::Int64(7))
        );
        assert_ne!(
            encode_entity_key(&["a"], &[&KeyValue::Str("1".into())]),
            encode_entity_key(&["a"], &[&KeyValue::Int(1)]),
            "a string key never collides with an int key"
        );
    }

    #[test]
    fn layout_is_stable() {
        let k = encode_entity_key(&["id"], &[&KeyValue::Int(258)]);
        assert_eq!(
            k,
            [
                1, 1, 2, 0, b'i', b'd', b'i', 8, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0
            ]
        );
        assert_eq!(view_prefix("shop", "stats"), b"asof:shop:stats:");
        assert_eq!(
            store_key("shop", "stats", &[1, 2]),
            b"asof:shop:stats:\x01\x02"
        );
    }
}
