//! The evidence a benchmark leaves behind: one dated folder per run.
//!
//! `bench/results/<UTC yyyy-mm-ddTHHMMZ>-<name>/` holds `summary.json`, the
//! raw CSV rows, the command line, the commit and the machine line, so a
//! number quoted anywhere can be traced to the run that produced it and
//! regenerated from its raw rows.
//!
//! It records what the machine says about itself; it does not judge the
//! numbers, and it never overwrites an earlier run's folder.

use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most same-minute folders tried before giving up (`-2`, `-3`, ...).
const MAX_FOLDER_SUFFIX: u32 = 100;

/// A run's evidence folder.
pub struct Evidence {
    dir: PathBuf,
}

/// Where and when a run happened, written into every summary.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub command: String,
    pub commit: String,
    /// Tracked files that differed from the commit when the run started
    /// (the binary may include them).
    pub dirty_paths: Vec<String>,
    pub machine: Machine,
    pub started_utc: String,
    pub load_avg_start: String,
}

/// The machine line: cores, kernel, CPU model.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub uname: String,
    pub cpu_model: String,
}

impl Machine {
    pub fn line(&self) -> String {
        format!("nproc={} | {} | {}", self.nproc, self.uname, self.cpu_model)
    }
}

impl Evidence {
    /// Creates `<root>/<stamp>-<name>/`, with a numeric suffix when a run of
    /// the same name started in the same minute.
    pub fn create(root: &Path, name: &str) -> anyhow::Result<Evidence> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let base = format!("{}-{name}", folder_stamp(SystemTime::now()));
        for n in 1..=MAX_FOLDER_SUFFIX {
            let leaf = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = root.join(leaf);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Evidence { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()))
                }
            }
        }
        anyhow::bail!("too many runs named {base} in {}", root.display())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn write(&self, file: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(file);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    pub fn write_json(&self, file: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
        let mut text = serde_json::to_string_pretty(value).context("summary is not JSON")?;
        text.push('\n');
        self.write(file, text)
    }

    /// Writes the command, commit and machine line as `run.txt`.
    pub fn write_run_info(&self, info: &RunInfo, load_avg_end: &str) -> anyhow::Result<()> {
        let text = format!(
            "command: {}\ncommit: {}\ndirty_paths: {}\nmachine: {}\nstarted_utc: {}\n\
             finished_utc: {}\nload_avg_start: {}\nload_avg_end: {load_avg_end}\n",
            info.command,
            info.commit,
            info.dirty_paths.join(" "),
            info.machine.line(),
            info.started_utc,
            iso_utc(SystemTime::now()),
            info.load_avg_start,
        );
        self.write("run.txt", text).map(drop)
    }
}

/// Collects the run's command, commit, machine and starting load.
pub fn run_info() -> RunInfo {
    RunInfo {
        command: command_line(),
        commit: commit(),
        dirty_paths: dirty_paths(),
        machine: machine(),
        started_utc: iso_utc(SystemTime::now()),
        load_avg_start: load_average(),
    }
}

/// The command line as typed, words with spaces quoted.
pub fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) {
                format!("'{w}'")
            } else {
                w
            }
        })
        .collect();
    words.join(" ")
}

/// `git rev-parse --short HEAD`, with `-dirty` when tracked files changed;
/// `unknown` outside a checkout.
pub fn commit() -> String {
    let Some(hash) = run_text("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_string();
    };
    if dirty_paths().is_empty() {
        hash
    } else {
        format!("{hash}-dirty")
    }
}

/// Tracked paths changed in the working tree or the index.
fn dirty_paths() -> Vec<String> {
    run_text("git", &["status", "--porcelain", "--untracked-files=no"])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.get(3..))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn machine() -> Machine {
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let uname = run_text("uname", &["-srm"]).unwrap_or_else(|| "unknown".to_string());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| cpu_model(&text))
        .unwrap_or_else(|| "unknown".to_string());
    Machine {
        nproc,
        uname,
        cpu_model,
    }
}

/// The first `model name` line of /proc/cpuinfo.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The first three fields of /proc/loadavg.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn run_text(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    // trim_end: `git status --porcelain` lines start with a status column.
    Some(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// `yyyy-mm-ddTHHMMZ`, the folder name's stamp.
pub fn folder_stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, _) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}{mi:02}Z")
}

/// `yyyy-mm-ddTHH:MM:SSZ`.
pub fn iso_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

fn utc_fields(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    // A clock before 1970 is reported as 1970 rather than failing the run.
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, mo, d) = date_of_day(days);
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01, computed
/// in 400-year eras (146,097 days each) starting on a March 1st so that
/// the leap day falls at the end of the counted year.
fn date_of_day(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction: month 1..=12, day 1..=31.
    (year, month as u32, day as u32)
}

/// Writes rows as CSV; fields never contain commas or quotes here.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(iso_utc(at(0)), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56, a leap day in a century year.
        assert_eq!(iso_utc(at(951_827_696)), "2000-02-29T12:34:56Z");
        // 2026-12-04 15:49, the day this module was written.
        assert_eq!(folder_stamp(at(1_796_399_340)), "2026-12-04T1549Z");
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("Test CPU @ 2GHz"));
        assert_eq!(cpu_model("processor: 0\n"), None);
    }

    #[test]
    fn same_minute_runs_get_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let a = Evidence::create(root.path(), "x").unwrap();
        let b = Evidence::create(root.path(), "x").unwrap();
        assert_ne!(a.dir(), b.dir());
    }
}
