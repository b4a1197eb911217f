//! Object stores: a source, an entity table or a training-set output may be an `s3://`, `gs://`,
//! `az://` (or `abfs://`) or `file://` URL instead of a path.
//!
//! Credentials and endpoints come from each store's standard environment, never from the repo's
//! YAML (which is committed): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` for S3-compatible servers; `GOOGLE_APPLICATION_CREDENTIALS`;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`. Errors name the URL and say which of
//! the usual three it is: no such bucket, access denied, or unreachable.

use std::path::Path;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::listing::{SourceFiles, TableFormat, wildcard_match};

/// The URL schemes asof reads and writes besides local paths.
pub const SCHEMES: [&str; 5] = ["s3", "gs", "az", "abfs", "file"];

/// `text` as an object store URL, when it is one (`s3://bucket/key`); `None` for a path.
pub fn url_of(text: &str) -> Option<Url> {
    let (scheme, _) = text.split_once("://")?;
    if !SCHEMES.contains(&scheme) {
        return None;
    }
    Url::parse(text).ok()
}

/// Retries of a failed request: a few, within seconds, so a store that is down fails a command
/// quickly with a clear message instead of hanging it for minutes (the crate's default).
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    }
}

/// The store a URL lives in, built from that store's environment.
pub fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme() {
        "s3" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry());
            // An S3-compatible server on plain HTTP (MinIO, moto, a local gateway).
            if std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .is_ok_and(|e| e.starts_with("http://"))
            {
                b = b.with_allow_http(true);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_url(url.as_str())
            .with_retry(retry())
            .build()
            .map(|s| Arc::new(s) as _),
        "az" | "abfs" => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .with_retry(retry())
            .build()
            .map(|s| Arc::new(s) as _),
        "file" => Ok(Arc::new(object_store::local::LocalFileSystem::new())),
        other => {
            return Err(format!(
                "{url}: `{other}://` is not a store asof reads; use s3://, gs://, az:// or file://"
            ));
        }
    };
    built.map_err(|e| format!("{url}: cannot configure the store: {e}"))
}

/// The object path of a URL inside its store.
fn object_path(url: &Url) -> Result<ObjectPath, String> {
    let path = if url.scheme() == "file" {
        url.path().to_string()
    } else {
        url.path().trim_start_matches('/').to_string()
    };
    ObjectPath::parse(path).map_err(|e| format!("{url}: {e}"))
}

/// The URL of the store's root (`s3://bucket`), under which DataFusion finds the store.
fn root(url: &Url) -> Url {
    let mut root = url.clone();
    root.set_path("");
    root.set_query(None);
    root.set_fragment(None);
    root
}

/// Makes `url`'s store readable by `ctx`'s scans.
pub fn register(ctx: &SessionContext, url: &Url) -> Result<(), String> {
    ctx.register_object_store(&root(url), store_for(url)?);
    Ok(())
}

/// A registry that finds any `s3://`, `gs://`, `az://` or `file://` store on first use, built from
/// the environment like [`store_for`]. Cluster executors read whatever URLs a plan names: they
/// cannot know the stores in advance as the planning process does.
#[derive(Debug, Default)]
pub struct StoresFromEnv {
    known: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

impl datafusion::execution::object_store::ObjectStoreRegistry for StoresFromEnv {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = store_for(url).map_err(datafusion::common::DataFusionError::Configuration)?;
        self.known.register_store(&root(url), Arc::clone(&store));
        Ok(store)
    }
}

/// Says what an object store failure means for `url`, in the terms of the fix.
pub fn explain(url: &Url, e: &object_store::Error) -> String {
    let text = e.to_string();
    let bucket = url.host_str().unwrap_or_default();
    if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        format!("{url}: no such bucket `{bucket}`; create it, or fix the URL")
    } else if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || text.contains("AccessDenied")
        || text.contains("403 Forbidden")
        || text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
    {
        format!(
            "{url}: access denied; check the credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, or AZURE_STORAGE_ACCOUNT_KEY)"
        )
    } else if text.contains("error sending request")
        || text.contains("Connection refused")
        || text.contains("dns error")
        || text.contains("timed out")
    {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .map(|e| format!(" (AWS_ENDPOINT_URL={e})"))
            .unwrap_or_default();
        format!("{url}: the store is unreachable{endpoint}; check the endpoint and the network")
    } else if let object_store::Error::NotFound { .. } = e {
        format!("{url}: no such object")
    } else {
        format!("{url}: {text}")
    }
}

/// The tables at `url`, as [`crate::listing::list`] finds them on disk: one object, a glob in
/// the last component, or every table under a prefix (skipping names that start with `.` or
/// `_`). `Ok(None)` when there are none yet.
pub async fn list(url: &Url) -> Result<Option<SourceFiles>, String> {
    let store = store_for(url)?;
    let path = object_path(url)?;
    let name = path.filename().unwrap_or_default().to_string();
    let to_url = |p: &ObjectPath| -> String {
        let mut u = root(url);
        if url.scheme() == "file" {
            u.set_path(&format!("/{p}"));
        } else {
            u.set_path(p.as_ref());
        }
        u.to_string()
    };
    let mut files: Vec<String> = Vec::new();
    if name.contains('*') {
        let parent: ObjectPath = path.parts().take(path.parts().count() - 1).collect();
        let objects: Vec<_> = store
            .list_with_delimiter(Some(&parent))
            .await
            .map_err(|e| explain(url, &e))?
            .objects;
        for o in objects {
            let n = o.location.filename().unwrap_or_default();
            if wildcard_match(&name, n) && TableFormat::of(Path::new(n)).is_some() {
                files.push(to_url(&o.location));
            }
        }
    } else if TableFormat::of(Path::new(&name)).is_some() {
        match store.head(&path).await {
            Ok(_) => files.push(url.to_string()),
            // A missing object and a missing bucket look alike to HEAD (a bare 404); a listing
            // of the bucket tells them apart, and only on this path.
            Err(object_store::Error::NotFound { .. }) => {
                if let Err(e) = store.list_with_delimiter(None).await {
                    return Err(explain(url, &e));
                }
            }
            Err(e) => return Err(explain(url, &e)),
        }
    } else {
        let prefix = if path.as_ref().is_empty() {
            None
        } else {
            Some(&path)
        };
        let objects: Vec<_> = store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| explain(url, &e))?;
        for o in objects {
            let skipped = o
                .location
                .parts()
                .skip(path.parts().count())
                .any(|p| p.as_ref().starts_with('.') || p.as_ref().starts_with('_'));
            let n = o.location.filename().unwrap_or_default();
            if !skipped && TableFormat::of(Path::new(n)).is_some() {
                files.push(to_url(&o.location));
            }
        }
    }
    files.sort();
    let Some(first) = files.first() else {
        return Ok(None);
    };
    let format = TableFormat::of(Path::new(first)).expect("only tables are listed");
    if let Some(other) = files
        .iter()
        .find(|f| TableFormat::of(Path::new(f)) != Some(format))
    {
        return Err(format!(
            "{url} mixes formats ({first} and {other}); keep one format per source"
        ));
    }
    Ok(Some(SourceFiles { files, format }))
}

/// The whole object at `url` (a source's first file, for `apply`'s schema probe).
pub async fn read(url: &Url) -> Result<bytes::Bytes, String> {
    let store = store_for(url)?;
    let path = object_path(url)?;
    let got = store.get(&path).await.map_err(|e| explain(url, &e))?;
    got.bytes().await.map_err(|e| explain(url, &e))
}

/// Uploads the local file `local` to `url` as one object. Multipart: the object appears whole
/// when the upload completes, or not at all, so a reader never sees half an output.
pub async fn upload(local: &Path, url: &Url) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let store = store_for(url)?;
    let path = object_path(url)?;
    let upload = store
        .put_multipart(&path)
        .await
        .map_err(|e| explain(url, &e))?;
    let mut writer = object_store::WriteMultipart::new(upload);
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| format!("{}: {e}", local.display()))?;
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("{}: {e}", local.display()))?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| explain(url, &e))?;
    Ok(())
}

/// Deletes every object under the prefix `url` (a cluster job's staged entity rows).
pub async fn delete_prefix(url: &Url) -> Result<(), String> {
    let store = store_for(url)?;
    let path = object_path(url)?;
    let objects: Vec<_> = store
        .list(Some(&path))
        .try_collect()
        .await
        .map_err(|e| explain(url, &e))?;
    for o in objects {
        store
            .delete(&o.location)
            .await
            .map_err(|e| explain(url, &e))?;
    }
    Ok(())
}

/// Runs `f` to completion from synchronous code, inside or outside a tokio runtime (apply's
/// schema probe is synchronous; tests call it from async code).
pub fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime")
                .block_on(f)
        })
        .join()
        .expect("the object store thread")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_object_stores_and_paths_are_not() {
        assert!(url_of("s3://bucket/data/x.parquet").is_some());
        assert!(url_of("gs://bucket/x").is_some());
        assert!(url_of("file:///tmp/x.parquet").is_some());
        assert!(url_of("data/x.parquet").is_none());
        assert!(url_of("/abs/x.parquet").is_none());
        assert!(url_of("http://host/x.parquet").is_none());
    }

    #[test]
    fn file_urls_list_like_folders() {
        let d = tempfile::tempdir().unwrap();
        for name in [
            "a.parquet",
            "b.parquet",
            "_SUCCESS",
            ".hidden.parquet",
            "notes.txt",
        ] {
            std::fs::write(d.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(d.path().join("part=1")).unwrap();
        std::fs::write(d.path().join("part=1/c.parquet"), b"x").unwrap();
        let url = Url::from_directory_path(d.path()).unwrap();
        let listed = block_on(list(&url)).unwrap().unwrap();
        let names: Vec<&str> = listed
            .files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet", "c.parquet"]);
        let glob = Url::parse(&format!("{}a*.parquet", url)).unwrap();
        assert_eq!(block_on(list(&glob)).unwrap().unwrap().files.len(), 1);
        let missing = Url::parse(&format!("{}nope/", url)).unwrap();
        assert!(block_on(list(&missing)).unwrap().is_none());
    }
}
