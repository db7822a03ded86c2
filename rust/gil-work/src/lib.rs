//! gil-work: the GIL chapter's two CPU-bound tasks on a pool of Rust threads.
//!
//! The same batches, tasks and digest as `snippets/python/gil/work.py` and
//! `go/gilwork`: equal digests mean the three programs did the same work.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use fastjson_api::{summarise, ApiError, Summary};
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// The two tasks of the chapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Parse a batch and summarise it (fastjson-api's summary).
    Summarise,
    /// zlib a batch at level 6.
    Compress,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Summarise => "summarise",
            Task::Compress => "compress",
        }
    }
}

/// What one task leaves behind.
enum Outcome {
    Summary(Result<Summary, ApiError>),
    Compressed(std::io::Result<Vec<u8>>),
}

/// The one JSON line the program prints, the same keys as the Python and Go
/// programs, in the same order.
#[derive(Debug, Serialize)]
pub struct ResultLine {
    pub lang: &'static str,
    pub pool: &'static str,
    pub task: &'static str,
    pub workers: usize,
    pub batches: usize,
    pub batch_size: usize,
    pub elapsed_s: f64,
    pub tasks_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_bytes: Option<u64>,
    pub digest: String,
}

/// The part of the input file the batches are cut from.
#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    statuses: Vec<&'a RawValue>,
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// zlib's default level, the one Python's and Go's defaults also use.
pub const ZLIB_LEVEL: u32 = 6;

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

/// The distinct batches: batch i is the input's statuses rotated left by i,
/// cut to `batch_size`.
///
/// Each status is its exact source text, so the batches are byte for byte
/// those the Python and Go programs build, whatever their encoders would do
/// with number formats, key order or escapes. Batch i and batch i + n (n
/// statuses) are the same bytes, so only min(batches, n) are built and batch
/// i is `out[i % out.len()]`: memory then shows the workers, not B copies of
/// one file.
pub fn build_batches(
    input_json: &str,
    batches: usize,
    batch_size: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let input: Input =
        serde_json::from_str(input_json).map_err(|e| format!("parsing the input: {e}"))?;
    let raw = input.statuses;
    if batch_size < 1 || batch_size > raw.len() {
        return Err(format!("--batch-size must be between 1 and {}", raw.len()));
    }
    let batches = (0..batches.min(raw.len()))
        .map(|i| {
            let mut body = b"{\"statuses\":[".to_vec();
            for k in 0..batch_size {
                if k > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(raw[(i + k) % raw.len()].get().as_bytes());
            }
            body.extend_from_slice(b"]}");
            body
        })
        .collect();
    Ok(batches)
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

/// Batch number `index`, out of the distinct batches [`build_batches`] made.
pub fn batch(batches: &[Vec<u8>], index: usize) -> &[u8] {
    &batches[index % batches.len()]
}

fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(ZLIB_LEVEL));
    encoder.write_all(body)?;
    encoder.finish()
}

fn run_task(task: Task, body: &[u8]) -> Outcome {
    match task {
        Task::Summarise => Outcome::Summary(summarise(body)),
        Task::Compress => Outcome::Compressed(compress(body)),
    }
}

/// Runs `task` over batches 0..count on exactly `workers` threads; `batches`
/// holds the distinct ones.
///
/// Each thread takes the next batch index from a shared counter, so a slow
/// batch never leaves the other threads idle, and keeps its outcomes to
/// itself until it is joined: no lock is held while working.
fn run_all(task: Task, workers: usize, count: usize, batches: &[Vec<u8>]) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Outcome>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        // Relaxed is enough: the counter only hands out
                        // distinct indices; the batches are read-only.
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        done.push((i, run_task(task, batch(batches, i))));
                    }
                })
            })
            .collect();
        for handle in handles {
            // A worker can only panic on a bug; panic = "abort" in the
            // release profile ends the process before this is reached.
            for (i, outcome) in handle.join().expect("worker thread panicked") {
                slots[i] = Some(outcome);
            }
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.expect("every index is handed out once"))
        .collect()
}

/// Times `task` over batches 0..count and returns the result line.
pub fn run_batches(
    task: Task,
    workers: usize,
    count: usize,
    batches: &[Vec<u8>],
    batch_size: usize,
) -> Result<ResultLine, String> {
    // Warm-up, untimed: one task per worker.
    run_all(task, workers, workers.min(count), batches);

    let start = Instant::now();
    let outcomes = run_all(task, workers, count, batches);
    let elapsed_s = start.elapsed().as_secs_f64();

    // The digest and the round trip are computed after timing: they are not
    // the work measured.
    let mut canonical = b"[".to_vec();
    let mut compressed_bytes = 0u64;
    for (i, outcome) in outcomes.iter().enumerate() {
        let body = batch(batches, i);
        if i > 0 {
            canonical.push(b',');
        }
        match outcome {
            Outcome::Summary(Ok(summary)) => write_canonical(&mut canonical, summary),
            Outcome::Summary(Err(e)) => return Err(format!("batch {i}: {e}")),
            Outcome::Compressed(Ok(compressed)) => {
                compressed_bytes += compressed.len() as u64;
                let mut back = Vec::with_capacity(body.len());
                ZlibDecoder::new(&compressed[..])
                    .read_to_end(&mut back)
                    .map_err(|e| format!("batch {i}: inflating: {e}"))?;
                let ok = back == body;
                write!(canonical, "{{\"input_bytes\":{},\"ok\":{ok}}}", body.len())
                    .expect("writing to a Vec cannot fail");
            }
            Outcome::Compressed(Err(e)) => return Err(format!("batch {i}: compressing: {e}")),
        }
    }
    canonical.push(b']');

    Ok(ResultLine {
        lang: "rust",
        pool: "threads",
        task: task.name(),
        workers,
        batches: count,
        batch_size,
        elapsed_s,
        tasks_per_s: count as f64 / elapsed_s,
        compressed_bytes: (task == Task::Compress).then_some(compressed_bytes),
        digest: hex(&Sha256::digest(&canonical)),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Canonical JSON
// ---------------------------------------------------------------------------

/// Appends the summary as Python's `json.dumps(sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False)` writes it.
///
/// The keys are written in sorted order by hand: serde would write them in
/// field order, and a `serde_json::Value` sorts them only while no crate in
/// the build enables serde_json's `preserve_order`.
pub fn write_canonical(out: &mut Vec<u8>, s: &Summary) {
    out.extend_from_slice(b"{\"languages\":{");
    // A BTreeMap iterates in byte order, which is Python's code point order.
    for (i, (lang, count)) in s.languages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, lang);
        write!(out, ":{count}").expect("writing to a Vec cannot fail");
    }
    write!(
        out,
        "}},\"retweets\":{},\"statuses\":{},\"text_chars\":{},\"top_hashtags\":[",
        s.retweets, s.statuses, s.text_chars
    )
    .expect("writing to a Vec cannot fail");
    for (i, tag) in s.top_hashtags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write!(out, "{{\"count\":{},\"tag\":", tag.count).expect("writing to a Vec cannot fail");
        write_string(out, &tag.tag);
        out.push(b'}');
    }
    write!(
        out,
        "],\"total_followers\":{},\"total_retweet_count\":{},\"users\":{}}}",
        s.total_followers, s.total_retweet_count, s.users
    )
    .expect("writing to a Vec cannot fail");
}

/// serde_json escapes a string exactly as Python does with ensure_ascii=False:
/// `\"`, `\\`, the short escapes `\b \f \n \r \t`, `\u00xx` in lower case for
/// the other controls, and nothing else.
fn write_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("a str always serialises");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_python_does() {
        // What json.dumps(s, ensure_ascii=False) prints in CPython 3.11.
        let mut out = Vec::new();
        write_string(
            &mut out,
            "a\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}<>&\u{2028}é😀",
        );
        let want = "\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}<>&\u{2028}é😀\"";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    /// The same body and answer as go/gilwork's TestSummarise.
    #[test]
    fn summary_is_canonical() {
        let body = r#"{"statuses":[
            {"id_str":"7","text":"hé😀","lang":"ja","retweet_count":2,"extra":[1],
             "user":{"id_str":"1","followers_count":10},
             "entities":{"hashtags":[{"text":"b"},{"text":"a"}]}},
            {"id_str":"8","text":"x","lang":"en","retweet_count":3,"retweeted_status":{"id":1},
             "user":{"id_str":"1","followers_count":5},
             "entities":{"hashtags":[{"text":"b"}]}},
            {"id_str":"9","text":"","lang":"ja","retweet_count":0,"retweeted_status":null,
             "user":{"id_str":"2","followers_count":0},"entities":{"hashtags":[]}}
        ]}"#;
        let want = concat!(
            r#"{"languages":{"en":1,"ja":2},"retweets":1,"statuses":3,"text_chars":4,"#,
            r#""top_hashtags":[{"count":2,"tag":"b"},{"count":1,"tag":"a"}],"#,
            r#""total_followers":15,"total_retweet_count":5,"users":2}"#
        );
        let mut out = Vec::new();
        write_canonical(&mut out, &summarise(body.as_bytes()).unwrap());
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn batches_rotate_and_keep_source_text() {
        let input = r#"{"search_metadata": {}, "statuses": [ {"id": 1}, {"id": 2},
          {"id": 3} ]}"#;
        let got = build_batches(input, 4, 2).unwrap();
        // Three distinct batches for four: batch 3 is batch 0 again.
        let want = [
            r#"{"statuses":[{"id": 1},{"id": 2}]}"#,
            r#"{"statuses":[{"id": 2},{"id": 3}]}"#,
            r#"{"statuses":[{"id": 3},{"id": 1}]}"#,
        ];
        assert_eq!(got.len(), want.len());
        for (got, want) in got.iter().zip(want) {
            assert_eq!(std::str::from_utf8(got).unwrap(), want);
        }
        assert_eq!(batch(&got, 3), got[0]);
        assert!(build_batches(input, 1, 4).is_err());
    }

    #[test]
    fn compress_round_trips_on_more_threads_than_batches() {
        let batches = vec![b"{\"statuses\":[]}".to_vec(), b"ab".repeat(5000)];
        let line = run_batches(Task::Compress, 3, 5, &batches, 1).unwrap();
        assert!(line.compressed_bytes.unwrap() > 0);
        assert_eq!(line.digest.len(), 64);
    }
}
