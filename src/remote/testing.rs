//! Running scripts under the local `sh`, the way an agent would, with
//! stand-ins for the agent's programs first on PATH.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs a script under `sh -c`, feeding it `stdin`.
pub fn sh(script: &str, stdin: &[u8]) -> Output {
    sh_with_path(script, stdin, None)
}

/// Like [`sh`], with `bin` first on PATH.
pub fn sh_with_path(script: &str, stdin: &[u8], bin: Option<&Path>) -> Output {
    sh_with_env(script, stdin, bin, &[])
}

/// Like [`sh_with_path`], with these variables set.
pub fn sh_with_env(
    script: &str,
    stdin: &[u8],
    bin: Option<&Path>,
    env: &[(&str, std::path::PathBuf)],
) -> Output {
    let mut cmd = Command::new("sh");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("-c").arg(script);
    if let Some(bin) = bin {
        cmd.env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        );
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A script that never reads stdin may close it first.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// Writes an executable stub `name` into `bin`.
pub fn stub(bin: &Path, name: &str, body: &str) {
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
