//! # timed-sim
//!
//! A deterministic discrete-event simulator for `timed`: many nodes in one thread, over a
//! virtual network with latency, chunking, connect failures, partitions, clogs, message
//! filters, NAT, crashes, restarts, clock skew and churn. Every node runs a [`NodeModel`]:
//! the new `PeerMachine` ([`model::machine`]) or a model of the old node ([`legacy`]), so the
//! same scenario shows both side by side. Everything random comes from one seed; a rolling
//! sha256 over the event trace proves a replay is bit-identical.
//!
//! Entry points: [`run`] (one run of a [`RunSpec`]), [`scenario::CATALOG`], [`cli::sweep`],
//! and the `timed-sim` binary ([`cli`]).

pub mod cli;
pub mod engine;
pub mod faults;
pub mod invariants;
pub mod legacy;
pub mod metrics;
pub mod model;
pub mod net;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod time;

pub use model::NodeModel;
pub use report::Summary;
pub use scenario::RunSpec;

use engine::{RunOptions, Sim};
use report::svg::Timeline;
use std::io::Write;

/// Errors a user can cause (bad names, bad files); each says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown scenario {name:?}; known scenarios: {known} (see `timed-sim list`)")]
    UnknownScenario { name: String, known: String },
    #[error("unknown model {0:?}; use --model machine or --model legacy")]
    UnknownModel(String),
    #[error("this build has no PeerMachine model (built without the `machine` feature); use --model legacy")]
    MachineUnavailable,
    #[error("--nodes must be at least 2 (got {0})")]
    TooFewNodes(usize),
    #[error("--duration must be longer than zero")]
    ZeroDuration,
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The node models.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModelKind {
    Machine,
    Legacy,
}

impl ModelKind {
    pub fn parse(s: &str) -> Result<Self, SimError> {
        match s {
            "machine" => Ok(ModelKind::Machine),
            "legacy" => Ok(ModelKind::Legacy),
            other => Err(SimError::UnknownModel(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Machine => "machine",
            ModelKind::Legacy => "legacy",
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub timeline: Option<Timeline>,
}

/// Runs one scenario with one model and seed. `stop_on_violation` defaults to the model's
/// strictness (the machine stops at the first violation, the legacy model is only measured);
/// `trace` receives a JSONL line per connection-level event; `timeline` keeps what the SVG needs.
pub fn run(
    spec: &RunSpec,
    stop_on_violation: Option<bool>,
    trace: Option<Box<dyn Write>>,
    timeline: bool,
) -> Result<Outcome, SimError> {
    let sc = build(spec)?;
    run_scenario(sc, spec, stop_on_violation, trace, timeline)
}

/// Runs a scenario of the catalog with `app` on every node in place of the scenario's own
/// (the machine model): how an embedding application tests its protocols under the
/// simulator's faults. Stops at the first violation.
#[cfg(feature = "machine")]
pub fn run_with_app(
    spec: &RunSpec,
    app: std::sync::Arc<dyn model::app::SimApp>,
) -> Result<Summary, SimError> {
    let mut sc = build(spec)?;
    sc.tuning.app = Some(app);
    let mut spec = spec.clone();
    spec.model = "machine".into();
    Ok(run_scenario(sc, &spec, None, None, false)?.summary)
}

fn build(spec: &RunSpec) -> Result<scenario::Scenario, SimError> {
    let entry = scenario::find(&spec.scenario).ok_or_else(|| SimError::UnknownScenario {
        name: spec.scenario.clone(),
        known: scenario::CATALOG
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    if let Some(n) = spec.nodes {
        if n < 2 {
            return Err(SimError::TooFewNodes(n));
        }
    }
    if spec.duration == Some(0) {
        return Err(SimError::ZeroDuration);
    }
    let opts = scenario::Options {
        nodes: spec.nodes,
        duration: spec.duration,
    };
    Ok(entry.build(&opts, spec.seed))
}

fn run_scenario(
    sc: scenario::Scenario,
    spec: &RunSpec,
    stop_on_violation: Option<bool>,
    trace: Option<Box<dyn Write>>,
    timeline: bool,
) -> Result<Outcome, SimError> {
    match ModelKind::parse(&spec.model)? {
        ModelKind::Legacy => Ok(run_model::<legacy::Legacy>(
            sc,
            spec,
            stop_on_violation,
            trace,
            timeline,
        )),
        #[cfg(feature = "machine")]
        ModelKind::Machine => Ok(run_model::<model::machine::Machine>(
            sc,
            spec,
            stop_on_violation,
            trace,
            timeline,
        )),
        #[cfg(not(feature = "machine"))]
        ModelKind::Machine => Err(SimError::MachineUnavailable),
    }
}

fn run_model<M: NodeModel>(
    sc: scenario::Scenario,
    spec: &RunSpec,
    stop_on_violation: Option<bool>,
    trace: Option<Box<dyn Write>>,
    timeline: bool,
) -> Outcome {
    let opts = RunOptions {
        stop_on_violation: stop_on_violation.unwrap_or(M::strict()),
        trace,
    };
    let mut sim = Sim::<M>::new(sc, spec.seed, opts);
    let started = crate::time::wall_clock();
    sim.run();
    let wall = started.elapsed().as_secs_f64();
    let summary = Summary::from_sim(&sim, spec.replay_command(), wall);
    let timeline = timeline.then(|| {
        Timeline::from_sim(
            &sim,
            format!("{} · {} · seed {}", spec.scenario, M::NAME, spec.seed),
        )
    });
    Outcome { summary, timeline }
}
