//! Progress reports for long transfers: a callback told how many bytes were just processed.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// A callback that receives byte counts as work advances (for a progress bar), and optionally
/// the total once it is known.
#[derive(Clone)]
pub struct Progress {
    advance: Arc<dyn Fn(u64) + Send + Sync>,
    total: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Progress {
    /// Wraps a callback.
    pub fn new(report: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Self {
            advance: Arc::new(report),
            total: None,
        }
    }

    /// Adds a callback told the total number of bytes once the work is planned (the size of
    /// the file or of the files to pack; the length of what is fetched).
    pub fn with_total(mut self, total: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.total = Some(Arc::new(total));
        self
    }

    /// Reports `bytes` more processed.
    pub fn advance(&self, bytes: u64) {
        (self.advance)(bytes);
    }

    /// Reports the total number of bytes the work will process.
    pub fn set_total(&self, bytes: u64) {
        if let Some(total) = &self.total {
            total(bytes);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress")
    }
}

/// A writer that reports what passes through it.
pub(crate) struct ProgressWriter<'a, W: ?Sized> {
    pub(crate) inner: &'a mut W,
    pub(crate) progress: Option<&'a Progress>,
}

impl<W: Write + ?Sized> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(progress) = self.progress {
            progress.advance(written as u64);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that reports what passes through it.
pub(crate) struct ProgressReader<R> {
    pub(crate) inner: R,
    pub(crate) progress: Option<Progress>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if let Some(progress) = &self.progress {
            progress.advance(read as u64);
        }
        Ok(read)
    }
}
