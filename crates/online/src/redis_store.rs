//! The Redis store (single node or Redis Cluster). One string key per (view, entity) holding the
//! encoded row; writes go through a Lua script that compares the rows' timestamp headers on the
//! server, so concurrent or replayed writers can never move a key back in time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use asof_core::Ttl;
use asof_core::value::StoredEvent;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Pipeline, RedisError, Script};
use tokio::sync::oneshot;

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

    /// One SCAN page: on a cluster, of the primary at `node` (SCAN has no key to route by).
    async fn scan_page(
        &mut self,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &[u8],
    ) -> Result<(u64, Vec<Vec<u8>>), RedisError> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        match (self, node) {
            (Conn::Cluster(c), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let page = c.route_command(scan, routing).await?;
                Ok(redis::FromRedisValue::from_redis_value(page)?)
            }
            (conn, _) => conn.cmd(&scan).await,
        }
    }
}

/// `(host, port)` of each reachable primary in a `CLUSTER NODES` listing, whose lines read
/// `id ip:port@cport[,hostname] flags master-id ...`.
fn primaries(listing: &str) -> Vec<(String, u16)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags: Vec<&str> = fields.next()?.split(',').collect();
            if !flags.contains(&"master")
                || flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "fail?" | "noaddr" | "handshake"))
            {
                return None;
            }
            let host_port = address.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

/// Reads waiting for the next shared round trip, each with where its rows go.
type PendingReads = Arc<Mutex<Vec<(Vec<Vec<u8>>, oneshot::Sender<OnlineResult<Rows>>)>>>;

/// Rows read by key, `None` where absent.
type Rows = Vec<Option<Vec<u8>>>;

fn classify(store: &str, e: RedisError) -> OnlineError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        OnlineError::Unavailable {
            store: store.to_string(),
            message: e.to_string(),
        }
    } else {
        OnlineError::Store {
            store: store.to_string(),
            message: e.to_string(),
        }
    }
}

/// One pipeline of an MGET per queued read (see [`RedisStore::shared_read`]), answered in order.
async fn round_trip(mut conn: ConnectionManager, pending: PendingReads, store: String) {
    tokio::task::yield_now().await;
    let reads = std::mem::take(&mut *pending.lock().expect("never held across a panic"));
    let mut pipe = redis::pipe();
    for (keys, _) in &reads {
        pipe.cmd("MGET").arg(keys);
    }
    match pipe.query_async::<Vec<Rows>>(&mut conn).await {
        Ok(all) => {
            for ((_, reply), rows) in reads.into_iter().zip(all) {
                // A reader gone (deadline passed) no longer wants its rows.
                let _ = reply.send(Ok(rows));
            }
        }
        Err(e) => {
            let error = classify(&store, e);
            for (_, reply) in reads {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

pub struct RedisStore {
    conn: Conn,
    key_ttl_ms: u64,
    script: Script,
    name: String,
    pending_reads: PendingReads,
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

/// PEM certificates for `rediss://`, read from the files the repo config names.
#[derive(Clone)]
pub struct TlsFiles {
    ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl TlsFiles {
    pub fn read(
        config: &asof_core::config::RedisTls,
        repo_dir: &std::path::Path,
    ) -> OnlineResult<Self> {
        let read = |field: &str, rel: &Option<String>| -> OnlineResult<Option<Vec<u8>>> {
            rel.as_ref()
                .map(|rel| {
                    let path = repo_dir.join(rel);
                    std::fs::read(&path).map_err(|e| {
                        OnlineError::Config(format!(
                            "online_store.tls.{field}: cannot read {}: {e}",
                            path.display()
                        ))
                    })
                })
                .transpose()
        };
        let ca = read("ca_cert", &config.ca_cert)?;
        let client = match (
            read("client_cert", &config.client_cert)?,
            read("client_key", &config.client_key)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(OnlineError::Config(
                    "online_store.tls: give both client_cert and client_key, or neither".into(),
                ));
            }
        };
        Ok(TlsFiles { ca, client })
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        }
    }
}

impl RedisStore {
    /// Every key starting with `prefix`, SCANned from every primary.
    async fn keys_with_prefix(&self, prefix: Vec<u8>) -> OnlineResult<Vec<Vec<u8>>> {
        let mut conn = self.conn.clone();
        // SCAN's MATCH is a glob: the prefix's own glob characters must match themselves.
        let mut pattern = Vec::with_capacity(prefix.len() + 8);
        for b in prefix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        let nodes = match &mut conn {
            Conn::Single(_) => vec![None],
            Conn::Cluster(c) => {
                let listing: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(c)
                    .await
                    .map_err(|e| self.error(e))?;
                primaries(&listing).into_iter().map(Some).collect()
            }
        };
        let mut out = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = conn
                    .scan_page(node.as_ref(), cursor, &pattern)
                    .await
                    .map_err(|e| self.error(e))?;
                out.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(out)
    }
    /// Connects to `connection_string`: one URL (`redis://`, `rediss://` for TLS, password in the
    /// URL), or several comma-separated URLs of Redis Cluster nodes.
    pub async fn connect(connection_string: &str, key_ttl: Ttl) -> OnlineResult<Self> {
        Self::connect_with(connection_string, key_ttl, None, None).await
    }

    /// [`Self::connect`], with a password from outside the URL (`password_env`) and the
    /// certificates of a private CA or of the client (`tls`).
    pub async fn connect_with(
        connection_string: &str,
        key_ttl: Ttl,
        password: Option<String>,
        tls: Option<TlsFiles>,
    ) -> OnlineResult<Self> {
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
            let mut info = redis::IntoConnectionInfo::into_connection_info(urls[0])
                .map_err(|e| OnlineError::Config(format!("{}: {e}", redact(urls[0]))))?
                .set_tcp_settings(nodelay());
            if let Some(p) = &password {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            let client = match &tls {
                Some(t) => redis::Client::build_with_tls(info, t.certificates()),
                None => redis::Client::open(info),
            }
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
            let mut builder = ClusterClient::builder(urls.clone()).tcp_settings(nodelay());
            if let Some(p) = &password {
                builder = builder.password(p.clone());
            }
            if let Some(t) = &tls {
                builder = builder.certs(t.certificates());
            }
            let client = builder
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
            pending_reads: PendingReads::default(),
        };
        store.load_script().await?;
        Ok(store)
    }

    fn error(&self, e: RedisError) -> OnlineError {
        classify(&self.name, e)
    }

    /// Queues a single node read for the next shared round trip, starting one if none is due.
    ///
    /// Concurrent requests each writing their own MGET cost one `writev` and one Redis wake-up
    /// apiece, a fifth of the server's CPU at 1-row requests: tokio runs a woken task right after
    /// its waker, so the connection's writer flushed each request alone. The round trip is a
    /// spawned task that first yields, so the requests already decoded queue their reads behind
    /// it and all go in one pipeline. It is spawned, not run by the first reader, so that a reader
    /// cancelled by its deadline cannot strand the others.
    async fn shared_read(&self, conn: ConnectionManager, keys: Vec<Vec<u8>>) -> OnlineResult<Rows> {
        let (reply, rows) = oneshot::channel();
        let first = {
            let mut pending = self
                .pending_reads
                .lock()
                .expect("never held across a panic");
            pending.push((keys, reply));
            pending.len() == 1
        };
        if first {
            tokio::spawn(round_trip(
                conn,
                Arc::clone(&self.pending_reads),
                self.name.clone(),
            ));
        }
        rows.await.unwrap_or_else(|_| {
            Err(OnlineError::Unavailable {
                store: self.name.clone(),
                message: "the read's round trip was dropped (server shutting down)".into(),
            })
        })
    }

    async fn load_script(&self) -> OnlineResult<()> {
        let mut conn = self.conn.clone();
        let _: String = conn
            .cmd(redis::cmd("SCRIPT").arg("LOAD").arg(WRITE_IF_NEWER))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Writes `rows` through the script; how many were newer than what Redis held.
    async fn write_batch(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize> {
        let res = match self.send_writes(&rows).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis restarted or flushed its scripts: load again, once.
                self.load_script().await?;
                self.send_writes(&rows).await
            }
            other => other,
        };
        res.map_err(|e| self.error(e))
    }

    /// One node: one pipeline of script calls of [`ROWS_PER_CALL`] keys. A cluster refuses a
    /// pipeline or a script call whose keys span slots, so there each key is its own call, all in
    /// flight at once on the multiplexed connection.
    async fn send_writes(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<usize, RedisError> {
        let call = |rows: &[(Vec<u8>, Vec<u8>)]| {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.script.get_hash()).arg(rows.len());
            for (k, _) in rows {
                cmd.arg(k);
            }
            cmd.arg(self.key_ttl_ms);
            for (_, v) in rows {
                cmd.arg(v);
            }
            cmd
        };
        let mut conn = self.conn.clone();
        match &mut conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for chunk in rows.chunks(ROWS_PER_CALL) {
                    pipe.add_command(call(chunk));
                }
                let written: Vec<i64> = conn.query(&pipe).await?;
                Ok(written.into_iter().sum::<i64>() as usize)
            }
            Conn::Cluster(c) => {
                let calls = rows.chunks(1).map(|row| {
                    let mut c = c.clone();
                    let cmd = call(row);
                    async move { cmd.query_async::<i64>(&mut c).await }
                });
                let written: Vec<i64> = futures::future::try_join_all(calls).await?;
                Ok(written.into_iter().sum::<i64>() as usize)
            }
        }
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
        match &self.conn {
            Conn::Single(conn) => self.shared_read(conn.clone(), keys).await,
            // A cluster pipeline cannot cross slots; the cluster client splits one MGET by slot.
            Conn::Cluster(_) => self
                .conn
                .clone()
                .cmd(redis::cmd("MGET").arg(&keys))
                .await
                .map_err(|e| self.error(e)),
        }
    }

    /// SCANs every primary for the prefix and UNLINKs what it finds (on a cluster, the UNLINK is
    /// split by slot by the client).
    async fn delete_prefix(&self, prefix: Vec<u8>) -> OnlineResult<usize> {
        let mut conn = self.conn.clone();
        let mut deleted = 0;
        for keys in self.keys_with_prefix(prefix).await?.chunks(1000) {
            let n: usize = conn
                .cmd(redis::cmd("UNLINK").arg(keys))
                .await
                .map_err(|e| self.error(e))?;
            deleted += n;
        }
        Ok(deleted)
    }

    /// Two round trips: the newest member of every key's log, then per key `ZADD` of the members
    /// within the horizon of the newest (stored or new; every member scores 0, so the log orders
    /// by bytes), `ZREMRANGEBYLEX` below it, and the store's key TTL. On one node each step is one
    /// pipeline; a cluster gets a pipeline per key (a pipeline cannot cross slots). A writer racing
    /// this one can only make a trim keep more than it must, never drop what a read needs.
    async fn append_events(
        &self,
        logs: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
        horizon: i64,
    ) -> OnlineResult<usize> {
        if logs.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let newest_cmd = |key: &Vec<u8>| {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(key).arg(-1).arg(-1);
            cmd
        };
        let stored: Vec<Vec<Vec<u8>>> = match &mut conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for (k, _) in &logs {
                    pipe.add_command(newest_cmd(k));
                }
                conn.query(&pipe).await.map_err(|e| self.error(e))?
            }
            Conn::Cluster(c) => {
                let calls = logs.iter().map(|(k, _)| {
                    let mut c = c.clone();
                    let cmd = newest_cmd(k);
                    async move { cmd.query_async::<Vec<Vec<u8>>>(&mut c).await }
                });
                futures::future::try_join_all(calls)
                    .await
                    .map_err(|e| self.error(e))?
            }
        };
        let commands =
            |pipe: &mut Pipeline, key: &Vec<u8>, members: &[Vec<u8>], stored: &[Vec<u8>]| {
                let Some((kept, keep_from)) =
                    StoredEvent::admit(members, stored.first().map(Vec::as_slice), horizon)
                else {
                    return;
                };
                if !kept.is_empty() {
                    let mut zadd = redis::cmd("ZADD");
                    zadd.arg(key);
                    for m in kept {
                        zadd.arg(0).arg(m);
                    }
                    pipe.add_command(zadd);
                }
                let mut cut = b"(".to_vec();
                cut.extend_from_slice(&keep_from);
                pipe.cmd("ZREMRANGEBYLEX")
                    .arg(key)
                    .arg("-")
                    .arg(cut)
                    .ignore();
                if self.key_ttl_ms > 0 {
                    pipe.cmd("PEXPIRE").arg(key).arg(self.key_ttl_ms).ignore();
                }
            };
        let added: Vec<usize> = match &mut conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for ((key, members), stored) in logs.iter().zip(&stored) {
                    commands(&mut pipe, key, members, stored);
                }
                conn.query(&pipe).await.map_err(|e| self.error(e))?
            }
            Conn::Cluster(c) => {
                let calls = logs.iter().zip(&stored).map(|((key, members), stored)| {
                    let mut c = c.clone();
                    let mut pipe = redis::pipe();
                    commands(&mut pipe, key, members, stored);
                    async move { pipe.query_async::<Vec<usize>>(&mut c).await }
                });
                futures::future::try_join_all(calls)
                    .await
                    .map_err(|e| self.error(e))?
                    .into_iter()
                    .flatten()
                    .collect()
            }
        };
        Ok(added.into_iter().sum())
    }

    async fn read_events(
        &self,
        ranges: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> OnlineResult<Vec<Vec<Vec<u8>>>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let range_cmd = |(key, from, to): &(Vec<u8>, Vec<u8>, Vec<u8>)| {
            let mut lo = b"[".to_vec();
            lo.extend_from_slice(from);
            let mut hi = b"(".to_vec();
            hi.extend_from_slice(to);
            let mut cmd = redis::cmd("ZRANGEBYLEX");
            cmd.arg(key).arg(lo).arg(hi);
            cmd
        };
        let mut conn = self.conn.clone();
        match &mut conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for r in &ranges {
                    pipe.add_command(range_cmd(r));
                }
                conn.query(&pipe).await.map_err(|e| self.error(e))
            }
            Conn::Cluster(c) => {
                let calls = ranges.iter().map(|r| {
                    let mut c = c.clone();
                    let cmd = range_cmd(r);
                    async move { cmd.query_async::<Vec<Vec<u8>>>(&mut c).await }
                });
                futures::future::try_join_all(calls)
                    .await
                    .map_err(|e| self.error(e))
            }
        }
    }

    /// Per log, one pipeline (`ZRANGE -1 -1` and `MEMORY USAGE`: one key, so one slot on a
    /// cluster too), 64 logs in flight at once.
    async fn event_heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<(Vec<Vec<u8>>, u64)> {
        use futures::{StreamExt, TryStreamExt};
        let keys = self.keys_with_prefix(prefix).await?;
        let calls: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let mut pipe = redis::pipe();
                pipe.cmd("ZRANGE").arg(&key).arg(-1).arg(-1);
                pipe.cmd("MEMORY").arg("USAGE").arg(&key);
                let mut conn = self.conn.clone();
                async move { conn.query::<(Vec<Vec<u8>>, Option<u64>)>(&pipe).await }
            })
            .collect();
        let logs: Vec<(Vec<Vec<u8>>, Option<u64>)> = futures::stream::iter(calls)
            .buffer_unordered(64)
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        let (mut heads, mut bytes) = (Vec::new(), 0u64);
        for (newest, used) in logs {
            bytes += used.unwrap_or(0);
            if let Some(mut h) = newest.into_iter().next() {
                h.truncate(len);
                heads.push(h);
            }
        }
        Ok((heads, bytes))
    }

    async fn heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for keys in self.keys_with_prefix(prefix).await?.chunks(1000) {
            for mut v in self.read(keys.to_vec()).await?.into_iter().flatten() {
                v.truncate(len);
                out.push(v);
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let listing = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,node-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 disconnected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aa01 ::1:30005@40005 master - 0 0 5 connected
";
        assert_eq!(
            primaries(listing),
            vec![
                ("127.0.0.1".to_string(), 30002),
                ("127.0.0.1".to_string(), 30001),
                ("::1".to_string(), 30005)
            ]
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://u:secret@h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
