//! `cohesix bench`: load generators that leave dated evidence.
//!
//! A thin dispatcher: each subcommand lives in its own module and shares
//! the evidence folder ([`evidence`]), the child-process servers
//! ([`child`]) and the /proc readers ([`procfs`]). Benchmarks speak only
//! the public protocols through `cohesix-client`, like any other client;
//! they never reach into the hive's state.

mod child;
mod evidence;
mod procfs;
mod reads;
mod report;
mod scale;
mod simulate;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Spawn N heartbeat workers in a child hive and watch its memory, CPU
    /// and ticks for a while.
    Scale(scale::ScaleArgs),
    /// Small 9P reads from many sessions against a hive and diod, side by side.
    Reads(reads::ReadsArgs),
    /// The REST workload of BENCHMARKS.md §2: workers, ramps, telemetry.
    Simulate(Box<simulate::SimulateArgs>),
    /// Rewrite BENCHMARKS.md's tables from the kept simulate results.
    Report(report::ReportArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Scale(args) => scale::run(args),
        BenchCommand::Reads(args) => reads::run(args),
        BenchCommand::Simulate(args) => simulate::run(*args),
        BenchCommand::Report(args) => report::run(args),
    }
}
