//! `gil-work --task summarise|compress --workers N --batches B
//! [--batch-size S] --input FILE`: print one JSON line of throughput.

use std::process::ExitCode;

use gil_work::{build_batches, run_batches, Task};

const USAGE: &str = "usage: gil-work --task summarise|compress --workers N --batches B \
[--batch-size S] --input FILE
  --task        summarise (parse and summarise) or compress (zlib level 6)
  --workers N   threads doing the work
  --batches B   batches to process, the statuses rotated by one each time
  --batch-size  statuses per batch (default 100, the whole of data/twitter.json)
  --input FILE  a {\"statuses\": [...]} JSON file";

struct Args {
    task: Task,
    workers: usize,
    batches: usize,
    batch_size: usize,
    input: String,
}

fn parse_args() -> Result<Args, String> {
    let (mut task, mut workers, mut batches, mut input) = (None, None, None, None);
    let mut batch_size = 100;
    let number = |flag: &str, value: String| {
        value
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(format!("{flag} must be a whole number of at least 1"))
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--task" => {
                task = Some(match value.as_str() {
                    "summarise" => Task::Summarise,
                    "compress" => Task::Compress,
                    _ => return Err("--task must be summarise or compress".into()),
                })
            }
            "--workers" => workers = Some(number(&flag, value)?),
            "--batches" => batches = Some(number(&flag, value)?),
            "--batch-size" => batch_size = number(&flag, value)?,
            "--input" => input = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        task: task.ok_or("--task is required")?,
        workers: workers.ok_or("--workers is required")?,
        batches: batches.ok_or("--batches is required")?,
        batch_size,
        input: input.ok_or("--input is required")?,
    })
}

fn run() -> Result<String, String> {
    let args = parse_args().map_err(|e| format!("{e}\n{USAGE}"))?;
    let input =
        std::fs::read_to_string(&args.input).map_err(|e| format!("reading {}: {e}", args.input))?;
    let batches = build_batches(&input, args.batches, args.batch_size)?;
    let line = run_batches(
        args.task,
        args.workers,
        args.batches,
        &batches,
        args.batch_size,
    )?;
    serde_json::to_string(&line).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
