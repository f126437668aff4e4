//! Robust reading of a [`ByteSource`]: resume at the current offset after a transient failure or an
//! early end, detect a stalled transfer, and fetch a remote source as several ranges at once.
//!
//! The worker's hash and unpacking see one uninterrupted stream, in order; resumption and parallel
//! ranges happen underneath.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{StoreError, from_io, to_io};
use crate::source::{ByteSource, Opening};

/// Bytes read from the source per chunk.
const CHUNK_LEN: usize = 1 << 20;
/// Chunks read ahead of the consumer.
const READ_AHEAD: usize = 4;

/// The longest whole object read on the calling thread, from a source whose reads notice stalls
/// themselves. For these the reading thread costs more (its start, its stack and its own malloc
/// arena, in every worker process) than it saves; larger ones gain from reading beside hashing.
const READ_ON_CALLING_THREAD_MAX: u64 = 256 << 10;

/// Whether `source`'s reads fail by themselves within `policy`'s stall timeout.
fn notices_stalls(source: &dyn ByteSource, policy: &FetchPolicy) -> bool {
    source
        .read_timeout()
        .is_some_and(|timeout| timeout <= policy.stall_timeout)
}

/// How hard to try when fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Whole attempts (a fresh temporary directory each) before giving up.
    pub attempts: u32,
    /// Resumptions at the current offset within one attempt.
    pub resumes_per_attempt: u32,
    /// The pause before the first retry; doubled each time.
    pub first_backoff: Duration,
    /// How long no byte may arrive before the transfer counts as stalled.
    pub stall_timeout: Duration,
    /// Ranges fetched at once from a source that gains from it (a web server or an object store;
    /// see [`ByteSource::gains_from_parallel_ranges`]). One connection to S3 carries about
    /// 100 MB/s, less than MD5's pace, while several together approach the link's. 1 reads one
    /// stream.
    pub parallel_ranges: usize,
    /// Bytes per range; the memory held for ranges (in flight, arrived ahead of the reader, or
    /// being read) is at most `2 × parallel_ranges` times this (bodies ask for the next range
    /// shortly before they end, so a range may be asked for while `parallel_ranges` others still
    /// stream).
    pub range_len: u64,
    /// Bytes asked for by a fetch's first request, which also gives the size: an object no
    /// longer than this is fetched with that one request (and held in memory while it is read).
    pub first_request_len: u64,
    /// How to choose between parallel ranges and one stream for a source that honours ranges.
    pub range_choice: RangeChoice,
}

/// How a fetch chooses between parallel ranges and one stream for a source that honours ranges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeChoice {
    /// Time the first range and read parallel ranges only where they pay (see
    /// [`FetchPolicy::parallel_ranges`]): the right choice on an unknown server, but one that
    /// depends on timing, so a loaded machine may choose differently from run to run.
    #[default]
    Measure,
    /// Always parallel ranges: the same requests every run, whatever the timing.
    Ranges,
    /// Always one stream.
    OneStream,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            resumes_per_attempt: 5,
            first_backoff: Duration::from_millis(100),
            stall_timeout: Duration::from_secs(60),
            parallel_ranges: 4,
            range_len: 4 << 20,
            // A few MB covers the resources most shipped (scripts, packages, small virtualenvs)
            // with a little room for the archive's headers.
            first_request_len: 8 << 20,
            range_choice: RangeChoice::Measure,
        }
    }
}

/// The `len` bytes of `source` as one stream, resumed and watched for stalls underneath, going on
/// from `opening`, the answer to the first request, asked for at `asked`: when it holds the whole
/// object, read on the calling thread (small, from a source whose reads notice stalls) or ahead by
/// one thread; else continued by parallel ranges where the source gains from them, or by one
/// stream.
pub(crate) fn fetch_stream(
    source: &Arc<dyn ByteSource>,
    opening: Opening,
    asked: Instant,
    policy: &FetchPolicy,
) -> io::Result<Box<dyn Read + Send>> {
    let whole = opening.is_whole();
    let Opening {
        len,
        body,
        body_len,
        ..
    } = opening;
    if whole {
        let resuming = ResumingReader::new(Arc::clone(source), len, policy).continuing(body);
        if len <= READ_ON_CALLING_THREAD_MAX && notices_stalls(source.as_ref(), policy) {
            return Ok(Box::new(resuming));
        }
        return Ok(Box::new(ReadAhead::spawn(
            resuming,
            len,
            source.location(),
            policy.stall_timeout,
        )?));
    }
    Ok(Box::new(ParallelRanges::spawn(
        Arc::clone(source),
        FirstRange {
            body,
            end: body_len,
            asked,
        },
        len,
        policy,
    )?))
}

/// Copies what `buf` takes of `current` from `*consumed` on, and advances `*consumed`.
pub(crate) fn copy_out(current: &[u8], consumed: &mut usize, buf: &mut [u8]) -> usize {
    let available = &current[*consumed..];
    let taken = available.len().min(buf.len());
    buf[..taken].copy_from_slice(&available[..taken]);
    *consumed += taken;
    taken
}

/// Whether retrying could help: for a transfer that broke, stalled or met a busy server; not for
/// what is missing, forbidden, unsupported or wrong, nor for our own bugs. Every variant is
/// listed, so that a new one is classified when it is added.
pub(crate) fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Io { cause, .. } => !matches!(
            cause.kind(),
            io::ErrorKind::NotFound
                | io::ErrorKind::PermissionDenied
                | io::ErrorKind::IsADirectory
                // A full disk, a file-size limit, a read-only file system or a name the file
                // system refuses: the same write would fail again.
                | io::ErrorKind::StorageFull
                | io::ErrorKind::FileTooLarge
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::InvalidFilename
        ),
        StoreError::HttpStatus { status, .. } => matches!(status, 408 | 429 | 500..=599),
        StoreError::Stalled { .. } | StoreError::Truncated { .. } | StoreError::Http { .. } => true,
        // The same request would meet the same refusal.
        StoreError::BadLocator { .. }
        | StoreError::Missing { .. }
        | StoreError::NotAFileOrDirectory { .. }
        | StoreError::KindMismatch { .. }
        | StoreError::UrlTtl { .. }
        | StoreError::Stale { .. }
        | StoreError::UnsafeName { .. }
        | StoreError::UnsupportedUrl { .. }
        | StoreError::Pack(_)
        | StoreError::Scan(_) => false,
        // The cloud clients retry their requests themselves, with backoff, before they fail.
        StoreError::ObjectStore { .. } => false,
        // Wrong bytes: the installer decides whether they are worth one more attempt.
        StoreError::ContentMismatch { .. } | StoreError::Unpack { .. } => false,
        // Waiting longer is the caller's choice (the lock timeout), not a retry's.
        StoreError::LockTimeout { .. } | StoreError::EntryVanished { .. } => false,
        // Already the end of retrying.
        StoreError::GaveUp { .. } => false,
        // Bugs and panics: repeating would hide them, not cure them.
        StoreError::RecordJson { .. }
        | StoreError::TaskFailed { .. }
        | StoreError::ThreadDied { .. }
        | StoreError::BrokenInvariant { .. } => false,
    }
}

/// A reader that reopens the source at its current offset when a read fails transiently or the
/// stream ends before its end.
struct ResumingReader {
    source: Arc<dyn ByteSource>,
    pos: u64,
    end: u64,
    /// Whether streams are asked for up to `end` only (a range) rather than to the source's end.
    bounded: bool,
    inner: Option<Box<dyn Read + Send>>,
    resumes_left: u32,
    backoff: Duration,
}

impl ResumingReader {
    /// Reads the whole source, `len` bytes long.
    fn new(source: Arc<dyn ByteSource>, len: u64, policy: &FetchPolicy) -> Self {
        Self::reading(source, 0, len, false, policy)
    }

    /// Reads the bytes from `start` to the end of the source, `len` bytes long.
    fn from(source: Arc<dyn ByteSource>, start: u64, len: u64, policy: &FetchPolicy) -> Self {
        Self::reading(source, start, len, false, policy)
    }

    /// Goes on with `stream`, opened already at the reader's start, before opening any.
    fn continuing(mut self, stream: Box<dyn Read + Send>) -> Self {
        self.inner = Some(stream);
        self
    }

    /// Reads the bytes from `start` up to `end`, exclusive.
    fn range(source: Arc<dyn ByteSource>, start: u64, end: u64, policy: &FetchPolicy) -> Self {
        Self::reading(source, start, end, true, policy)
    }

    fn reading(
        source: Arc<dyn ByteSource>,
        start: u64,
        end: u64,
        bounded: bool,
        policy: &FetchPolicy,
    ) -> Self {
        Self {
            source,
            pos: start,
            end,
            bounded,
            inner: None,
            resumes_left: policy.resumes_per_attempt,
            backoff: policy.first_backoff,
        }
    }

    fn open(&self) -> Result<Box<dyn Read + Send>, StoreError> {
        if self.bounded {
            self.source.open_range(self.pos, self.end - self.pos)
        } else {
            self.source.open_from(self.pos)
        }
    }

    /// Decides whether to resume after `error`; returns it when not.
    fn resume_or(&mut self, error: StoreError) -> io::Result<()> {
        self.inner = None;
        if self.resumes_left == 0 || !is_transient(&error) {
            return Err(to_io(error));
        }
        self.resumes_left -= 1;
        thread::sleep(self.backoff);
        self.backoff = self.backoff.saturating_mul(2);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Nothing is left to ask for: a request for it would be refused as out of range.
        if self.pos >= self.end && self.inner.is_none() {
            return Ok(0);
        }
        loop {
            let inner = match &mut self.inner {
                Some(inner) => inner,
                None => match self.open() {
                    Ok(inner) => self.inner.insert(inner),
                    Err(error) => {
                        self.resume_or(error)?;
                        continue;
                    }
                },
            };
            match inner.read(buf) {
                Ok(0) if self.pos < self.end && !buf.is_empty() => {
                    let error = StoreError::Truncated {
                        url: self.source.location().to_owned(),
                        got: self.pos,
                        expected: self.end,
                    };
                    self.resume_or(error)?;
                }
                Ok(read) => {
                    // A stream that sends more than its range asked for is cut at the range's end.
                    let read = if self.bounded {
                        read.min(usize::try_from(self.end - self.pos).unwrap_or(read))
                    } else {
                        read
                    };
                    self.pos += read as u64;
                    return Ok(read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let error = from_io(error, self.source.location());
                    self.resume_or(error)?;
                }
            }
        }
    }
}

/// A reader fed by a thread that reads ahead, so that a source that stops sending is noticed after
/// `stall_timeout` instead of blocking forever. A stalled reading thread is abandoned; it ends when
/// its read returns.
struct ReadAhead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    consumed: usize,
    finished: bool,
    stall_timeout: Duration,
    location: String,
}

impl ReadAhead {
    /// Reads `reader`, which should hold `len` more bytes, ahead on a thread of its own.
    fn spawn(
        mut reader: impl Read + Send + 'static,
        len: u64,
        location: &str,
        stall_timeout: Duration,
    ) -> io::Result<Self> {
        let (chunk_tx, chunks): (SyncSender<io::Result<Vec<u8>>>, _) = sync_channel(READ_AHEAD);
        let (recycle, spare) = channel::<Vec<u8>>();
        thread::Builder::new()
            .name("resource-fetch".into())
            .spawn(move || {
                let mut left = len;
                loop {
                    // A buffer no longer than what is left, and one byte more, so that a short
                    // stream is read, and its end seen, without faulting in a whole chunk. (A
                    // stream longer than it should be reads on in whole chunks; its bytes are
                    // refused downstream.)
                    let want = match usize::try_from(left) {
                        Ok(0) | Err(_) => CHUNK_LEN,
                        Ok(left) => left.saturating_add(1).min(CHUNK_LEN),
                    };
                    let mut buffer = match spare.try_recv() {
                        Ok(buffer) => buffer,
                        Err(_) => vec![0u8; want],
                    };
                    buffer.resize(want, 0);
                    let message = fill(&mut reader, &mut buffer).map(|filled| {
                        buffer.truncate(filled);
                        buffer
                    });
                    // `fill` stops short only at the end of the stream.
                    let ended = matches!(&message, Ok(chunk) if chunk.len() < want);
                    let last = !matches!(&message, Ok(chunk) if !chunk.is_empty());
                    if let Ok(chunk) = &message {
                        left = left.saturating_sub(chunk.len() as u64);
                    }
                    if chunk_tx.send(message).is_err() || last {
                        return;
                    }
                    if ended {
                        // The reader takes an empty chunk for the end.
                        let _ = chunk_tx.send(Ok(Vec::new()));
                        return;
                    }
                }
            })?;
        Ok(Self {
            chunks,
            recycle,
            current: Vec::new(),
            consumed: 0,
            finished: false,
            stall_timeout,
            location: location.to_owned(),
        })
    }
}

/// Reads until `buffer` is full or the stream ends.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed == self.current.len() {
            if self.finished {
                return Ok(0);
            }
            match self.chunks.recv_timeout(self.stall_timeout) {
                Ok(Ok(chunk)) if chunk.is_empty() => {
                    self.finished = true;
                    return Ok(0);
                }
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    // The reading thread may have ended; then the buffer is simply dropped.
                    let _ = self.recycle.send(spent);
                    self.consumed = 0;
                }
                Ok(Err(error)) => return Err(error),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(to_io(StoreError::Stalled {
                        url: self.location.clone(),
                        waited: self.stall_timeout,
                    }));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(to_io(StoreError::ThreadDied {
                        url: self.location.clone(),
                        thread: "the reading thread",
                    }));
                }
            }
        }
        Ok(copy_out(&self.current, &mut self.consumed, buf))
    }
}

/// One range for a fetching thread: the bytes from `start` up to `end`, read into `buffer`, sent
/// back on `reply`.
struct RangeJob {
    start: u64,
    end: u64,
    buffer: Vec<u8>,
    reply: SyncSender<io::Result<ArrivedRange>>,
}

/// A fetched range, or a piece of one: the first range reaches the reader piece by piece as it
/// arrives (see [`FIRST_RANGE_PIECE_LEN`]), every other range whole.
struct ArrivedRange {
    bytes: Vec<u8>,
    /// Whether this ends its range.
    last: bool,
}

/// The pieces in which the first range is handed to the reader while it arrives. The reader
/// (hashing and unpacking, the slowest stage of a large download) then starts on the first
/// bytes instead of waiting for the whole first range, which is the largest one and, at 100 MB/s,
/// takes 80 ms for its 8 MiB; the later ranges come in while the reader is busy, so they gain
/// nothing from pieces and stay whole.
const FIRST_RANGE_PIECE_LEN: usize = 256 << 10;

/// How much more of a range's buffer is readied (zeroed, and so made resident) each time the
/// bytes received reach the end of what is ready.
const FILL_STEP: usize = 256 << 10;

/// The first range, answered by the first request: its body, where it ends, and when it was asked
/// for.
struct FirstRange {
    body: Box<dyn Read + Send>,
    end: u64,
    asked: Instant,
}

/// Whether fetching `parallel` ranges at once beats one stream, for a server whose requests wait
/// `first_byte_wait` for their first byte and whose range bodies take `range_body`.
///
/// With `n` ranges of per-request cost `f` and body time `b`, `parallel` at once take about
/// `n / parallel × (f + b)` and one stream `n × b`: ranges pay while `f < (parallel − 1) × b`.
/// A server that reads a whole object to answer any request (moto does) has an `f` far above
/// that, and is then read as one stream.
fn ranges_pay(first_byte_wait: Duration, range_body: Duration, parallel: usize) -> bool {
    let factor = u32::try_from(parallel.saturating_sub(1)).unwrap_or(u32::MAX);
    first_byte_wait <= range_body.saturating_mul(factor)
}

/// A pace one connection rarely beats from an object store or a web server across a network: at
/// it, a 4 MiB range body takes about 17 ms.
const FAST_CONNECTION_BYTES_PER_SECOND: usize = 250_000_000;

/// Whether ranges pay even if one connection turns out as fast as
/// [`FAST_CONNECTION_BYTES_PER_SECOND`], judged from the first request's wait for its answer,
/// before any of its body is timed. Then the next ranges are asked for at once, beside the first
/// one. Otherwise whether they pay depends on the body's pace, and they are asked for only once
/// [`FirstJudge`] has timed it: a server whose every request costs far more than a round trip
/// (moto copies the whole object to answer any request) then gets no request that the judgement
/// would not have made, at the cost, where ranges do pay, of starting them a few MiB later.
fn ranges_may_pay_at_any_pace(waited: Duration, policy: &FetchPolicy) -> bool {
    let fast_body = time_for(
        policy.range_len,
        Duration::from_secs(1),
        FAST_CONNECTION_BYTES_PER_SECOND,
    );
    ranges_pay(waited, fast_body, policy.parallel_ranges)
}

/// How a [`ParallelRanges`] reads past the ranges asked for.
enum Mode {
    /// Ranges, as long as the dispatch holds them; then the rest stream, if one was opened.
    Ranges,
    /// Reading the rest, after the ranges asked for, as one stream.
    Stream(ReadAhead),
}

/// Which ranges are asked for, and when: shared by the reader, which takes the ranges in order,
/// and by the fetching threads, which ask ahead as their bodies near their end.
///
/// Each request costs a first-byte wait (a round trip, and whatever the server spends) before
/// its body flows. A thread that asked for its next range only after its body ended would leave
/// its connection idle for that wait every range: at a 20 ms round trip and 4 MiB bodies at
/// 100 MB/s, a third of the time. So once ranges are chosen, a body that is about one first-byte
/// wait from its end asks for the next range then, on another connection, and the bodies
/// streaming at any moment stay about `streams`. Connections open at once: up to `most_pending`
/// (twice `parallel_ranges`, less the range the reader holds), of which about `streams` carry
/// bodies and the rest wait for their first byte or for the reader.
struct Dispatch {
    /// The fetching threads' queue, while ranges are asked for.
    jobs: Option<Sender<RangeJob>>,
    /// The ranges asked for and not yet taken by the reader, in order.
    pending: VecDeque<Receiver<io::Result<ArrivedRange>>>,
    next_start: u64,
    len: u64,
    range_len: u64,
    /// Ranges asked for whose bodies have not yet neared their end: the bodies streaming now or
    /// about to.
    streaming: usize,
    /// How many bodies stream at once: `parallel_ranges`.
    streams: usize,
    /// The most ranges asked for and not yet taken by the reader, each held in memory once it
    /// arrived: what bounds memory.
    most_pending: usize,
    /// Whether a body nearing its end asks for the next range (once ranges are chosen).
    asking_ahead: bool,
    /// Buffers of ranges the reader is done with, for the next ranges.
    spare: Vec<Vec<u8>>,
    /// The one stream for the rest, once ranges were judged not to pay: read after the ranges
    /// asked for before the judgement.
    rest: Option<io::Result<ReadAhead>>,
}

impl Dispatch {
    /// Asks for the next ranges while fewer than `streams` bodies stream and fewer than
    /// `most_pending` ranges wait.
    fn top_up(&mut self) {
        let Some(jobs) = &self.jobs else { return };
        while self.next_start < self.len
            && self.streaming < self.streams
            && self.pending.len() < self.most_pending
        {
            let start = self.next_start;
            let end = start.saturating_add(self.range_len.max(1)).min(self.len);
            let (reply, arrival) = sync_channel(1);
            let buffer = self.spare.pop().unwrap_or_default();
            // When every thread is gone the job is dropped with its `reply`, and waiting for it
            // reports that.
            let _ = jobs.send(RangeJob {
                start,
                end,
                buffer,
                reply,
            });
            self.next_start = end;
            self.streaming += 1;
            self.pending.push_back(arrival);
        }
    }

    /// A range's body is about one first-byte wait from its end (or ended, or failed): one body
    /// fewer streams, and when asking ahead the next range is asked for now, so that its first
    /// byte comes about when this body ends.
    fn body_nearly_done(&mut self) {
        self.streaming = self.streaming.saturating_sub(1);
        if self.asking_ahead {
            self.top_up();
        }
    }
}

/// Tells `dispatch`, once, that a range's body nears its end; for the first range under
/// [`RangeChoice::Measure`], also judges from its pace whether ranges pay.
struct NearEnd {
    dispatch: Arc<Mutex<Dispatch>>,
    told: bool,
    judge: Option<FirstJudge>,
}

/// The choice between ranges and one stream, made early from the first range's first-byte wait
/// and the pace of its body past the first burst, so that the choice (and asking ahead, or the rest stream)
/// does not wait for the reader to take the whole first range.
struct FirstJudge {
    source: Arc<dyn ByteSource>,
    policy: FetchPolicy,
    /// The body bytes over which the pace is timed, from the first to the second: past the
    /// first bytes, which come as a burst (queued while the first byte was waited for, in socket
    /// buffers or in a link's banked credit), and early enough in a first range of several MiB
    /// that the choice comes long before its end.
    window: (usize, usize),
    /// When the body reached the window's start, and how many bytes it had then.
    mark: Option<(Instant, usize)>,
}

impl FirstJudge {
    /// The window for a first range of `len` bytes: from an eighth of it (at most 1 MiB) to
    /// three times that.
    fn window_for(len: u64) -> (usize, usize) {
        let start = usize::try_from((len / 8).clamp(1, 1 << 20)).unwrap_or(1 << 20);
        (start, start.saturating_mul(3))
    }
}

/// How a body has arrived so far.
struct BodyPace {
    /// When this was seen.
    now: Instant,
    /// From asking to the first byte: the server's cost per request.
    first_byte_wait: Duration,
    /// From the first byte to the latest.
    body_so_far: Duration,
    /// Bytes received after the first read, over `body_so_far`.
    since_first: usize,
    /// Bytes of the range received, and wanted in all.
    filled: usize,
    want: usize,
}

/// The time `len` bytes take at the pace of `bytes` in `took`; zero when no bytes were timed
/// (everything came in one read, which is as fast as a body gets).
fn time_for(len: u64, took: Duration, bytes: usize) -> Duration {
    if bytes == 0 {
        return Duration::ZERO;
    }
    let nanos = took.as_nanos() * u128::from(len) / bytes as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl BodyPace {
    /// Whether the rest of the body should take about as long as the first byte did: then a
    /// request asked for now answers about when this body ends.
    fn near_end(&self) -> bool {
        let left = (self.want - self.filled) as u128;
        self.since_first > 0
            && left * self.body_so_far.as_nanos()
                <= self.since_first as u128 * self.first_byte_wait.as_nanos()
    }
}

impl NearEnd {
    fn new(dispatch: &Arc<Mutex<Dispatch>>) -> Self {
        Self {
            dispatch: Arc::clone(dispatch),
            told: false,
            judge: None,
        }
    }

    /// Takes in how the body has arrived so far: judges once enough has come, and tells when the
    /// body nears its end.
    fn observe(&mut self, pace: &BodyPace) {
        if let Some(judge) = &mut self.judge {
            let (start, end) = judge.window;
            if judge.mark.is_none() && pace.filled >= start {
                judge.mark = Some((pace.now, pace.filled));
            }
            if pace.filled >= end.min(pace.want) {
                self.judge_now(pace);
            }
        }
        if pace.near_end() {
            self.tell();
        }
    }

    /// Makes the choice now, if it is still to be made, from `pace`.
    fn judge_now(&mut self, pace: &BodyPace) {
        let Some(judge) = self.judge.take() else {
            return;
        };
        // The pace over the window; a body too short for one is judged over all of it.
        let (took, bytes) = match judge.mark {
            Some((at, filled)) if pace.filled > filled => {
                (pace.now.duration_since(at), pace.filled - filled)
            }
            _ => (pace.body_so_far, pace.since_first),
        };
        let range_body = time_for(judge.policy.range_len, took, bytes);
        // A poisoned lock means a thread panicked while asking; the reader reports it.
        let Ok(mut dispatch) = self.dispatch.lock() else {
            return;
        };
        if ranges_pay(
            pace.first_byte_wait,
            range_body,
            judge.policy.parallel_ranges,
        ) {
            dispatch.choose_ranges();
            dispatch.top_up();
        } else {
            rest_as_stream(&mut dispatch, &judge.source, &judge.policy);
        }
    }

    fn tell(&mut self) {
        if std::mem::replace(&mut self.told, true) {
            return;
        }
        // A poisoned lock means a thread panicked while asking; the reader reports it.
        if let Ok(mut dispatch) = self.dispatch.lock() {
            dispatch.body_nearly_done();
        }
    }
}

/// A reader of a remote source fetched as consecutive ranges, about `parallel_ranges` bodies at a
/// time, each range by a thread of its own and each resumed on its own after a transient
/// failure; the reader gets them in order.
///
/// The first range is the body of the first request, which gave the size; the next ranges are
/// asked for while it arrives, never after it. Under [`RangeChoice::Measure`] the first range's
/// first-byte wait and the pace of its body past the first burst decide early, while it still
/// streams (see [`FirstJudge`] and [`ranges_pay`]): when a request costs the server more than
/// ranges save, the ranges in flight are read and the rest comes as one stream, opened at once.
/// Ranges are asked for beside the first one only when its wait says they pay at any plausible
/// pace (see [`ranges_may_pay_at_any_pace`]); otherwise none is asked for before the judgement. Once ranges are
/// chosen, each body asks for the next range about one first-byte wait before its end (see
/// [`Dispatch`]). At most `2 × parallel_ranges` ranges are in flight, waiting ahead of the
/// reader or being read, so memory stays bounded whatever the source's length. A transfer is
/// stalled when no thread has received a byte for `stall_timeout`; stalled threads are abandoned
/// and end when their read returns.
struct ParallelRanges {
    policy: FetchPolicy,
    mode: Mode,
    dispatch: Arc<Mutex<Dispatch>>,
    /// The range being read, while pieces of it are still to come.
    in_progress: Option<Receiver<io::Result<ArrivedRange>>>,
    current: Vec<u8>,
    consumed: usize,
    /// Bytes received by all threads so far: progress anywhere means the transfer is not stalled.
    received: Arc<AtomicU64>,
    location: String,
}

impl ParallelRanges {
    /// Goes on fetching the `len` bytes of `source` from `first`, the first request's answer.
    fn spawn(
        source: Arc<dyn ByteSource>,
        first: FirstRange,
        len: u64,
        policy: &FetchPolicy,
    ) -> io::Result<Self> {
        let location = source.location().to_owned();
        let received = Arc::new(AtomicU64::new(0));
        let streams = policy.parallel_ranges.max(1);
        // Room for every piece of the first range, so that its thread never waits to send one.
        let first_pieces = usize::try_from(first.end)
            .unwrap_or(usize::MAX)
            .div_ceil(FIRST_RANGE_PIECE_LEN);
        let (reply, arrival) = sync_channel(first_pieces.saturating_add(1));
        let dispatch = Arc::new(Mutex::new(Dispatch {
            jobs: None,
            pending: VecDeque::from([arrival]),
            next_start: first.end,
            len,
            range_len: policy.range_len,
            streaming: 1,
            streams,
            // Until ranges are chosen, no more are asked for than stream.
            most_pending: streams,
            asking_ahead: false,
            spare: Vec::new(),
            rest: None,
        }));
        let ranges = policy.parallel_ranges > 1
            && policy.range_len > 0
            && source.gains_from_parallel_ranges()
            && policy.range_choice != RangeChoice::OneStream;
        let mut near_end = NearEnd::new(&dispatch);
        if ranges {
            // The fetching threads are there before the first range can be judged, so that the
            // judgement finds the queue it asks on.
            start_fetching(&source, &received, &dispatch, policy)?;
            let mut dispatch = lock(&dispatch, &location)?;
            let ask_now = if policy.range_choice == RangeChoice::Ranges {
                dispatch.choose_ranges();
                true
            } else {
                near_end.judge = Some(FirstJudge {
                    source: Arc::clone(&source),
                    policy: *policy,
                    window: FirstJudge::window_for(first.end),
                    mark: None,
                });
                ranges_may_pay_at_any_pace(first.asked.elapsed(), policy)
            };
            if ask_now {
                dispatch.top_up();
            }
        } else {
            let mut dispatch = lock(&dispatch, &location)?;
            rest_as_stream(&mut dispatch, &source, policy);
        }
        {
            let source = Arc::clone(&source);
            let received = Arc::clone(&received);
            let policy = *policy;
            thread::Builder::new()
                .name("resource-range".into())
                .spawn(move || {
                    let location = source.location().to_owned();
                    let mut reader =
                        ResumingReader::range(source, 0, first.end, &policy).continuing(first.body);
                    let mut send_piece = |bytes| {
                        // A reader that is gone needs no more pieces.
                        let _ = reply.send(Ok(ArrivedRange { bytes, last: false }));
                    };
                    let result = read_timed(
                        &mut reader,
                        0..first.end,
                        Vec::new(),
                        Some(&mut send_piece),
                        &received,
                        &location,
                        first.asked,
                        &mut near_end,
                    );
                    near_end.tell();
                    let _ = reply.send(result);
                })?;
        }
        Ok(Self {
            location,
            policy: *policy,
            mode: Mode::Ranges,
            dispatch,
            in_progress: None,
            current: Vec::new(),
            consumed: 0,
            received,
        })
    }

    fn lock_dispatch(&self) -> io::Result<MutexGuard<'_, Dispatch>> {
        lock(&self.dispatch, &self.location)
    }

    /// Waits for a range, failing when nothing at all arrives for `stall_timeout`.
    fn wait_for(&self, arrival: &Receiver<io::Result<ArrivedRange>>) -> io::Result<ArrivedRange> {
        let stall_timeout = self.policy.stall_timeout;
        let mut seen = self.received.load(Ordering::Relaxed);
        loop {
            match arrival.recv_timeout(stall_timeout) {
                Ok(range) => return range,
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.received.load(Ordering::Relaxed);
                    if now == seen {
                        return Err(to_io(StoreError::Stalled {
                            url: self.location.clone(),
                            waited: stall_timeout,
                        }));
                    }
                    seen = now;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(to_io(StoreError::ThreadDied {
                        url: self.location.clone(),
                        thread: "a fetching thread",
                    }));
                }
            }
        }
    }
}

/// Locks `dispatch`; a poisoned lock means a fetching thread panicked while holding it.
fn lock<'a>(dispatch: &'a Mutex<Dispatch>, location: &str) -> io::Result<MutexGuard<'a, Dispatch>> {
    dispatch.lock().map_err(|_| {
        to_io(StoreError::ThreadDied {
            url: location.to_owned(),
            thread: "a fetching thread",
        })
    })
}

/// Asks for no more ranges and opens one stream, read ahead from now on, for what no range was
/// asked for; no stream when the ranges asked for reach the end.
fn rest_as_stream(dispatch: &mut Dispatch, source: &Arc<dyn ByteSource>, policy: &FetchPolicy) {
    // The fetching threads end once the ranges queued already are fetched.
    dispatch.jobs = None;
    if dispatch.next_start >= dispatch.len {
        return;
    }
    let rest = ResumingReader::from(
        Arc::clone(source),
        dispatch.next_start,
        dispatch.len,
        policy,
    );
    dispatch.rest = Some(ReadAhead::spawn(
        rest,
        dispatch.len - dispatch.next_start,
        source.location(),
        policy.stall_timeout,
    ));
}

/// Starts the threads that fetch ranges for `dispatch`: one for each range that may be asked for
/// at once.
fn start_fetching(
    source: &Arc<dyn ByteSource>,
    received: &Arc<AtomicU64>,
    dispatch: &Arc<Mutex<Dispatch>>,
    policy: &FetchPolicy,
) -> io::Result<()> {
    let (jobs, job_queue) = channel::<RangeJob>();
    let job_queue = Arc::new(Mutex::new(job_queue));
    for _ in 0..most_pending_when_asking_ahead(policy.parallel_ranges) {
        let job_queue = Arc::clone(&job_queue);
        let source = Arc::clone(source);
        let received = Arc::clone(received);
        let dispatch = Arc::clone(dispatch);
        let policy = *policy;
        thread::Builder::new()
            .name("resource-range".into())
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job; a poisoned lock
                    // or a closed queue means the reader is gone.
                    let job = match job_queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(RangeJob {
                        start,
                        end,
                        buffer,
                        reply,
                    }) = job
                    else {
                        return;
                    };
                    let mut near_end = NearEnd::new(&dispatch);
                    let mut reader =
                        ResumingReader::range(Arc::clone(&source), start, end, &policy);
                    let result = read_timed(
                        &mut reader,
                        start..end,
                        buffer,
                        None,
                        &received,
                        source.location(),
                        Instant::now(),
                        &mut near_end,
                    );
                    near_end.tell();
                    let _ = reply.send(result);
                }
            })?;
    }
    lock(dispatch, source.location())?.jobs = Some(jobs);
    Ok(())
}

/// The most ranges asked for and not yet taken by the reader once ranges are chosen, for `streams`
/// bodies streaming at once: as many again asked ahead or arrived ahead of the reader, less one
/// for the range the reader holds, so that at most `2 × streams` ranges are in memory. Where the
/// reader is slower than the source, every pending range has arrived and waits: one more cost
/// 4 MiB and bought no speed that could be measured.
fn most_pending_when_asking_ahead(streams: usize) -> usize {
    streams.max(1).saturating_mul(2).saturating_sub(1).max(1)
}

impl Dispatch {
    /// Ranges are chosen for the rest: bodies nearing their end ask ahead from now on.
    fn choose_ranges(&mut self) {
        self.asking_ahead = true;
        self.most_pending = most_pending_when_asking_ahead(self.streams);
    }
}

/// Reads `range` from `reader`, which stands at its start, into `buffer`, showing `near_end` how
/// the body arrives (timed from `asked`, when the request went out), so that it can judge and
/// tell when the body nears its end. With `send_piece`, the range is handed on in pieces of
/// [`FIRST_RANGE_PIECE_LEN`], each full one to `send_piece` while the rest arrives, and the last
/// one returned; without, it is returned whole.
#[allow(clippy::too_many_arguments)]
fn read_timed(
    reader: &mut ResumingReader,
    range: std::ops::Range<u64>,
    mut buffer: Vec<u8>,
    mut send_piece: Option<&mut dyn FnMut(Vec<u8>)>,
    received: &AtomicU64,
    location: &str,
    asked: Instant,
    near_end: &mut NearEnd,
) -> io::Result<ArrivedRange> {
    let want = usize::try_from(range.end - range.start)
        .map_err(|_| io::Error::other("a range does not fit in memory"))?;
    let piece_len = if send_piece.is_some() {
        FIRST_RANGE_PIECE_LEN
    } else {
        want
    };
    // When the first bytes came, and how many: the body's pace is judged from what came after.
    let mut first_read: Option<(Instant, usize)> = None;
    // The piece's bytes go into `buffer`, whose readied part grows by `FILL_STEP` as they
    // arrive: a fresh buffer's memory is touched as the body comes, not when the range is asked
    // for (a range asked ahead may wait a while for its first byte). A reused buffer is ready
    // already. Every readied byte is read into before the piece is handed on, so none needs
    // zeroing again.
    let mut piece_cap = piece_len.min(want);
    buffer.truncate(piece_cap);
    buffer.reserve_exact(piece_cap - buffer.len());
    // Bytes of the range received, and where in the range the piece in `buffer` starts.
    let mut filled = 0;
    let mut piece_start = 0;
    let pace_at = |now: Instant, first_at: Instant, first_len: usize, filled: usize| BodyPace {
        now,
        first_byte_wait: first_at.duration_since(asked),
        body_so_far: now.duration_since(first_at),
        since_first: filled - first_len,
        filled,
        want,
    };
    while filled < want {
        // Without pieces the one piece is the whole range, so it is full only at the end.
        if let Some(send_piece) = send_piece.as_mut()
            && filled - piece_start == piece_cap
        {
            piece_cap = piece_len.min(want - filled);
            send_piece(std::mem::replace(
                &mut buffer,
                Vec::with_capacity(piece_cap),
            ));
            piece_start = filled;
        }
        let in_piece = filled - piece_start;
        if in_piece == buffer.len() {
            buffer.resize(in_piece.saturating_add(FILL_STEP).min(piece_cap), 0);
        }
        match reader.read(&mut buffer[in_piece..]) {
            Ok(0) => break,
            Ok(read) => {
                let now = Instant::now();
                filled += read;
                received.fetch_add(read as u64, Ordering::Relaxed);
                let (first_at, first_len) = *first_read.get_or_insert((now, filled));
                near_end.observe(&pace_at(now, first_at, first_len, filled));
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    if filled < want {
        return Err(to_io(StoreError::Truncated {
            url: location.to_owned(),
            got: range.start + filled as u64,
            expected: range.end,
        }));
    }
    // A body shorter than the judgement's bytes (or an empty one) is judged at its end.
    let now = Instant::now();
    let (first_at, first_len) = first_read.unwrap_or((now, 0));
    near_end.judge_now(&pace_at(now, first_at, first_len, filled));
    Ok(ArrivedRange {
        bytes: buffer,
        last: true,
    })
}

impl Read for ParallelRanges {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed == self.current.len() {
            if let Mode::Stream(stream) = &mut self.mode {
                return stream.read(buf);
            }
            let arrival = match self.in_progress.take() {
                Some(arrival) => arrival,
                None => {
                    let next = self.lock_dispatch()?.pending.pop_front();
                    let Some(arrival) = next else {
                        // The ranges are read; the rest, if any, comes as the stream the
                        // judgement opened.
                        let rest = self.lock_dispatch()?.rest.take();
                        return match rest {
                            Some(rest) => {
                                self.mode = Mode::Stream(rest?);
                                self.read(buf)
                            }
                            None => Ok(0),
                        };
                    };
                    arrival
                }
            };
            let piece = self.wait_for(&arrival)?;
            let spent = std::mem::replace(&mut self.current, piece.bytes);
            self.consumed = 0;
            if !piece.last {
                // More ranges are asked for once a whole one is taken, not for a piece: before
                // the judgement, no more are asked for than stream.
                self.in_progress = Some(arrival);
                return Ok(copy_out(&self.current, &mut self.consumed, buf));
            }
            let mut dispatch = self.lock_dispatch()?;
            // A piece of the first range is too small to hold a later range.
            if spent.capacity() as u64 >= dispatch.range_len {
                dispatch.spare.push(spent);
            }
            dispatch.top_up();
        }
        Ok(copy_out(&self.current, &mut self.consumed, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_failures_are_retried_and_bugs_are_not() {
        let url = || "http://x/a".to_owned();
        let retried = [
            StoreError::Http {
                url: url(),
                cause: "reset".into(),
            },
            StoreError::HttpStatus {
                url: url(),
                status: 503,
                hint: "busy",
            },
            StoreError::Truncated {
                url: url(),
                got: 1,
                expected: 2,
            },
            StoreError::io("/a", io::Error::from(io::ErrorKind::ConnectionReset)),
        ];
        for error in &retried {
            assert!(is_transient(error), "{error:?} should be retried");
        }
        let Err(json_error) = serde_json::from_str::<u8>("{") else {
            panic!("an unclosed brace parsed as JSON");
        };
        let not_retried = [
            StoreError::HttpStatus {
                url: url(),
                status: 404,
                hint: "gone",
            },
            StoreError::io("/a", io::Error::from(io::ErrorKind::NotFound)),
            StoreError::RecordJson {
                record: "/root/x.json".into(),
                cause: json_error,
            },
            StoreError::ThreadDied {
                url: url(),
                thread: "the reading thread",
            },
            StoreError::BrokenInvariant {
                location: url(),
                invariant: "a test",
            },
            StoreError::EntryVanished {
                dir: "/root/x".into(),
                rounds: 3,
            },
        ];
        for error in &not_retried {
            assert!(!is_transient(error), "{error:?} should not be retried");
        }
    }

    /// A source of `bytes` that says its reads time out after `read_timeout`, and notes the
    /// threads its streams were read on.
    struct ThreadNoting {
        bytes: Vec<u8>,
        read_timeout: Option<Duration>,
        readers: Arc<Mutex<Vec<thread::ThreadId>>>,
    }

    struct NotedReader {
        inner: io::Cursor<Vec<u8>>,
        readers: Arc<Mutex<Vec<thread::ThreadId>>>,
    }

    impl Read for NotedReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if let Ok(mut readers) = self.readers.lock() {
                readers.push(thread::current().id());
            }
            self.inner.read(buf)
        }
    }

    impl ByteSource for ThreadNoting {
        fn location(&self) -> &str {
            "noting"
        }
        fn len(&self) -> Result<u64, StoreError> {
            Ok(self.bytes.len() as u64)
        }
        fn read_tail(&self, len: u64) -> Result<Vec<u8>, StoreError> {
            let start = self.bytes.len().saturating_sub(len as usize);
            Ok(self.bytes[start..].to_vec())
        }
        fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>, StoreError> {
            Ok(Box::new(NotedReader {
                inner: io::Cursor::new(self.bytes[offset as usize..].to_vec()),
                readers: Arc::clone(&self.readers),
            }))
        }
        fn read_timeout(&self) -> Option<Duration> {
            self.read_timeout
        }
    }

    /// The threads on which a fetch read the stream of a [`ThreadNoting`] source of `len` bytes,
    /// which must come back unchanged.
    fn read_whole(len: usize, read_timeout: Option<Duration>) -> Vec<thread::ThreadId> {
        let readers = Arc::new(Mutex::new(Vec::new()));
        let bytes: Vec<u8> = (0..len).map(|at| at as u8).collect();
        let concrete = Arc::new(ThreadNoting {
            bytes: bytes.clone(),
            read_timeout,
            readers: Arc::clone(&readers),
        });
        let source: Arc<dyn ByteSource> = concrete;
        let policy = FetchPolicy {
            stall_timeout: Duration::from_secs(5),
            ..FetchPolicy::default()
        };
        let opening = match source.open_start(len as u64) {
            Ok(opening) => opening,
            Err(error) => panic!("opening failed: {error}"),
        };
        let mut stream = match fetch_stream(&source, opening, Instant::now(), &policy) {
            Ok(stream) => stream,
            Err(error) => panic!("fetch_stream failed: {error}"),
        };
        let mut read = Vec::new();
        if let Err(error) = stream.read_to_end(&mut read) {
            panic!("reading failed: {error}");
        }
        assert!(read == bytes, "the bytes changed on the way");
        let noted = readers
            .lock()
            .map(|noted| noted.clone())
            .unwrap_or_default();
        assert!(!noted.is_empty(), "the source's stream was never read");
        noted
    }

    #[test]
    fn a_small_object_is_read_on_the_calling_thread_only_where_reads_notice_stalls() {
        let here = thread::current().id();
        let small = READ_ON_CALLING_THREAD_MAX as usize;
        // Reads that time out within the stall timeout: no watching thread.
        assert!(
            read_whole(small, Some(Duration::from_secs(5)))
                .iter()
                .all(|id| *id == here)
        );
        // Reads that may wait forever, or longer than the stall timeout: a watching thread.
        for read_timeout in [None, Some(Duration::from_secs(6))] {
            assert!(
                read_whole(small, read_timeout).iter().all(|id| *id != here),
                "{read_timeout:?}"
            );
        }
        // A larger object is read ahead beside its hashing, whatever the source.
        let larger = small + 1;
        assert!(
            read_whole(larger, Some(Duration::from_secs(5)))
                .iter()
                .all(|id| *id != here)
        );
    }

    #[tokio::test]
    async fn a_panicked_task_is_not_retried() {
        let joined: Result<(), _> = tokio::spawn(async { panic!("a test panic") }).await;
        let Err(cause) = joined else {
            panic!("a panicking task joined as if it had finished");
        };
        let error = StoreError::TaskFailed {
            task: "a test",
            cause,
        };
        assert!(!is_transient(&error));
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|cause| cause.contains("a test panic")),
            "{error:?}"
        );
    }
}
