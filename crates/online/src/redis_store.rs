//! The Redis store (single node or Redis Cluster). One string key per (view, entity) holding the
//! encoded row; writes go through a Lua script that compares the rows' timestamp headers on the
//! server, so concurrent or replayed writers can never move a key back in time.

use std::time::Duration;

use asof_core::Ttl;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Pipeline, RedisError, Script};

use crate::{OnlineError, OnlineResult, OnlineStore};

/// For each i, replaces KEYS[i] with ARGV[i + 1] only if the new row's 32-byte header is greater,
/// byte by byte (the header orders like (event_ts, created_ts)). ARGV[1]: expiry in ms, "0" for
/// none. Returns how many keys were written. Several keys per call amortise the per-command cost;
/// on Redis Cluster each call carries one key (a script's keys must share a slot).
const WRITE_IF_NEWER: &str = r#"
local ttl = ARGV[1]
local written = 0
for i = 1, #KEYS do
  local new = ARGV[i + 1]
  local cur = redis.call('GET', KEYS[i])
  local newer = true
  if cur then
    newer = false
    for j = 1, 32 do
      local a, b = string.byte(new, j), string.byte(cur, j)
      if a ~= b then
        newer = a > b
        break
      end
    end
  end
  if newer then
    if ttl ~= '0' then
      redis.call('SET', KEYS[i], new, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], new)
    end
    written = written + 1
  end
end
return written
"#;

/// Rows per script call on a single node.
const ROWS_PER_CALL: usize = 100;

/// Rows per pipelined write batch, and batches in flight at once.
const WRITE_BATCH: usize = 2000;
const WRITES_IN_FLIGHT: usize = 4;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&mut self, pipe: &Pipeline) -> Result<T, RedisError> {
        match self {
            Conn::Single(c) => pipe.query_async(c).await,
            Conn::Cluster(c) => pipe.query_async(c).await,
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

pub struct RedisStore {
    conn: Conn,
    key_ttl_ms: u64,
    script: Script,
    name: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn nodelay() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// `redis://user:secret@host` -> `redis://host`, for logs and messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Connects to `connection_string`: one URL (`redis://`, `rediss://` for TLS, password in the
    /// URL), or several comma-separated URLs of Redis Cluster nodes.
    pub async fn connect(connection_string: &str, key_ttl: Ttl) -> OnlineResult<Self> {
        let urls: Vec<&str> = connection_string
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let name = format!(
            "redis {}",
            urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",")
        );
        let unavailable = |e: RedisError| OnlineError::Unavailable {
            store: name.clone(),
            message: e.to_string(),
        };
        let conn = if urls.len() == 1 {
            // TCP_NODELAY: a request is one small write; Nagle would hold it for the delayed ACK.
            let info = redis::IntoConnectionInfo::into_connection_info(urls[0])
                .map_err(|e| OnlineError::Config(format!("{}: {e}", redact(urls[0]))))?
                .set_tcp_settings(nodelay());
            let client = redis::Client::open(info)
                .map_err(|e| OnlineError::Config(format!("{}: {e}", redact(urls[0]))))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(unavailable)?,
            )
        } else {
            let client = ClusterClient::builder(urls.clone())
                .tcp_settings(nodelay())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| OnlineError::Config(e.to_string()))?;
            Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        };
        let store = RedisStore {
            conn,
            key_ttl_ms: key_ttl.as_seconds() * 1000,
            script: Script::new(WRITE_IF_NEWER),
            name,
        };
        store.load_script().await?;
        Ok(store)
    }

    fn error(&self, e: RedisError) -> OnlineError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            OnlineError::Unavailable {
                store: self.name.clone(),
                message: e.to_string(),
            }
        } else {
            OnlineError::Store {
                store: self.name.clone(),
                message: e.to_string(),
            }
        }
    }

    async fn load_script(&self) -> OnlineResult<()> {
        let mut conn = self.conn.clone();
        let _: String = conn
            .cmd(redis::cmd("SCRIPT").arg("LOAD").arg(WRITE_IF_NEWER))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn write_batch(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize> {
        let per_call = match self.conn {
            Conn::Single(_) => ROWS_PER_CALL,
            Conn::Cluster(_) => 1,
        };
        let mut pipe = redis::pipe();
        for call in rows.chunks(per_call) {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(call.len());
            for (k, _) in call {
                cmd.arg(k);
            }
            cmd.arg(self.key_ttl_ms);
            for (_, v) in call {
                cmd.arg(v);
            }
        }
        let mut conn = self.conn.clone();
        let res: Result<Vec<i64>, RedisError> = conn.query(&pipe).await;
        let res = match res {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis restarted or flushed its scripts: load again, once.
                self.load_script().await?;
                conn.query(&pipe).await
            }
            other => other,
        };
        Ok(res.map_err(|e| self.error(e))?.into_iter().sum::<i64>() as usize)
    }
}

#[async_trait::async_trait]
impl OnlineStore for RedisStore {
    async fn write(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize> {
        use futures::StreamExt;
        let mut chunks = Vec::with_capacity(rows.len() / WRITE_BATCH + 1);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            chunks.push(rows.by_ref().take(WRITE_BATCH).collect::<Vec<_>>());
        }
        let futures: Vec<_> = chunks.into_iter().map(|c| self.write_batch(c)).collect();
        let results: Vec<OnlineResult<usize>> = futures::stream::iter(futures)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().sum()
    }

    async fn read(&self, keys: Vec<Vec<u8>>) -> OnlineResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for k in &keys {
            cmd.arg(k);
        }
        conn.cmd(&cmd).await.map_err(|e| self.error(e))
    }

    async fn delete_prefix(&self, prefix: Vec<u8>) -> OnlineResult<usize> {
        let Conn::Single(c) = &self.conn else {
            return Err(OnlineError::Store { store: self.name.clone(), message: "deleting a view's keys on Redis Cluster is not supported yet; delete `asof:<project>:<view>:*` on each node".into() });
        };
        let mut conn = c.clone();
        let mut pattern = prefix.clone();
        pattern.push(b'*');
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if !keys.is_empty() {
                let n: usize = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.error(e))?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
