//! The terminal side of progress. On a terminal: a line per host of the
//! current batch with what it waits for and for how long, and an overall
//! bar over the hosts with an ETA (indicatif). Elsewhere (CI logs, pipes):
//! one plain line per event, each stamped with UTC time. `-q` shows none of
//! it; `-v` adds each remote command as it starts.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::report::{Event, Reporter, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Only the recap (and errors).
    Quiet,
    Normal,
    /// Each remote command too.
    Verbose,
}

pub struct Progress {
    verbosity: Verbosity,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    /// The phase, as a spinner.
    main: ProgressBar,
    /// Preflight's count of hosts connected.
    phase: Mutex<Option<ProgressBar>>,
    /// Hosts done out of all the rollout's, with the ETA.
    overall: Mutex<Option<ProgressBar>>,
    /// One line per host of the current batch.
    hosts: Mutex<Vec<(String, ProgressBar)>>,
}

/// Whole seconds, as people read them: "1m 20s".
fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The text of one event for a log, or `None` when it shows nothing at
/// this verbosity.
pub fn plain_line(event: &Event<'_>, verbosity: Verbosity) -> Option<String> {
    if verbosity == Verbosity::Quiet {
        return None;
    }
    Some(match event {
        Event::PreflightStarted { hosts } => format!("preflight: connecting to {hosts} host(s)"),
        Event::Connected { host } => format!("{host}: connected"),
        Event::StageStarted { hosts } => {
            format!("stage: uploading and pulling on {hosts} host(s), ahead of the batches")
        }
        Event::RolloutStarted { hosts, estimate } => {
            format!("rollout: {hosts} host(s), about {}", secs(*estimate))
        }
        Event::MeshCheck {
            before_batch,
            total,
            hosts,
        } => format!(
            "before batch {before_batch} of {total}: checking the BGP sessions of the {hosts} host(s) already done"
        ),
        Event::BatchStarted {
            index,
            total,
            canary,
            hosts,
        } => format!(
            "batch {index} of {total}{}: {}",
            if *canary { " (canary)" } else { "" },
            hosts.join(", ")
        ),
        Event::Waiting {
            host,
            step,
            what,
            deadline,
        } => format!("{host} {step}: {what} (up to {})", secs(*deadline)),
        Event::Progress { host, what } => format!("{host}: {what}"),
        Event::Command {
            host,
            step,
            what,
            deadline,
        } => {
            if verbosity < Verbosity::Verbose {
                return None;
            }
            let step = step.map(|s| format!(" {s}")).unwrap_or_default();
            format!("{host}{step} $ {what} (deadline {})", secs(*deadline))
        }
        Event::StepFinished {
            host,
            step,
            status,
            message: "",
        } => format!("{host} {step}: {}", status.as_str()),
        Event::StepFinished {
            host,
            step,
            status,
            message,
        } => format!("{host} {step}: {} ({message})", status.as_str()),
        Event::HostFinished { host, failed } => {
            format!("{host}: {}", if *failed { "FAILED" } else { "done" })
        }
        Event::Notice(text) => format!("!! {text}"),
    })
}

/// Writes to stderr, dropping what cannot be written: after SIGHUP the
/// terminal is gone and every write fails, but the run must still finish
/// its step, save its journal and release its locks (`eprint!` would
/// panic instead).
pub fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// [`to_stderr`], one line.
pub fn line_to_stderr(text: &str) {
    to_stderr(&format!("{text}\n"));
}

/// A log line: the event's text after the UTC time it happened.
pub fn stamped(at: SystemTime, text: &str) -> String {
    format!("{} {text}", humantime::format_rfc3339_seconds(at))
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
}

/// The overall bar: hosts done of all, and the time left. Until a host is
/// done, the plan's estimate is all there is to go on.
fn overall_style(estimate: Duration) -> ProgressStyle {
    style("  hosts [{bar:30}] {pos}/{len}  {left}")
        .progress_chars("=> ")
        .with_key(
            "left",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = if state.pos() == 0 {
                    write!(
                        w,
                        "ETA ~{} (plan)",
                        secs(estimate.saturating_sub(state.elapsed()))
                    )
                } else {
                    write!(w, "ETA {}", secs(state.eta()))
                };
            },
        )
}

impl Progress {
    /// Bars when stderr is a terminal, else plain lines; nothing at all
    /// with `Quiet`.
    pub fn new(verbosity: Verbosity) -> Self {
        let bars = (verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let main = multi.add(ProgressBar::new_spinner());
            main.enable_steady_tick(Duration::from_millis(120));
            Bars {
                multi,
                main,
                phase: Mutex::new(None),
                overall: Mutex::new(None),
                hosts: Mutex::new(Vec::new()),
            }
        });
        Progress { verbosity, bars }
    }
}

impl Bars {
    fn line(&self, text: &str) {
        self.multi.suspend(|| line_to_stderr(text));
    }

    fn host(&self, name: &str, f: impl FnOnce(&ProgressBar)) {
        let hosts = self.hosts.lock().expect("progress lock");
        if let Some((_, bar)) = hosts.iter().find(|(h, _)| h == name) {
            f(bar);
        }
    }

    fn event(&self, event: &Event<'_>, verbosity: Verbosity) {
        match event {
            Event::PreflightStarted { hosts } => {
                self.main
                    .set_message(format!("preflight: connecting to {hosts} host(s)"));
                let bar = self.multi.add(ProgressBar::new(*hosts as u64));
                bar.set_style(style("  connected [{bar:30}] {pos}/{len}").progress_chars("=> "));
                *self.phase.lock().expect("progress lock") = Some(bar);
            }
            Event::Connected { .. } => {
                if let Some(bar) = self.phase.lock().expect("progress lock").as_ref() {
                    bar.inc(1);
                }
            }
            Event::StageStarted { hosts } => {
                if let Some(bar) = self.phase.lock().expect("progress lock").take() {
                    bar.finish_and_clear();
                }
                self.main
                    .set_message(format!("stage: uploading and pulling on {hosts} host(s)"));
            }
            Event::RolloutStarted { hosts, estimate } => {
                if let Some(bar) = self.phase.lock().expect("progress lock").take() {
                    bar.finish_and_clear();
                }
                let bar = self.multi.add(ProgressBar::new(*hosts as u64));
                bar.set_style(overall_style(*estimate));
                bar.enable_steady_tick(Duration::from_millis(500));
                *self.overall.lock().expect("progress lock") = Some(bar);
            }
            Event::MeshCheck { .. } => {
                self.main
                    .set_message(plain_line(event, verbosity).expect("shown unless quiet"));
            }
            Event::BatchStarted { hosts, .. } => {
                self.main
                    .set_message(plain_line(event, verbosity).expect("batches show unless quiet"));
                let mut lines = self.hosts.lock().expect("progress lock");
                for (_, bar) in lines.drain(..) {
                    bar.finish_and_clear();
                }
                for host in hosts.iter() {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(style("    {prefix:14} {msg}"));
                    bar.set_prefix(host.clone());
                    bar.set_message("waiting for its turn");
                    bar.enable_steady_tick(Duration::from_millis(500));
                    lines.push((host.clone(), bar));
                }
            }
            Event::Waiting {
                host,
                step,
                what,
                deadline,
            } => self.host(host, |bar| {
                // The elapsed time restarts with each wait, against its own
                // deadline, before the new wait is drawn.
                bar.reset_elapsed();
                bar.set_style(style(&format!(
                    "    {{prefix:14}} {{msg}} ({{elapsed}} of {})",
                    secs(*deadline)
                )));
                bar.set_message(format!("{step}: {what}"));
            }),
            Event::Progress { host, what } => self.host(host, |bar| {
                let step = bar.message();
                let step = step.split(':').next().unwrap_or_default();
                bar.set_message(format!("{step}: {what}"));
            }),
            Event::Command { .. } => {
                if let Some(text) = plain_line(event, verbosity) {
                    self.line(&text);
                }
            }
            Event::StepFinished {
                host, step, status, ..
            } => {
                // Failures are news at once; everything else is in the
                // recap.
                if status.is_failure() {
                    self.line(&plain_line(event, verbosity).expect("shown unless quiet"));
                }
                if *status != Status::Ok {
                    self.host(host, |bar| {
                        bar.set_style(style("    {prefix:14} {msg}"));
                        bar.set_message(format!("{step}: {}", status.as_str()));
                    });
                }
            }
            Event::HostFinished { host, failed } => {
                self.host(host, |bar| {
                    bar.set_style(style("    {prefix:14} {msg}"));
                    bar.finish_with_message(if *failed { "FAILED" } else { "done" });
                });
                if let Some(bar) = self.overall.lock().expect("progress lock").as_ref() {
                    bar.inc(1);
                }
            }
            Event::Notice(_) => self.line(&plain_line(event, verbosity).expect("shown")),
        }
    }

    fn finish(&self) {
        for (_, bar) in self.hosts.lock().expect("progress lock").drain(..) {
            bar.finish_and_clear();
        }
        for slot in [&self.phase, &self.overall] {
            if let Some(bar) = slot.lock().expect("progress lock").take() {
                bar.finish_and_clear();
            }
        }
        self.main.finish_and_clear();
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event<'_>) {
        match &self.bars {
            Some(bars) => bars.event(&event, self.verbosity),
            None => {
                if let Some(text) = plain_line(&event, self.verbosity) {
                    line_to_stderr(&stamped(SystemTime::now(), &text));
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::StepName;

    fn waiting() -> Event<'static> {
        Event::Waiting {
            host: "agent-07",
            step: StepName::Docker,
            what: "restarting docker, waiting for the cluster store",
            deadline: Duration::from_secs(60),
        }
    }

    fn command() -> Event<'static> {
        Event::Command {
            host: "agent-07",
            step: Some(StepName::Docker),
            what: "install /etc/docker/daemon.json, systemctl restart docker",
            deadline: Duration::from_secs(90),
        }
    }

    #[test]
    fn log_lines_start_with_utc_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_750);
        let text = plain_line(&waiting(), Verbosity::Normal).unwrap();
        assert_eq!(
            stamped(at, &text),
            "2026-11-30T00:53:20Z agent-07 docker: restarting docker, \
             waiting for the cluster store (up to 1m)"
        );
    }

    #[test]
    fn quiet_shows_nothing_and_verbose_adds_the_commands() {
        let events = [
            waiting(),
            command(),
            Event::Notice("rollout stopped"),
            Event::HostFinished {
                host: "agent-07",
                failed: true,
            },
        ];
        for e in &events {
            assert_eq!(plain_line(e, Verbosity::Quiet), None, "{e:?}");
        }
        assert_eq!(plain_line(&command(), Verbosity::Normal), None);
        assert_eq!(
            plain_line(&command(), Verbosity::Verbose).unwrap(),
            "agent-07 docker $ install /etc/docker/daemon.json, systemctl restart docker \
             (deadline 1m 30s)"
        );
        assert_eq!(
            plain_line(&events[3], Verbosity::Normal).unwrap(),
            "agent-07: FAILED"
        );
    }

    #[test]
    fn a_step_line_carries_its_reason() {
        let e = Event::StepFinished {
            host: "pub-1",
            step: StepName::Cni,
            status: Status::Unreachable,
            message: "connect 10.0.0.21:22: timed out after 10s",
        };
        assert_eq!(
            plain_line(&e, Verbosity::Normal).unwrap(),
            "pub-1 cni: unreachable (connect 10.0.0.21:22: timed out after 10s)"
        );
    }
}
