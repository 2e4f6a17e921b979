//! The terminal side of progress: indicatif bars when stderr is a terminal,
//! plain timestamp-free lines when it is not (CI logs, pipes).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Event, Reporter, Status};

pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    /// The current phase's bar; replaced as phases start.
    phase: Mutex<Option<ProgressBar>>,
}

impl Progress {
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let main = multi.add(ProgressBar::new_spinner());
            main.enable_steady_tick(std::time::Duration::from_millis(120));
            Bars {
                multi,
                main,
                phase: Mutex::new(None),
            }
        });
        Progress { bars }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn start_phase(&self, title: String, len: usize) {
        match &self.bars {
            Some(b) => {
                b.main.set_message(title.clone());
                let bar = b.multi.add(ProgressBar::new(len as u64));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(title);
                let old = b.phase.lock().expect("progress lock").replace(bar);
                if let Some(old) = old {
                    old.finish_and_clear();
                }
            }
            None => eprintln!("== {title}"),
        }
    }

    fn tick(&self) {
        if let Some(b) = &self.bars
            && let Some(bar) = b.phase.lock().expect("progress lock").as_ref()
        {
            bar.inc(1);
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::PreflightStarted { hosts } => {
                self.start_phase(format!("preflight: connecting to {hosts} host(s)"), hosts)
            }
            Event::Connected { host } => {
                self.tick();
                if self.bars.is_none() {
                    eprintln!("   {host}: connected");
                }
            }
            Event::StageStarted { hosts } => self.start_phase(
                format!("stage: uploading to {hosts} host(s) in parallel"),
                hosts,
            ),
            Event::BatchStarted {
                index,
                total,
                canary,
                hosts,
            } => self.start_phase(
                format!(
                    "batch {index} of {total}{}: {}",
                    if canary { " (canary)" } else { "" },
                    hosts.join(", ")
                ),
                hosts.len(),
            ),
            Event::StepFinished {
                host,
                step,
                status,
                message,
            } => {
                let text = if message.is_empty() {
                    format!("   {host} {step}: {}", status.as_str())
                } else {
                    format!("   {host} {step}: {} ({message})", status.as_str())
                };
                if status != Status::Ok || self.bars.is_none() {
                    self.line(&text);
                }
            }
            Event::Notice(text) => self.line(&format!("!! {text}")),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bars {
            if let Some(bar) = b.phase.lock().expect("progress lock").take() {
                bar.finish_and_clear();
            }
            b.main.finish_and_clear();
        }
    }
}
