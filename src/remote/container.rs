//! Containers on the agent: pulling an image ahead of time, replacing a
//! container as one unit (the old one is back at once if the new one does
//! not start), and taking a replacement back.

use std::time::Duration;

use super::Script;
use super::history::{mark_undone, printf_literal, write_record};
use crate::desired::{ContainerSpec, OPTIONS_LABEL, SPEC_LABEL};
use crate::history::retired_name;
use crate::layout::Layout;
use crate::shell::{Cmd, quote};
use crate::step::StepName;

/// How long a container gets to stop before docker kills it.
const STOP_GRACE_SECS: u32 = 10;

/// `docker run` for a spec. Environment values stay in the root-only env
/// file, so they never show in argv, `ps` or the report.
pub fn run_command(spec: &ContainerSpec) -> Cmd {
    Cmd::new("docker")
        .arg("run")
        .arg("-d")
        .arg("--name")
        .arg(spec.name)
        .arg("--env-file")
        .arg(spec.env_file.path.as_str())
        .arg("--label")
        .arg(format!("{SPEC_LABEL}={}", spec.spec_hash))
        .arg("--label")
        .arg(format!(
            "{OPTIONS_LABEL}={}",
            serde_json::to_string(&spec.options).expect("strings serialize")
        ))
        .args(&spec.options)
        .arg(spec.image.as_str())
}

/// Makes sure docker has `image`, pulling it only when it is missing (as
/// `docker run` would), so that nothing is stopped for an image that
/// cannot be had.
pub fn pull(image: &str, deadline: Duration) -> Script {
    Script::new(
        format!("docker pull {image}"),
        deadline,
        format!(
            "{inspect} >/dev/null 2>&1 && exit 0\n{pull} >/dev/null\n",
            inspect = Cmd::new("docker")
                .arg("image")
                .arg("inspect")
                .arg("--")
                .arg(image),
            pull = Cmd::new("docker").arg("pull").arg("--").arg(image),
        ),
    )
}

pub fn start(name: &str, deadline: Duration) -> Script {
    Script::new(
        format!("docker start {name}"),
        deadline,
        format!(
            "{} >/dev/null\n",
            Cmd::new("docker").arg("start").arg("--").arg(name)
        ),
    )
}

/// Shell function `cid NAME`: prints the container's id, nothing when no
/// such container exists, and fails with docker's words on any other
/// error. A daemon that times out once must not read as "no container":
/// the replacement would then think it has nothing to keep, and its
/// clean-up would remove the live old one.
fn cid_function() -> String {
    let inspect = Cmd::new("docker")
        .arg("inspect")
        .arg("--type")
        .arg("container")
        .arg("--format")
        .arg("{{.Id}}")
        .arg("--");
    format!(
        "cid() {{
  \
           o=$({inspect} \"$1\" 2>&1) && {{ printf '%s' \"$o\"; return 0; }}\n  \
           case $o in *'No such container'*|*'No such object'*) return 0 ;; esac\n  \
           printf '%s\\n' \"$o\" >&2; return 1\n\
         }}\n"
    )
}

/// The replacement's spec label on container `name`.
fn spec_label(name: &str) -> String {
    inspect(
        &format!("{{{{index .Config.Labels \"{SPEC_LABEL}\"}}}}"),
        name,
    )
}

fn inspect(format: &str, name: &str) -> String {
    Cmd::new("docker")
        .arg("inspect")
        .arg("--type")
        .arg("container")
        .arg("--format")
        .arg(format)
        .arg("--")
        .arg(name)
        .to_string()
}

/// Replaces the container `spec.name` as change `seq` of `run`. What the
/// agent finds (the old container's id, restart policy and state) is
/// recorded before the old one is touched. The old one is kept, stopped
/// and never restarted by docker, as `<name>-previous-<run>`. If the new
/// one does not start, the old one is back at once, under its own name,
/// with its restart policy, running as it was.
pub fn replace(
    spec: &ContainerSpec,
    layout: &Layout,
    run: &str,
    seq: u32,
    step: StepName,
    deadline: Duration,
) -> Script {
    let name = spec.name;
    let retired = retired_name(name, run);
    let json = |v: &str| serde_json::to_string(v).expect("strings serialize");
    let record_format = format!(
        "{{\"step\":{step},\"undo\":{{\"undo\":\"container\",\"name\":{name},\"previous_id\":%s,\"retired\":{retired},\"policy\":\"%s\",\"was_running\":%s,\"spec_hash\":{spec}}},\"restart\":null}}\\n",
        step = printf_literal(&json(step.as_str())),
        name = printf_literal(&json(name)),
        retired = printf_literal(&json(&retired)),
        spec = printf_literal(&json(&spec.spec_hash)),
    );
    let text = format!(
        "set -u\n\
         name={name_q}; retired={retired_q}\n\
         {cid}\
         id=$(cid \"$name\") || exit 1\n\
         case $id in *[!0-9a-f]*) echo \"unexpected container id $id\" >&2; exit 1 ;; esac\n\
         if [ -n \"$id\" ]; then\n  \
           policy=$({policy}) || exit 1\n  \
           running=$({running}) || exit 1\n  \
           case $policy in ''|*[!a-z-]*) policy=no ;; esac\n  \
           case $running in true) ;; *) running=false ;; esac\n  \
           prev=\"\\\"$id\\\"\"\n\
         else\n  \
           policy=no; running=false; prev=null\n\
         fi\n\
         {record}\
         put_back() {{\n  \
           lbl=$({label}) || lbl=\n  \
           [ \"$lbl\" != {spec_q} ] || docker rm -f -- \"$name\" >/dev/null 2>&1\n  \
           [ -n \"$id\" ] || return 0\n  \
           docker rename \"$retired\" \"$name\" &&\n  \
           docker update --restart=\"$policy\" -- \"$name\" >/dev/null &&\n  \
           {{ [ \"$running\" = false ] || docker start -- \"$name\" >/dev/null; }} &&\n  \
           {undone}\
         }}\n\
         if [ -n \"$id\" ]; then\n  \
           printf '%s\\n' \"$retired\" > {marker}\n  \
           docker rm -f -- \"$retired\" >/dev/null 2>&1\n  \
           docker update --restart=no -- \"$name\" >/dev/null || exit 1\n  \
           if ! docker stop -t {grace} -- \"$name\" >/dev/null; then\n    \
             docker update --restart=\"$policy\" -- \"$name\" >/dev/null; exit 1\n  \
           fi\n  \
           if ! docker rename \"$name\" \"$retired\"; then\n    \
             docker update --restart=\"$policy\" -- \"$name\" >/dev/null\n    \
             [ \"$running\" = false ] || docker start -- \"$name\" >/dev/null\n    \
             exit 1\n  \
           fi\n\
         fi\n\
         if ! {run} >/dev/null; then\n  \
           put_back\n  \
           exit 1\n\
         fi\n",
        name_q = quote(name),
        retired_q = quote(&retired),
        cid = cid_function(),
        label = spec_label(name),
        spec_q = quote(&spec.spec_hash),
        policy = inspect("{{.HostConfig.RestartPolicy.Name}}", name),
        running = inspect("{{.State.Running}}", name),
        record = write_record(
            layout,
            run,
            seq,
            &record_format,
            "\"$prev\" \"$policy\" \"$running\""
        ),
        undone = mark_undone(layout, run, seq),
        marker = quote(&layout.retired_marker(run, name)),
        grace = STOP_GRACE_SECS,
        run = run_command(spec),
    );
    Script::new(format!("replacing {name}"), deadline, text)
}

/// Takes back change `seq` of `run`, a container replacement, if it was
/// made, from what its record on the agent says (the old container's id,
/// restart policy and state). Idempotent: a container already back is only
/// made sure to run as it did. Only a container carrying the
/// replacement's spec label is ever removed. Prints `undo done` or `undo
/// nothing`.
pub fn restore(layout: &Layout, run: &str, seq: u32, name: &str, deadline: Duration) -> Script {
    let field = |key: &str, pattern: &str| {
        format!("$(printf '%s' \"$rec\" | sed -n 's/.*\"{key}\":{pattern}.*/\\1/p')")
    };
    let text = format!(
        "set -u\n\
         name={name_q}; retired={retired_q}\n\
         [ -e {record} ] || {{ echo 'undo nothing'; exit 0; }}\n\
         [ -e {undone} ] && {{ echo 'undo nothing'; exit 0; }}\n\
         rec=$(cat -- {record}) || exit 1\n\
         prev={prev}\n\
         policy={policy}; [ -n \"$policy\" ] || policy=no\n\
         running={running}\n\
         spec={spec}\n\
         {cid}\
         cur=$(cid \"$name\") || exit 1\n\
         if [ -n \"$cur\" ] && [ \"$cur\" != \"$prev\" ]; then\n  \
           label=$({label}) || label=\n  \
           if [ -n \"$spec\" ] && [ \"$label\" = \"$spec\" ]; then\n    \
             docker rm -f -- \"$name\" >/dev/null || exit 1\n    \
             cur=\n  \
           elif [ -n \"$prev\" ]; then\n    \
             echo \"$name is a container calico-rollout did not start; left as it is\" >&2; exit 1\n  \
           fi\n\
         fi\n\
         if [ -n \"$prev\" ]; then\n  \
           if [ \"$cur\" != \"$prev\" ]; then\n    \
             docker rename \"$retired\" \"$name\" || exit 1\n  \
           fi\n  \
           docker update --restart=\"$policy\" -- \"$name\" >/dev/null || exit 1\n  \
           if [ \"$running\" = true ]; then docker start -- \"$name\" >/dev/null || exit 1; fi\n\
         fi\n\
         {undone_mark}\
         echo 'undo done'\n",
        name_q = quote(name),
        retired_q = quote(&retired_name(name, run)),
        record = quote(&layout.record_path(run, seq)),
        undone = quote(&layout.undone_path(run, seq)),
        prev = field("previous_id", "\"\\([0-9a-f]*\\)\""),
        policy = field("policy", "\"\\([a-z-]*\\)\""),
        running = field("was_running", "\\(true\\|false\\)"),
        spec = field("spec_hash", "\"\\([0-9a-f]*\\)\""),
        cid = cid_function(),
        label = spec_label(name),
        undone_mark = mark_undone(layout, run, seq),
    );
    Script::new(format!("putting back {name}"), deadline, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RecordBody;
    use crate::remote::testing::{sh_with_path, stderr, stdout, stub};
    use crate::step::Undo;
    use crate::steps::testing::desired;
    use std::path::Path;

    const D: Duration = Duration::from_secs(60);

    #[test]
    fn an_image_docker_has_is_not_pulled_and_a_failed_pull_says_why() {
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("log");
        stub(
            bin.path(),
            "docker",
            &format!(
                r#"echo "$*" >> {log}
case "$1 $2" in
  "image inspect") [ "$4" = calico/node:v1 ] ;;
  "pull --") echo "Error response from daemon: manifest for $3 not found: manifest unknown: manifest unknown" >&2; exit 1 ;;
esac"#,
                log = log.display()
            ),
        );
        let have = pull("calico/node:v1", D);
        assert_eq!(have.what, "docker pull calico/node:v1");
        let out = sh_with_path(&have.text, b"", Some(bin.path()));
        assert!(out.status.success());
        let missing = sh_with_path(&pull("calico/node:v9", D).text, b"", Some(bin.path()));
        assert!(!missing.status.success());
        assert!(stderr(&missing).contains("manifest for calico/node:v9 not found"));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "image inspect -- calico/node:v1\nimage inspect -- calico/node:v9\npull -- calico/node:v9\n"
        );
    }

    #[test]
    fn replace_and_restore_are_one_unit_each() {
        let (_state, bin, d, layout) = docker_world();
        let want = desired();
        let spec = want.node.as_ref().unwrap();
        let put = |name: &str, fields: &str| {
            std::fs::write(d.path().join("c").join(name), fields).unwrap()
        };
        let has = |name: &str| std::fs::read_to_string(d.path().join("c").join(name)).ok();
        put("calico-node", "aaa always true old-spec");

        // The run fails: the old container is back at once.
        std::fs::write(d.path().join("fail-run"), "").unwrap();
        let s = replace(spec, &layout, "r1", 1, StepName::Node, D);
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("manifest unknown"), "{out:?}");
        assert_eq!(
            has("calico-node").as_deref(),
            Some("aaa always true old-spec")
        );
        let record: RecordBody =
            serde_json::from_slice(&std::fs::read(layout.record_path("r1", 1)).unwrap()).unwrap();
        assert_eq!(
            record.undo,
            Undo::Container {
                name: "calico-node".into(),
                previous_id: Some("aaa".into()),
                retired: "calico-node-previous-r1".into(),
                policy: "always".into(),
                was_running: true,
                spec_hash: spec.spec_hash.clone(),
            }
        );
        assert!(Path::new(&layout.undone_path("r1", 1)).exists());

        // It starts: the old one waits, stopped, never restarted by docker.
        std::fs::remove_file(d.path().join("fail-run")).unwrap();
        let s = replace(spec, &layout, "r2", 1, StepName::Node, D);
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            has("calico-node-previous-r2").as_deref(),
            Some("aaa no false old-spec")
        );
        let new = has("calico-node").unwrap();
        assert!(
            new.ends_with(&format!("always true {}", spec.spec_hash)),
            "{new}"
        );

        // Restore, twice: the second finds it done.
        let restore_r2 = || {
            let s = restore(&layout, "r2", 1, "calico-node", D);
            sh_with_path(&s.text, b"", Some(bin.path()))
        };
        let out = restore_r2();
        assert_eq!(stdout(&out), "undo done\n", "{}", stderr(&out));
        assert_eq!(
            has("calico-node").as_deref(),
            Some("aaa always true old-spec")
        );
        assert!(has("calico-node-previous-r2").is_none());
        assert_eq!(stdout(&restore_r2()), "undo nothing\n");
        std::fs::remove_file(layout.undone_path("r2", 1)).unwrap();
        // Even without its marker, a restore never removes what is back.
        let out = restore_r2();
        assert_eq!(stdout(&out), "undo done\n", "{}", stderr(&out));
        assert_eq!(
            has("calico-node").as_deref(),
            Some("aaa always true old-spec")
        );
    }

    #[test]
    fn a_failed_inspect_is_an_error_and_the_old_container_stays() {
        let (_state, bin, d, layout) = docker_world();
        let want = desired();
        let spec = want.node.as_ref().unwrap();
        let node = d.path().join("c").join("calico-node");
        std::fs::write(&node, "aaa always true old-spec").unwrap();
        std::fs::write(d.path().join("fail-inspect-once"), "").unwrap();

        let s = replace(spec, &layout, "r1", 1, StepName::Node, D);
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("context deadline exceeded"),
            "docker's own words: {out:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&node).unwrap(),
            "aaa always true old-spec",
            "the live container is left as it was"
        );
        assert!(
            !Path::new(&layout.record_path("r1", 1)).exists(),
            "no record of a change that was not made"
        );

        // The same hiccup while a restore looks: it stops, touching
        // nothing, and the next try puts the old container back.
        let s = replace(spec, &layout, "r2", 1, StepName::Node, D);
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        assert!(out.status.success(), "{}", stderr(&out));
        let new = std::fs::read_to_string(&node).unwrap();
        std::fs::write(d.path().join("fail-inspect-once"), "").unwrap();
        let restore = || {
            let s = super::restore(&layout, "r2", 1, "calico-node", D);
            sh_with_path(&s.text, b"", Some(bin.path()))
        };
        let out = restore();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("context deadline exceeded"),
            "{out:?}"
        );
        assert_eq!(std::fs::read_to_string(&node).unwrap(), new);
        assert_eq!(stdout(&restore()), "undo done\n");
        assert_eq!(
            std::fs::read_to_string(&node).unwrap(),
            "aaa always true old-spec"
        );
    }

    /// A folder for the run history, and `docker` on PATH standing in over
    /// a folder of containers (see [`PY_DOCKER`]).
    fn docker_world() -> (
        tempfile::TempDir,
        tempfile::TempDir,
        tempfile::TempDir,
        Layout,
    ) {
        let state = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("c")).unwrap();
        stub(
            bin.path(),
            "docker",
            &format!(
                "exec python3 - \"$@\" <<'PY'\n{}\nPY",
                PY_DOCKER.replace("@DIR@", &d.path().display().to_string())
            ),
        );
        let layout = Layout::at(state.path().to_str().unwrap());
        (state, bin, d, layout)
    }

    /// A docker stand-in over a folder of containers, each a file holding
    /// `id policy running label`; `fail-run` makes `run` fail as a missing
    /// image does, and `fail-inspect-once` the next `inspect` as a daemon
    /// that timed out.
    const PY_DOCKER: &str = r#"
import os, sys, uuid
d = "@DIR@"; c = os.path.join(d, "c")
a = sys.argv[1:]
open(os.path.join(d, "log"), "a").write(" ".join(a) + "\n")
def get(n):
    try: return open(os.path.join(c, n)).read().split()
    except FileNotFoundError: return None
def put(n, f): open(os.path.join(c, n), "w").write(" ".join(f))
cmd = a[0]
once = os.path.join(d, "fail-inspect-once")
if cmd == "inspect" and os.path.exists(once):
    os.remove(once)
    sys.stderr.write("Error response from daemon: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.41/containers/x/json\": context deadline exceeded\n"); sys.exit(1)
if cmd == "inspect":
    n = a[-1]; f = get(n)
    if f is None: sys.stderr.write("Error: No such container: %s\n" % n); sys.exit(1)
    fmt = a[a.index("--format") + 1]
    out = {"{{.Id}}": f[0], "{{.HostConfig.RestartPolicy.Name}}": f[1], "{{.State.Running}}": f[2]}.get(fmt, f[3])
    print(out)
elif cmd == "update":
    n = a[-1]; f = get(n); f[1] = a[1].split("=")[1]; put(n, f)
elif cmd == "stop":
    n = a[-1]; f = get(n); f[2] = "false"; put(n, f)
elif cmd == "start":
    n = a[-1]; f = get(n); f[2] = "true"; put(n, f)
elif cmd == "rename":
    f = get(a[1])
    if f is None or get(a[2]) is not None: sys.exit(1)
    os.remove(os.path.join(c, a[1])); put(a[2], f)
elif cmd == "rm":
    n = a[-1]
    if get(n) is None: sys.exit(1)
    os.remove(os.path.join(c, n))
elif cmd == "run":
    if os.path.exists(os.path.join(d, "fail-run")):
        sys.stderr.write("docker: Error response from daemon: manifest for x not found: manifest unknown: manifest unknown.\n"); sys.exit(125)
    n = a[a.index("--name") + 1]
    if get(n) is not None: sys.exit(125)
    label = a[a.index("--label") + 1].split("=", 1)[1]
    put(n, [uuid.uuid4().hex, "always", "true", label]); print("id")
"#;
}
