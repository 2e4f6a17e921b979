//! The operator's own checks (`rollout.checks`) as gate checks: a command
//! or an HTTP request on the agent, under the check's own deadline, whose
//! last lines of output come back for the report.

use crate::inventory::{CheckProbe, OperatorCheck};
use crate::remote::secs;
use crate::shell::Cmd;

/// How many lines of a failed check's output the report keeps.
const TAIL: usize = 5;

pub(super) fn check(c: &OperatorCheck) -> String {
    // `co` holds the output and `cr` the exit status; an HTTP check's
    // status code is the last line curl prints, and only a 2xx passes.
    let (run, status) = match &c.probe {
        CheckProbe::Command(cmd) => (
            Cmd::new("timeout")
                .arg("-k")
                .arg("1")
                .arg(secs(c.timeout))
                .arg("sh")
                .arg("-c")
                .arg(cmd),
            "",
        ),
        CheckProbe::Http(url) => (
            Cmd::new("curl")
                .arg("-sS")
                .arg("--globoff")
                .arg("--max-time")
                .arg(secs(c.timeout))
                .arg("-w")
                .arg("\\nHTTP status %{http_code}")
                .arg("--")
                .arg(url),
            "case $cr in 0) case ${co##* } in 2??) ;; *) cr=22 ;; esac ;; esac\n",
        ),
    };
    format!(
        "co=$({run} 2>&1 </dev/null); cr=$?\n\
         {status}\
         printf '%s\\n' \"$co\" | tail -n {TAIL}; printf 'exit=%s\\n' \"$cr\"; [ \"$cr\" = 0 ]\n"
    )
}

/// The check's verdict: its last lines of output when it failed.
pub(super) fn reading(c: &OperatorCheck, ok: bool, out: &str, err: &str) -> Result<(), String> {
    if ok {
        return Ok(());
    }
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let code = match lines.last().and_then(|l| l.strip_prefix("exit=")) {
        Some(code) => {
            let code = code.to_string();
            lines.pop();
            code
        }
        None => String::new(),
    };
    lines.extend(err.lines().filter(|l| !l.trim().is_empty()));
    let said = lines.join(" | ");
    let how = match (&c.probe, code.as_str()) {
        (_, "124" | "137") => format!("did not finish within {}s", c.timeout.as_secs()),
        (CheckProbe::Http(_), _) => "failed".to_string(),
        (CheckProbe::Command(_), "") => "failed".to_string(),
        (CheckProbe::Command(_), code) => format!("failed (exit {code})"),
    };
    Err(if said.is_empty() {
        format!("check {} {how}", c.name)
    } else {
        format!("check {} {how}: {said}", c.name)
    })
}
