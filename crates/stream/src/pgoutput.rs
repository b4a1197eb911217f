//! The row messages of PostgreSQL's `pgoutput` plugin, protocol version 1, text format (the
//! replication client hands over Begin and Commit itself). Layouts: PostgreSQL's "Logical
//! Replication Message Formats".

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    /// A TOASTed value the update did not change: the message leaves it out.
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(String),
}

pub type Tuple = Vec<Cell>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key a delete carries).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
}

/// A table's shape as of the changes that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Relation(Relation),
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key (or whole old row with `REPLICA IDENTITY FULL`), sent when the key changed.
        old: Option<Tuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        /// The old key, or the whole old row with `REPLICA IDENTITY FULL`.
        old: Tuple,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Types, origins and anything newer: nothing a stream applies.
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(String);

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError(format!(
                "needs {n} more bytes, has {}",
                self.0.len()
            )));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.u16()? as usize;
        let mut cells = Vec::with_capacity(n);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    Cell::Text(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| DecodeError("a text value is not UTF-8".into()))?,
                    )
                }
                b'b' => {
                    return Err(DecodeError(
                        "a binary value (the stream asks for text format)".into(),
                    ));
                }
                other => return Err(DecodeError(format!("tuple cell kind {other:#x}"))),
            });
        }
        Ok(cells)
    }
}

/// Decodes one `pgoutput` message (an XLogData payload).
pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(data);
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.u16()? as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                });
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(r.u8()?, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            expect(kind, b'N')?;
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError(format!("delete tuple kind {kind:#x}")));
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()? as usize;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(n);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        other => Message::Other(other),
    })
}

fn expect(got: u8, want: u8) -> Result<(), DecodeError> {
    if got == want {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "expected tuple kind {:?}, got {:#x}",
            want as char, got
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(cells: &[Option<&str>], out: &mut Vec<u8>) {
        out.extend_from_slice(&(cells.len() as u16).to_be_bytes());
        for c in cells {
            match c {
                None => out.push(b'n'),
                Some("<toast>") => out.push(b'u'),
                Some(t) => {
                    out.push(b't');
                    out.extend_from_slice(&(t.len() as u32).to_be_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
            }
        }
    }

    #[test]
    fn decodes_relations_and_row_changes() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&7u32.to_be_bytes());
        rel.extend_from_slice(b"public\0t\0d");
        rel.extend_from_slice(&2u16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 20u32), (0, "body", 25)] {
            rel.push(flags);
            rel.extend_from_slice(name.as_bytes());
            rel.push(0);
            rel.extend_from_slice(&oid.to_be_bytes());
            rel.extend_from_slice(&(-1i32).to_be_bytes());
        }
        let Message::Relation(r) = decode(&rel).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!((r.id, r.name.as_str(), r.replica_identity), (7, "t", b'd'));
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_oid, 25);

        let mut upd = vec![b'U'];
        upd.extend_from_slice(&7u32.to_be_bytes());
        upd.push(b'K');
        tuple(&[Some("1"), None], &mut upd);
        upd.push(b'N');
        tuple(&[Some("2"), Some("<toast>")], &mut upd);
        assert_eq!(
            decode(&upd).unwrap(),
            Message::Update {
                relation: 7,
                old: Some(vec![Cell::Text("1".into()), Cell::Null]),
                new: vec![Cell::Text("2".into()), Cell::Unchanged],
            }
        );
        let mut del = vec![b'D'];
        del.extend_from_slice(&7u32.to_be_bytes());
        del.push(b'K');
        tuple(&[Some("2"), None], &mut del);
        assert!(matches!(
            decode(&del).unwrap(),
            Message::Delete { relation: 7, .. }
        ));
        assert!(decode(&del[..del.len() - 1]).is_err(), "truncated");
        assert_eq!(decode(b"Yxx").unwrap(), Message::Other(b'Y'));
    }
}
