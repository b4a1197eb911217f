//! What a stream checks and creates in PostgreSQL before it reads a change: the server settings, the
//! table (columns, key, replica identity), the publication and the slot. Each problem is an error
//! that names the fix, since none of them goes away by retrying.

use pgwire_replication::{PgWireError, ReplicationClient};

use crate::connect::{Server, quote_ident, quote_literal, quote_table, split_table};
use crate::error::{StreamError, StreamResult};
use crate::plan::Column;

/// A session, the server it talks to and what it is for: the context of every query.
pub(crate) struct Sql<'a> {
    pub(crate) client: &'a mut ReplicationClient,
    pub(crate) server: &'a Server,
    pub(crate) what: &'a str,
}

impl Sql<'_> {
    /// Runs `sql`; a server error becomes a configuration error with `fix`.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        fix: &str,
    ) -> StreamResult<Vec<Vec<Option<String>>>> {
        match self.client.simple_query(sql).await {
            Ok(rows) => Ok(rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|c| c.map(|b| String::from_utf8_lossy(&b).into_owned()))
                        .collect()
                })
                .collect()),
            Err(e) => match (self.server.error(self.what, e.clone()), e) {
                // Logging in failed (the session connects on its first query): its own fix.
                (config @ StreamError::Config { .. }, _) => Err(config),
                (_, PgWireError::Server(message)) => Err(StreamError::Config {
                    what: self.what.to_string(),
                    message: format!("PostgreSQL at {}: {message}", self.server.display()),
                    fix: fix.to_string(),
                }),
                (other, _) => Err(other),
            },
        }
    }

    fn config(&self, message: String, fix: String) -> StreamError {
        StreamError::Config {
            what: self.what.to_string(),
            message,
            fix,
        }
    }

    /// Session settings the text parsers rely on.
    pub(crate) async fn settings(&mut self) -> StreamResult<()> {
        for sql in [
            "SET DateStyle = ISO",
            "SET TimeZone = 'UTC'",
            "SET bytea_output = 'hex'",
            "SET extra_float_digits = 3",
        ] {
            self.query(sql, "check the role may change session settings")
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn check_wal_level(&mut self) -> StreamResult<()> {
        let rows = self.query("SHOW wal_level", "").await?;
        let level = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        if level != "logical" {
            return Err(self.config(
                format!("PostgreSQL at {} runs with wal_level = {level}; logical replication needs `logical`", self.server.display()),
                "ALTER SYSTEM SET wal_level = logical;  then restart PostgreSQL".into(),
            ));
        }
        Ok(())
    }

    /// The table's columns (in the order changes list them) and the columns that identify a row
    /// in updates and deletes. `keys` are the columns the stream identifies rows by.
    pub(crate) async fn describe(
        &mut self,
        table: &str,
        keys: &[&str],
    ) -> StreamResult<Vec<Column>> {
        let rows = self
            .query(
                &format!(
                    "SELECT c.oid::int8, c.relreplident::text FROM pg_class c WHERE c.oid = to_regclass({})",
                    quote_literal(&quote_table(table))
                ),
                "",
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(self.config(
                format!(
                    "table `{table}` does not exist in database `{}`",
                    self.server.database
                ),
                "create it, or fix the source's `table` (`schema.table`)".into(),
            ));
        };
        let oid = row[0].clone().unwrap_or_default();
        let identity = row[1].clone().unwrap_or_default();
        let rows = self
            .query(
                &format!(
                    "SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, a.atttypmod), \
                     EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)), \
                     EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisreplident AND a.attnum = ANY(i.indkey)) \
                     FROM pg_attribute a WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
                     ORDER BY a.attnum"
                ),
                "",
            )
            .await?;
        let mut columns = Vec::new();
        let (mut primary, mut replident) = (Vec::new(), Vec::new());
        for r in rows {
            let name = r[0].clone().unwrap_or_default();
            if r[3].as_deref() == Some("t") {
                primary.push(name.clone());
            }
            if r[4].as_deref() == Some("t") {
                replident.push(name.clone());
            }
            columns.push(Column {
                type_oid: r[1].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0),
                type_name: r[2].clone().unwrap_or_default(),
                name,
            });
        }
        if keys.is_empty() {
            // Only inserts are read (events of aggregated views): no row needs identifying.
            return Ok(columns);
        }
        let identifying = match identity.as_str() {
            "d" if primary.is_empty() => {
                return Err(self.config(
                    format!("table `{table}` has no primary key, so its updates and deletes do not say which row they change"),
                    format!("ALTER TABLE {} ADD PRIMARY KEY ({});", quote_table(table), keys.join(", ")),
                ));
            }
            "d" => primary,
            "i" => replident,
            "f" => primary,
            _ => {
                return Err(self.config(
                    format!(
                        "table `{table}` has REPLICA IDENTITY NOTHING: its deletes carry no key"
                    ),
                    format!(
                        "ALTER TABLE {} REPLICA IDENTITY DEFAULT;  (with a primary key)",
                        quote_table(table)
                    ),
                ));
            }
        };
        // With REPLICA IDENTITY FULL and no primary key, every delete carries the whole row.
        let full_without_key = identity == "f" && identifying.is_empty();
        let mut want: Vec<&str> = keys.to_vec();
        want.sort_unstable();
        let mut have: Vec<&str> = identifying.iter().map(String::as_str).collect();
        have.sort_unstable();
        if !full_without_key && want != have {
            return Err(self.config(
                format!(
                    "rows of `{table}` are identified by ({}) but the stream keys them on ({}): one key must name one row",
                    have.join(", "),
                    want.join(", ")
                ),
                format!(
                    "make ({}) the table's primary key, or key the view (or index) on ({})",
                    want.join(", "),
                    have.join(", ")
                ),
            ));
        }
        Ok(columns)
    }

    /// Creates the publication of `table` (or adds the table to it) when missing.
    pub(crate) async fn ensure_publication(
        &mut self,
        publication: &str,
        table: &str,
    ) -> StreamResult<()> {
        let (schema, name) = split_table(table);
        let rows = self
            .query(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = {p}), \
                     EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = {p} AND schemaname = {s} AND tablename = {t})",
                    p = quote_literal(publication),
                    s = quote_literal(schema),
                    t = quote_literal(name)
                ),
                "",
            )
            .await?;
        let flag = |i: usize| rows.first().and_then(|r| r[i].as_deref()) == Some("t");
        let fix = format!(
            "run as the table's owner (or a superuser): CREATE PUBLICATION {} FOR TABLE {};",
            quote_ident(publication),
            quote_table(table)
        );
        if !flag(0) {
            self.query(
                &format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(publication),
                    quote_table(table)
                ),
                &fix,
            )
            .await?;
        } else if !flag(1) {
            self.query(
                &format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    quote_ident(publication),
                    quote_table(table)
                ),
                &fix,
            )
            .await?;
        }
        Ok(())
    }

    /// Whether the slot exists; an active one (another process streaming from it) is an error,
    /// after a grace period: a stream killed a moment ago holds it until PostgreSQL notices.
    pub(crate) async fn slot_exists(&mut self, slot: &str) -> StreamResult<bool> {
        let mut waited = 0;
        let row = loop {
            let rows = self
                .query(
                    &format!(
                        "SELECT active::text, plugin FROM pg_replication_slots WHERE slot_name = {}",
                        quote_literal(slot)
                    ),
                    "",
                )
                .await?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(false);
            };
            if row[0].as_deref() != Some("true") || waited >= 20 {
                break row;
            }
            waited += 1;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        if row[0].as_deref() == Some("true") {
            return Err(self.config(
                format!("replication slot `{slot}` is in use by another process"),
                "stop the other `asof stream` (or `asof serve --stream`) of this repo".into(),
            ));
        }
        if row[1].as_deref() != Some("pgoutput") {
            return Err(self.config(
                format!("replication slot `{slot}` exists but is not a pgoutput slot"),
                format!("SELECT pg_drop_replication_slot({});", quote_literal(slot)),
            ));
        }
        Ok(true)
    }

    pub(crate) async fn drop_slot(&mut self, slot: &str) -> StreamResult<()> {
        self.query(
            &format!("SELECT pg_drop_replication_slot({})", quote_literal(slot)),
            "drop the slot by hand, or stop whatever uses it",
        )
        .await
        .map(drop)
    }
}
