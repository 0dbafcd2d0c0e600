//! The inventory: what DOES exist in the lake, through `object_store`.
//!
//! A plain path or `file://` is a local directory; `s3://`, `gs://` and
//! `az://` (or `abfs://`, `https://`) are object stores, configured from
//! the cloud's standard environment variables (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`) as their own tools are. Listings are streamed: entries reach
//! the caller one at a time, page by page, never as a whole listing.
//! Requests time out, and are retried a few times, never for minutes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use steward_core::time::UnixMs;

/// One object of the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its key, relative to the inventory's root (`/`-separated).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last write.
    pub modified: UnixMs,
}

/// What went wrong with the inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The URL cannot be used.
    #[error("inventory.url {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The store did not answer, or refused.
    #[error("the inventory {url} cannot be read ({what}): {source}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A key that cannot name an object (an empty, `.` or `..` segment, a
    /// control character); the config refuses such keys when it loads.
    #[error("the key {key:?} cannot name an object of the inventory: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A lake to list.
pub struct Inventory {
    store: Arc<dyn ObjectStore>,
    /// Keys are relative to this (the URL's path).
    root: StorePath,
    url: String,
    /// The local directory, for a local lake.
    local: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").field("url", &self.url).finish_non_exhaustive()
    }
}

/// A client setting's key in a builder's own key type (the settings from
/// the environment stay; these add timeouts).
fn config_key<K: std::str::FromStr>(name: &str) -> Result<K, String> {
    name.parse().map_err(|_| format!("the store does not take the setting {name}"))
}

fn retry() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..RetryConfig::default() }
}

impl Inventory {
    /// Opens the lake at `url` and checks that it answers.
    ///
    /// # Errors
    /// A URL that is not a lake, a directory that does not exist, or a
    /// store that does not answer.
    pub fn open(url: &str) -> Result<Self, InventoryError> {
        let bad = |reason: String| InventoryError::BadUrl { url: url.to_owned(), reason };
        // TLS for the cloud stores; a second install (another inventory) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("steward-inventory")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("starting its I/O runtime: {e}")))?;
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad("is empty: set it to a directory, file:///path, s3://bucket/prefix, gs://.. or az://..".into()));
        }
        let (store, root, local): (Arc<dyn ObjectStore>, StorePath, Option<PathBuf>) =
            if !trimmed.contains("://") || trimmed.starts_with("file://") {
                let path = match trimmed.strip_prefix("file://") {
                    Some(p) => {
                        let u = url::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
                        u.to_file_path().map_err(|()| bad(format!("{p:?} is not a local path")))?
                    }
                    None => PathBuf::from(trimmed),
                };
                let meta = std::fs::metadata(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
                if !meta.is_dir() {
                    return Err(bad(format!("{} is not a directory", path.display())));
                }
                let path = std::fs::canonicalize(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| bad(e.to_string()))?;
                (Arc::new(fs), StorePath::default(), Some(path))
            } else {
                let u = url::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
                let root = StorePath::from_url_path(u.path()).map_err(|e| bad(e.to_string()))?;
                let store: Arc<dyn ObjectStore> = match u.scheme() {
                    "s3" | "s3a" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(trimmed)
                            .with_config(config_key("connect_timeout").map_err(&bad)?, "5s")
                            .with_config(config_key("timeout").map_err(&bad)?, "30s")
                            .with_retry(retry())
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(trimmed)
                            .with_config(config_key("connect_timeout").map_err(&bad)?, "5s")
                            .with_config(config_key("timeout").map_err(&bad)?, "30s")
                            .with_retry(retry())
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    "az" | "adl" | "azure" | "abfs" | "abfss" => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(trimmed)
                            .with_config(config_key("connect_timeout").map_err(&bad)?, "5s")
                            .with_config(config_key("timeout").map_err(&bad)?, "30s")
                            .with_retry(retry())
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    other => return Err(bad(format!("unknown scheme {other:?} (use a path, file://, s3://, gs:// or az://)"))),
                };
                // The bucket is the host: keys are relative to the path after it.
                (store, root, None)
            };
        let inv = Self { store, root, url: trimmed.to_owned(), local, rt };
        inv.check()?;
        Ok(inv)
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The lake's directory, for a local lake.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    fn unreachable(&self, what: impl Into<String>) -> impl FnOnce(object_store::Error) -> InventoryError + '_ {
        let what = what.into();
        move |source| InventoryError::Unreachable { url: self.url.clone(), what, source }
    }

    /// One listing request at the root: the store answers.
    fn check(&self) -> Result<(), InventoryError> {
        let root = (!self.root.as_ref().is_empty()).then_some(&self.root);
        self.rt.block_on(self.store.list_with_delimiter(root)).map(|_| ()).map_err(self.unreachable("listing its root"))
    }

    /// The object of `key`, parsed as listings parse the names they return
    /// (`Path::parse`: the key as it is, nothing percent-encoded), so that a
    /// key written by a collector, listed, and checked with [`Self::head`]
    /// is one and the same object (`teams/a#b.json`, `x%41y.json`).
    fn full(&self, key: &str) -> Result<StorePath, InventoryError> {
        let root = self.root.as_ref();
        let joined = match (root.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => root.to_owned(),
            (false, false) => format!("{root}/{key}"),
        };
        StorePath::parse(&joined).map_err(|e| InventoryError::BadKey { key: key.to_owned(), reason: e.to_string() })
    }

    fn relative(&self, location: &StorePath) -> String {
        let s = location.as_ref();
        let root = self.root.as_ref();
        if root.is_empty() {
            s.to_owned()
        } else {
            s.strip_prefix(root).map_or(s, |r| r.trim_start_matches('/')).to_owned()
        }
    }

    /// Lists every object whose key starts with `prefix`, calling `each`
    /// for each; `warn` gets the entries that could not be read (a broken
    /// link, a file that vanished mid-listing), which do not stop the
    /// listing. Returns how many objects were listed.
    ///
    /// # Errors
    /// The store failed the listing itself.
    pub fn list(&self, prefix: &str, each: &mut dyn FnMut(Entry), warn: &mut dyn FnMut(String)) -> Result<u64, InventoryError> {
        // object_store lists by whole path segments: list the directory
        // part of the prefix, keep what starts with the rest.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let listed = self.full(dir)?;
        let start = (!listed.as_ref().is_empty()).then_some(&listed);
        self.rt.block_on(async {
            let mut stream = self.store.list(start);
            let mut n = 0u64;
            let mut errors = 0u32;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(meta) => {
                        let key = self.relative(&meta.location);
                        if key.starts_with(prefix) {
                            n += 1;
                            each(Entry { key, size: meta.size, modified: meta.last_modified.timestamp_millis() });
                        }
                    }
                    // A directory that is not there yet is an empty listing.
                    Err(object_store::Error::NotFound { .. }) if n == 0 && errors == 0 => {}
                    Err(e) if self.local.is_some() => {
                        errors += 1;
                        warn(e.to_string());
                    }
                    Err(e) => return Err(self.unreachable(format!("listing {prefix:?}"))(e)),
                }
            }
            Ok(n)
        })
    }

    /// The object at `key`, if there is one.
    ///
    /// # Errors
    /// The store failed (a missing object is `Ok(None)`).
    pub fn head(&self, key: &str) -> Result<Option<Entry>, InventoryError> {
        match self.rt.block_on(self.store.head(&self.full(key)?)) {
            Ok(meta) => Ok(Some(Entry { key: key.to_owned(), size: meta.size, modified: meta.last_modified.timestamp_millis() })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.unreachable(format!("reading {key:?}"))(e)),
        }
    }

    /// Writes `bytes` at `key` (tests and tools; steward's own loop never
    /// writes to the lake).
    ///
    /// # Errors
    /// The store failed.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), InventoryError> {
        let path = self.full(key)?;
        self.rt.block_on(self.store.put(&path, bytes.into())).map(|_| ()).map_err(self.unreachable(format!("writing {key:?}")))
    }
}
