//! The `timed-sim` command line.

use crate::report::{human, svg::Timeline, Summary};
use crate::scenario::{RunSpec, CATALOG};
use crate::time::{fmt_duration, parse_duration, Micros};
use crate::SimError;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Parser, Debug)]
#[command(
    name = "timed-sim",
    version,
    about = "Deterministic simulator for timed: the new PeerMachine and the legacy node, side by side, in virtual time, from a seed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run one scenario once.
    Run(RunArgs),
    /// Run a scenario over a range of seeds; list failing seeds with their replay commands.
    Sweep(SweepArgs),
    /// Run a scenario with the legacy model and with the machine, and print both side by side.
    Compare(CompareArgs),
    /// List the scenarios.
    List,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Scenario name (see `timed-sim list`).
    #[arg(long, short = 's')]
    pub scenario: String,
    /// Number of nodes (default: the scenario's).
    #[arg(long, short = 'n')]
    pub nodes: Option<usize>,
    /// Virtual duration, e.g. 30s, 5m, 1h (default: the scenario's).
    #[arg(long, short = 'd', value_parser = parse_duration_arg)]
    pub duration: Option<Micros>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Node model: machine (the new PeerMachine) or legacy (the old node).
    #[arg(long, short = 'm', default_value = "machine", value_parser = ["machine", "legacy"])]
    pub model: String,
    /// Seed for every random choice (decimal or 0x-hex).
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write a JSONL trace of connection-level events to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<String>,
    /// Write an SVG timeline of connection lifetimes per node pair to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<String>,
    /// Run twice and check the two runs are bit-identical (same trace hash).
    #[arg(long)]
    pub check_determinism: bool,
    /// Do not stop at the first invariant violation.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, short = 'm', default_value = "machine", value_parser = ["machine", "legacy"])]
    pub model: String,
    /// Seeds to run: A..B (B excluded) or A..=B.
    #[arg(long, value_parser = parse_seed_range)]
    pub seeds: SeedRange,
    /// Worker threads (default: the machine's cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Print a JSON object with the results.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
    /// Write PREFIX-legacy.svg and PREFIX-machine.svg.
    #[arg(long, value_name = "PREFIX")]
    pub svg_prefix: Option<String>,
}

/// A range of seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    /// Excluded.
    pub end: u64,
}

fn parse_duration_arg(s: &str) -> Result<Micros, String> {
    let d = parse_duration(s)?;
    if d == 0 {
        return Err("the duration must be longer than zero, e.g. 30s, 5m or 1h".into());
    }
    Ok(d)
}

pub fn parse_seed(s: &str) -> Result<u64, String> {
    let r = if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        s.parse::<u64>()
    };
    r.map_err(|_| format!("{s:?} is not a seed; write a number like 42 or 0x2a"))
}

pub fn parse_seed_range(s: &str) -> Result<SeedRange, String> {
    let how = "write seeds as A..B (B excluded) or A..=B, e.g. --seeds 0..200";
    let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once("..") {
        (a, b, false)
    } else {
        return Err(format!("{s:?} is not a seed range; {how}"));
    };
    let start = parse_seed(a.trim()).map_err(|e| format!("{e}; {how}"))?;
    let mut end = parse_seed(b.trim()).map_err(|e| format!("{e}; {how}"))?;
    if inclusive {
        end = end
            .checked_add(1)
            .ok_or_else(|| format!("range end too large; {how}"))?;
    }
    if end <= start {
        return Err(format!("{s:?} is empty; {how}"));
    }
    Ok(SeedRange { start, end })
}

fn spec(c: &Common, model: &str, seed: u64) -> RunSpec {
    RunSpec {
        scenario: c.scenario.clone(),
        model: model.to_string(),
        seed,
        nodes: c.nodes,
        duration: c.duration,
    }
}

fn write_file(path: &str, contents: &str) -> Result<(), SimError> {
    std::fs::write(path, contents).map_err(|source| SimError::Io {
        path: path.to_string(),
        source,
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn dispatch(cli: Cli) -> Result<ExitCode, SimError> {
    match cli.cmd {
        Cmd::List => {
            for e in CATALOG {
                println!("{:<16} {}", e.name, e.about);
                println!(
                    "{:<16} default: {} nodes, {}",
                    "",
                    e.default_nodes,
                    fmt_duration(e.default_duration)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(a) => cmd_run(a),
        Cmd::Sweep(a) => cmd_sweep(a),
        Cmd::Compare(a) => cmd_compare(a),
    }
}

fn cmd_run(a: RunArgs) -> Result<ExitCode, SimError> {
    let spec = spec(&a.common, &a.model, a.seed);
    let trace: Option<Box<dyn Write>> = match &a.trace {
        Some(path) => {
            let f = std::fs::File::create(path).map_err(|source| SimError::Io {
                path: path.clone(),
                source,
            })?;
            Some(Box::new(std::io::BufWriter::new(f)))
        }
        None => None,
    };
    let stop = a.keep_going.then_some(false);
    let out = crate::run(&spec, stop, trace, a.svg.is_some())?;
    if let (Some(path), Some(t)) = (&a.svg, &out.timeline) {
        write_file(path, &t.render())?;
    }
    let mut determinism_ok = true;
    let mut second_hash = None;
    if a.check_determinism {
        let again = crate::run(&spec, stop, None, false)?;
        determinism_ok = again.summary.trace_hash == out.summary.trace_hash
            && again.summary.events == out.summary.events;
        second_hash = Some(again.summary.trace_hash);
    }
    if a.json {
        let mut v = serde_json::to_value(&out.summary).unwrap_or_default();
        if let (Some(h), Some(o)) = (&second_hash, v.as_object_mut()) {
            o.insert("determinism_ok".into(), serde_json::json!(determinism_ok));
            o.insert("trace_hash_second_run".into(), serde_json::json!(h));
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", human::render(&out.summary));
        if let Some(h) = &second_hash {
            if determinism_ok {
                println!("  determinism: ok (two runs, same trace hash {})", &h[..16]);
            } else {
                println!(
                    "  determinism: FAILED: first run {} second run {}",
                    out.summary.trace_hash, h
                );
            }
        }
    }
    let strict_failed = out.summary.model == "machine" && out.summary.invariant_violations > 0;
    if strict_failed {
        eprintln!("invariant violated; replay with:\n  {}", out.summary.replay);
    }
    if !determinism_ok {
        eprintln!("the two runs differ: the simulator (or the model) is not deterministic; replay with:\n  {} --check-determinism", out.summary.replay);
    }
    Ok(if strict_failed || !determinism_ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One seed's result in a sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub violations: u64,
    pub first: Option<String>,
    pub replay: String,
    pub events: u64,
}

/// Runs `specs` on `jobs` threads; `progress(done, failed)` after each.
pub fn sweep(
    base: &RunSpec,
    seeds: SeedRange,
    jobs: usize,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<Vec<SeedResult>, SimError> {
    // Fail fast on bad names before starting threads.
    crate::run(
        &RunSpec {
            seed: seeds.start,
            duration: Some(1),
            ..base.clone()
        },
        Some(true),
        None,
        false,
    )?;
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let err = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let spec = RunSpec {
                    seed,
                    ..base.clone()
                };
                match crate::run(&spec, Some(true), None, false) {
                    Ok(o) => {
                        let bad =
                            o.summary.model == "machine" && o.summary.invariant_violations > 0;
                        if bad {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let first = o.summary.first_violations.first().map(|v| {
                            format!("{} at {:.3}s: {}", v.kind, v.at as f64 / 1e6, v.detail)
                        });
                        if let Ok(mut r) = results.lock() {
                            r.push(SeedResult {
                                seed,
                                violations: if bad {
                                    o.summary.invariant_violations
                                } else {
                                    0
                                },
                                first,
                                replay: o.summary.replay,
                                events: o.summary.events,
                            });
                        }
                    }
                    Err(e) => {
                        if let Ok(mut slot) = err.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(d, failed.load(Ordering::Relaxed));
            });
        }
    });
    if let Some(e) = err.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut r = results.into_inner().unwrap_or_default();
    r.sort_by_key(|x| x.seed);
    Ok(r)
}

fn cmd_sweep(a: SweepArgs) -> Result<ExitCode, SimError> {
    let base = spec(&a.common, &a.model, a.seeds.start);
    let jobs = a.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let total = a.seeds.end - a.seeds.start;
    let tty = std::io::stderr().is_terminal();
    let started = crate::time::wall_clock();
    let last = Mutex::new(crate::time::wall_clock());
    let results = sweep(&base, a.seeds, jobs, |done, failed| {
        let Ok(mut l) = last.lock() else { return };
        if done < total && l.elapsed().as_millis() < 100 {
            return;
        }
        *l = crate::time::wall_clock();
        let width = 30;
        let filled = (done * width / total.max(1)) as usize;
        let el = started.elapsed().as_secs_f64();
        let eta = if done > 0 {
            el / done as f64 * (total - done) as f64
        } else {
            0.0
        };
        let line = format!(
            "[{}{}] {done}/{total} seeds  {failed} failing  {el:.1}s elapsed  eta {eta:.1}s",
            "#".repeat(filled),
            ".".repeat(width as usize - filled)
        );
        if tty {
            eprint!("\r{line}");
        } else if done == total || done % (total / 10).max(1) == 0 {
            eprintln!("{line}");
        }
    })?;
    if tty {
        eprintln!();
    }
    let failing: Vec<&SeedResult> = results.iter().filter(|r| r.violations > 0).collect();
    let wall = started.elapsed().as_secs_f64();
    if a.json {
        let v = serde_json::json!({
            "scenario": a.common.scenario,
            "model": a.model,
            "seeds": total,
            "failing": failing.len(),
            "wall_secs": wall,
            "events": results.iter().map(|r| r.events).sum::<u64>(),
            "failures": failing,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{} seeds of {} ({}) in {wall:.2}s: {} failing",
            total,
            a.common.scenario,
            a.model,
            failing.len()
        );
        for f in &failing {
            println!(
                "  seed {}: {}",
                f.seed,
                f.first.as_deref().unwrap_or("violation")
            );
            println!("    {}", f.replay);
        }
    }
    Ok(if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cmd_compare(a: CompareArgs) -> Result<ExitCode, SimError> {
    let legacy = crate::run(
        &spec(&a.common, "legacy", a.seed),
        None,
        None,
        a.svg_prefix.is_some(),
    )?;
    let machine = crate::run(
        &spec(&a.common, "machine", a.seed),
        Some(false),
        None,
        a.svg_prefix.is_some(),
    )?;
    if let Some(prefix) = &a.svg_prefix {
        for (name, t) in [("legacy", &legacy.timeline), ("machine", &machine.timeline)] {
            if let Some(t) = t {
                write_file(&format!("{prefix}-{name}.svg"), &Timeline::render(t))?;
            }
        }
    }
    if a.json {
        let v = serde_json::json!({"legacy": legacy.summary, "machine": machine.summary});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!(
            "{}",
            human::render_compare(&legacy.summary, &machine.summary)
        );
    }
    let ok = machine.summary.invariant_violations == 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// For tests: the summary of a run by spec, panicking on a user error.
pub fn summary_of(spec: &RunSpec) -> Summary {
    match crate::run(spec, None, None, false) {
        Ok(o) => o.summary,
        Err(e) => panic!("{e}"),
    }
}
