//! Where a source's database is and how to log in: the connection URL of the repo file (never a
//! password: that comes from the environment) and the errors a person can act on.

use asof_core::spec::PostgresTable;
use pgwire_replication::{Lsn, PgWireError, ReplicationClient, ReplicationConfig};

use crate::error::{StreamError, StreamResult};

/// A parsed `postgresql://user@host:port/database` and the password from its variable.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    password: String,
    /// The variable the password came from, for error messages.
    password_env: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Server {
    /// Reads `table`'s connection; `what` names the source in errors.
    pub fn from_table(table: &PostgresTable<'_>, what: &str) -> StreamResult<Self> {
        let url = table.connection;
        let bad = |message: String| StreamError::Config {
            what: what.to_string(),
            message,
            fix: "write it as `postgresql://USER@HOST:PORT/DATABASE`".into(),
        };
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| bad(format!("connection `{url}` is not a postgresql:// URL")))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| bad(format!("connection `{url}` names no database")))?;
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad(format!("connection `{url}` names no user")))?;
        if user.contains(':') {
            return Err(StreamError::Config {
                what: what.to_string(),
                message: "the connection URL holds a password".into(),
                fix: "remove it and name an environment variable with `password_env`".into(),
            });
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(format!("connection `{url}`: `{p}` is not a port")))?,
            ),
            None => (hostport, 5432),
        };
        if host.is_empty() || user.is_empty() || database.is_empty() {
            return Err(bad(format!("connection `{url}` is incomplete")));
        }
        let password = match table.password_env {
            Some(var) => std::env::var(var).map_err(|_| StreamError::Config {
                what: what.to_string(),
                message: format!("`password_env: {var}` is not set in this environment"),
                fix: format!("export {var}=<the password of role `{user}`>"),
            })?,
            None => String::new(),
        };
        Ok(Server {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
            user: user.to_string(),
            database: database.to_string(),
            password,
            password_env: table.password_env.map(str::to_string),
        })
    }

    /// `user@host:port/database`, never the password.
    pub fn display(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// A replication session that waits for SQL and replication commands until started.
    pub async fn session(
        &self,
        what: &str,
        slot: &str,
        publication: &str,
        resume: Option<Lsn>,
    ) -> StreamResult<ReplicationClient> {
        let mut config = ReplicationConfig::new(
            self.host.clone(),
            self.user.clone(),
            self.password.clone(),
            self.database.clone(),
            slot,
            publication,
        )
        .with_port(self.port)
        .with_application_name("asof stream")
        // Feedback goes out within this of a checkpoint, so the slot frees WAL promptly.
        .with_status_interval(std::time::Duration::from_secs(1))
        .with_wakeup_interval(std::time::Duration::from_secs(1));
        if let Some(lsn) = resume {
            // Read from the checkpoint and never confirm past it before the next one.
            config = config.with_start_lsn(lsn).with_ack_lsn(lsn);
        }
        ReplicationClient::connect_gated(config)
            .await
            .map_err(|e| self.error(what, e))
    }

    /// A client error as a person can act on it: configuration problems carry their fix.
    pub fn error(&self, what: &str, e: PgWireError) -> StreamError {
        let message = e.to_string();
        let lower = message.to_lowercase();
        let config = |message: String, fix: String| StreamError::Config {
            what: what.to_string(),
            message,
            fix,
        };
        let server = self.display();
        if lower.contains("password authentication failed")
            || lower.contains("28p01")
            || e.is_auth()
        {
            let var = self
                .password_env
                .as_deref()
                .map(|v| format!("${v}"))
                .unwrap_or_else(|| "no `password_env`".into());
            return config(
                format!("PostgreSQL at {server} refused the password ({var}): {message}"),
                format!(
                    "set {} to the password of role `{}` (or add `password_env` to the source)",
                    self.password_env
                        .as_deref()
                        .unwrap_or("a variable named by `password_env`"),
                    self.user
                ),
            );
        }
        if lower.contains("replication role")
            || lower.contains("permission denied to start wal sender")
            || lower.contains("must have the replication attribute")
        {
            return config(
                format!(
                    "role `{}` may not start logical replication on {server}",
                    self.user
                ),
                format!(
                    "ALTER ROLE {} REPLICATION;  (as a superuser)",
                    quote_ident(&self.user)
                ),
            );
        }
        if lower.contains("no pg_hba.conf entry") {
            return config(
                format!("PostgreSQL at {server} has no pg_hba.conf line for this login: {message}"),
                format!(
                    "add `host {} {} 127.0.0.1/32 scram-sha-256` to pg_hba.conf and reload",
                    self.database, self.user
                ),
            );
        }
        if lower.contains("3d000")
            || (lower.contains("database") && lower.contains("does not exist"))
        {
            return config(
                format!("database `{}` does not exist on {server}", self.database),
                "fix the database in `connection`".into(),
            );
        }
        if lower.contains("role") && lower.contains("does not exist") {
            return config(
                format!("role `{}` does not exist on {server}", self.user),
                "fix the user in `connection`, or CREATE ROLE it WITH LOGIN REPLICATION".into(),
            );
        }
        StreamError::Connection {
            what: what.to_string(),
            server,
            message,
        }
    }
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` as a quoted SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `schema.table` (or `table`, in `public`) as a quoted, qualified SQL name.
pub fn quote_table(table: &str) -> String {
    let (schema, name) = split_table(table);
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

pub fn split_table(table: &str) -> (&str, &str) {
    table.split_once('.').unwrap_or(("public", table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(connection: &str) -> PostgresTable<'_> {
        PostgresTable {
            connection,
            password_env: None,
            table: "t",
        }
    }

    #[test]
    fn urls_parse_into_their_parts_and_refuse_a_password() {
        let s = Server::from_table(&table("postgresql://asof@127.0.0.1:5433/rides"), "s").unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.user.as_str(),
                s.database.as_str()
            ),
            ("127.0.0.1", 5433, "asof", "rides")
        );
        let s = Server::from_table(&table("postgres://u@db/x?sslmode=disable"), "s").unwrap();
        assert_eq!((s.port, s.database.as_str()), (5432, "x"));
        for bad in [
            "mysql://u@h/x",
            "postgresql://u:pw@h/x",
            "postgresql://h:5432/x",
            "postgresql://u@h:port/x",
            "postgresql://u@h",
        ] {
            let e = Server::from_table(&table(bad), "source `s`").unwrap_err();
            assert!(matches!(e, StreamError::Config { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_table("public.t"), "\"public\".\"t\"");
        assert_eq!(quote_table("we\"ird"), "\"public\".\"we\"\"ird\"");
        assert_eq!(quote_literal("o'k"), "'o''k'");
    }
}
