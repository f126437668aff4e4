//! Writes to Google Cloud Storage through its JSON API.
//!
//! `object_store` writes GCS objects through the XML API, large ones as XML multipart uploads.
//! We write through the JSON API instead, as Google's own clients (and so Toil's Google job store)
//! do: an object shorter than one part is one `uploadType=multipart` request that carries its
//! metadata with it, a longer one a resumable upload session whose chunks go up one after another
//! while the next one is read. Either way the object appears under its name only once it is
//! complete, and an aborted session leaves nothing. The JSON API is the one every GCS emulator
//! serves, so these writes are tested against the very server that Toil's client reads from.
//! The price: a large object goes up over one connection, where XML multipart could use two.
//! Reads stay on `object_store` (the XML API, which serves ranges).

use std::sync::Arc;

use bytes::Bytes;
use object_store::gcp::GoogleCloudStorage;
use object_store::path::Path as ObjectPath;
use resource_core::ContentHash;

use crate::source::http::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, redact_query};

/// Bytes sent per request of a resumable upload. The JSON API takes chunks in multiples of
/// 256 KiB and recommends at least 8 MiB: each chunk costs a round trip, and at 100 MB/s a
/// 20 ms round trip per 8 MiB chunk is a fifth of the time.
const RESUMABLE_CHUNK_LEN: usize = 8 << 20;
/// The unit that every chunk but the last must be a multiple of.
const CHUNK_QUANTUM: usize = 256 << 10;

/// Google's own endpoint, which `object_store` also uses when none is configured.
const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com";

/// Why a JSON API request failed; the cause of an `object_store` error of the upload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum GcsJsonError {
    /// The request did not get an answer.
    #[error("{method} {url}")]
    Transport {
        /// The request's method.
        method: &'static str,
        /// The request's URL, without its query.
        url: String,
        /// What the HTTP client saw.
        #[source]
        cause: ureq::Error,
    },
    /// The server answered with an unexpected status.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        /// The request's method.
        method: &'static str,
        /// The request's URL, without its query.
        url: String,
        /// The status.
        status: u16,
        /// The server's own explanation, or the start of its answer.
        message: String,
    },
    /// The server began an upload session but did not say where.
    #[error("POST {url}: the answer names no upload session (no Location header)")]
    NoSession {
        /// The request's URL, without its query.
        url: String,
    },
    /// An internal task failed.
    #[error("internal error: a GCS request's task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The store's credentials could not be had.
    #[error("cannot get a token for GCS")]
    Credential(#[source] object_store::Error),
}

impl From<GcsJsonError> for object_store::Error {
    fn from(error: GcsJsonError) -> Self {
        object_store::Error::Generic {
            store: "GCS (JSON API)",
            source: Box::new(error),
        }
    }
}

type Result<T, E = GcsJsonError> = std::result::Result<T, E>;

/// Writes objects of one bucket through the JSON API, authenticated as the store's
/// `object_store` client is.
#[derive(Debug, Clone)]
pub(crate) struct GcsJsonWriter {
    gcs: Arc<GoogleCloudStorage>,
    /// Whether requests carry no credentials (`GOOGLE_SKIP_SIGNATURE`), as the client's do not.
    anonymous: bool,
    /// `<base>/upload/storage/v1/b/<bucket>/o`
    upload_url: url::Url,
    agent: ureq::Agent,
}

impl GcsJsonWriter {
    /// A writer for `bucket` at `base_url` (Google's own when `None`).
    pub(crate) fn new(
        gcs: Arc<GoogleCloudStorage>,
        bucket: &str,
        base_url: Option<&str>,
        anonymous: bool,
    ) -> Result<Self, url::ParseError> {
        let mut upload_url = url::Url::parse(base_url.unwrap_or(DEFAULT_BASE_URL))?;
        upload_url
            .path_segments_mut()
            .map_err(|()| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
            .pop_if_empty()
            .extend(["upload", "storage", "v1", "b", bucket, "o"]);
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            // Counted from when the request, body included, has been sent: the server's
            // answer to a whole chunk.
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .http_status_as_error(false)
            // A resumable upload answers an accepted chunk with 308 and no Location: that is
            // not a redirect.
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            gcs,
            anonymous,
            upload_url,
            agent,
        })
    }

    /// The `Authorization` header value, if requests carry one.
    async fn authorization(&self) -> Result<Option<String>> {
        if self.anonymous {
            return Ok(None);
        }
        let credential = self
            .gcs
            .credentials()
            .get_credential()
            .await
            .map_err(GcsJsonError::Credential)?;
        Ok(Some(format!("Bearer {}", credential.bearer)))
    }

    fn request_url(&self, upload_type: &str, object: &ObjectPath) -> String {
        let mut url = self.upload_url.clone();
        url.query_pairs_mut()
            .append_pair("uploadType", upload_type)
            .append_pair("name", object.as_ref());
        url.into()
    }

    /// Stores `chunks` as `object` with `metadata`, in one request. `content_hash` is the MD5
    /// of the chunks.
    pub(crate) async fn put_whole(
        &self,
        object: &ObjectPath,
        chunks: Vec<Bytes>,
        content_hash: &ContentHash,
        metadata: &[(&str, String)],
    ) -> Result<()> {
        let description = serde_json::json!({
            "name": object.as_ref(),
            "metadata": metadata
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone().into()))
                .collect::<serde_json::Map<_, _>>(),
        });
        // The boundary must not occur in the media: one that names the media's own MD5 could
        // only if MD5 had a fixed point inside its input.
        let boundary = format!("resource-rs-{content_hash}");
        let media_len: usize = chunks.iter().map(Bytes::len).sum();
        let mut body = Vec::with_capacity(media_len + 512);
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: application/json; charset=UTF-8\r\n\r\n");
        body.extend_from_slice(description.to_string().as_bytes());
        body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        for chunk in &chunks {
            body.extend_from_slice(chunk);
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        drop(chunks);
        let url = self.request_url("multipart", object);
        let content_type = format!("multipart/related; boundary={boundary}");
        let authorization = self.authorization().await?;
        let agent = self.agent.clone();
        blocking(move || {
            let mut request = agent
                .post(&url)
                .header("Content-Type", content_type.as_str());
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization.as_str());
            }
            let response = request.send(&body[..]);
            expect(response, "POST", &url, &[200, 201]).map(drop)
        })
        .await
    }

    /// Begins a resumable upload of `object`.
    pub(crate) async fn start(&self, object: &ObjectPath) -> Result<ResumableUpload> {
        let url = self.request_url("resumable", object);
        let description = serde_json::json!({
            "name": object.as_ref(),
            "contentType": "application/octet-stream",
        })
        .to_string();
        let authorization = self.authorization().await?;
        let agent = self.agent.clone();
        let session = blocking(move || {
            let mut request = agent
                .post(&url)
                .header("Content-Type", "application/json; charset=UTF-8");
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization.as_str());
            }
            let response = expect(
                request.send(description.as_bytes()),
                "POST",
                &url,
                &[200, 201],
            )?;
            response
                .headers()
                .get("Location")
                .and_then(|location| location.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| GcsJsonError::NoSession {
                    url: redact_query(&url),
                })
        })
        .await?;
        Ok(ResumableUpload {
            writer: self.clone(),
            session,
            sent: 0,
            pending: Vec::new(),
            pending_len: 0,
            in_flight: None,
            spare: Vec::new(),
        })
    }
}

/// A resumable upload session: bytes go in with [`put`](Self::put), the object appears with
/// [`finish`](Self::finish), and [`abort`](Self::abort) (or an unfinished drop) leaves nothing.
#[derive(Debug)]
pub(crate) struct ResumableUpload {
    writer: GcsJsonWriter,
    /// The session URI, which is the upload's capability: never shown whole.
    session: String,
    /// Bytes handed to chunk requests so far.
    sent: u64,
    pending: Vec<Bytes>,
    pending_len: usize,
    /// The chunk being sent, which gives its buffer back when done.
    in_flight: Option<tokio::task::JoinHandle<Result<Vec<u8>>>>,
    spare: Vec<u8>,
}

impl ResumableUpload {
    /// Adds `chunk` to the object; sends a chunk request, after the previous one is answered,
    /// once a full chunk is buffered.
    pub(crate) async fn put(&mut self, chunk: Bytes) -> Result<()> {
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= RESUMABLE_CHUNK_LEN {
            let len = self.pending_len - self.pending_len % CHUNK_QUANTUM;
            self.send(len, None).await?;
        }
        Ok(())
    }

    /// Sends what is left as the last chunk and completes the object, `total` bytes long.
    pub(crate) async fn finish(mut self) -> Result<()> {
        let total = self.sent + self.pending_len as u64;
        self.send(self.pending_len, Some(total)).await?;
        self.wait_in_flight().await
    }

    /// Cancels the session; the object is not created. The cancel's own failure is not
    /// reported: an unfinished session expires by itself after a week and is never visible.
    pub(crate) async fn abort(mut self) {
        let _ = self.wait_in_flight().await;
        let session = std::mem::take(&mut self.session);
        let agent = self.writer.agent.clone();
        let _ = blocking(move || {
            // The JSON API answers a cancelled session with 499.
            let response = agent.delete(&session).call();
            expect(response, "DELETE", &session, &[204, 499]).map(drop)
        })
        .await;
    }

    async fn wait_in_flight(&mut self) -> Result<()> {
        if let Some(in_flight) = self.in_flight.take() {
            self.spare = in_flight.await.map_err(GcsJsonError::Task)??;
        }
        Ok(())
    }

    /// Starts a request for the first `len` pending bytes, the last of the object when `total`
    /// is given, after the previous request is answered.
    async fn send(&mut self, len: usize, total: Option<u64>) -> Result<()> {
        self.wait_in_flight().await?;
        let mut body = std::mem::take(&mut self.spare);
        body.clear();
        let mut left = len;
        while left > 0 {
            let Some(first) = self.pending.first_mut() else {
                break;
            };
            let take = left.min(first.len());
            body.extend_from_slice(&first.split_to(take));
            left -= take;
            if first.is_empty() {
                self.pending.remove(0);
            }
        }
        self.pending_len -= body.len();
        let start = self.sent;
        self.sent += body.len() as u64;
        let range = match (body.is_empty(), total) {
            (true, Some(total)) => format!("bytes */{total}"),
            (false, Some(total)) => format!("bytes {start}-{}/{total}", self.sent - 1),
            (_, None) => format!("bytes {start}-{}/*", self.sent - 1),
        };
        // A chunk's request authenticates with the token of its own time: a long upload can
        // outlast one token.
        let authorization = self.writer.authorization().await?;
        let agent = self.writer.agent.clone();
        let session = self.session.clone();
        let expected: &'static [u16] = if total.is_some() { &[200, 201] } else { &[308] };
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let mut request = agent.put(&session).header("Content-Range", range.as_str());
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization.as_str());
            }
            expect(request.send(&body[..]), "PUT", &session, expected)?;
            Ok(body)
        }));
        Ok(())
    }
}

/// Runs a blocking request on a blocking thread.
async fn blocking<T: Send + 'static>(
    request: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(request)
        .await
        .map_err(GcsJsonError::Task)?
}

/// The response, if its status is one of `expected`.
fn expect(
    response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    method: &'static str,
    url: &str,
    expected: &[u16],
) -> Result<ureq::http::Response<ureq::Body>> {
    let mut response = response.map_err(|cause| GcsJsonError::Transport {
        method,
        url: redact_query(url),
        cause,
    })?;
    let status = response.status().as_u16();
    if expected.contains(&status) {
        return Ok(response);
    }
    // The JSON API explains a refusal in `{"error": {"message": …}}`; anything else is shown
    // as it came, cut short.
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(300).collect());
    Err(GcsJsonError::Status {
        method,
        url: redact_query(url),
        status,
        message,
    })
}
