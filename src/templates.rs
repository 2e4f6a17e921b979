//! The templates that render what lands on an agent: built-in copies of
//! `templates/`, overridden file by file from the operator's folder.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use thiserror::Error;

/// Why the desired state could not be rendered: nothing was contacted.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("cannot read template folder {path}: {reason}")]
    TemplateDir { path: PathBuf, reason: String },
    #[error("cannot read {path}: {reason}")]
    LocalFile { path: PathBuf, reason: String },
}

pub const ETCD_PROXY_UNIT: &str = "calico-etcd-proxy.service.j2";
pub const DAEMON_JSON: &str = "daemon.json.j2";
pub const CALICO_CNI: &str = "calico.cni.j2";
pub const NODE_CONTAINER: &str = "calico-node.json.j2";
pub const LIBNETWORK_CONTAINER: &str = "calico-libnetwork.json.j2";

const BUILTIN: [(&str, &str); 5] = [
    (
        ETCD_PROXY_UNIT,
        include_str!("../templates/calico-etcd-proxy.service.j2"),
    ),
    (DAEMON_JSON, include_str!("../templates/daemon.json.j2")),
    (CALICO_CNI, include_str!("../templates/calico.cni.j2")),
    (
        NODE_CONTAINER,
        include_str!("../templates/calico-node.json.j2"),
    ),
    (
        LIBNETWORK_CONTAINER,
        include_str!("../templates/calico-libnetwork.json.j2"),
    ),
];

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, with any file of the same name in `overrides`
    /// taking its place. A file there that matches no template is an error:
    /// it is almost always a typo that would otherwise be silently ignored.
    pub fn load(overrides: Option<&Path>) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        // Strict: a misspelt variable fails the run instead of rendering "".
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Values go through `tojson` explicitly; auto-escaping by file
        // extension would quote twice.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Unit files and configs end in a newline, as editors write them.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );

        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, src)| (name.to_string(), src.to_string()))
            .collect();
        if let Some(dir) = overrides {
            let dir_error = |e: std::io::Error| RenderError::TemplateDir {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            };
            for entry in std::fs::read_dir(dir).map_err(dir_error)? {
                let entry = entry.map_err(dir_error)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(slot) = sources.iter_mut().find(|(n, _)| *n == name) else {
                    return Err(RenderError::Template {
                        name,
                        reason: format!(
                            "unknown template in {} (expected one of: {})",
                            dir.display(),
                            BUILTIN.map(|(n, _)| n).join(", ")
                        ),
                    });
                };
                slot.1 =
                    std::fs::read_to_string(entry.path()).map_err(|e| RenderError::LocalFile {
                        path: entry.path(),
                        reason: e.to_string(),
                    })?;
            }
        }
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source)
                .map_err(|e| template_error(&name, &e))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| template_error(name, &e))
    }

    /// Renders a template that must produce a JSON value.
    pub fn render_json(&self, name: &str, ctx: &Value) -> Result<serde_json::Value, RenderError> {
        let text = self.render(name, ctx)?;
        serde_json::from_str(&text).map_err(|e| RenderError::Template {
            name: name.to_string(),
            reason: format!("does not render valid JSON: {e}\n--- rendered ---\n{text}"),
        })
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> RenderError {
    let mut reason = e.to_string();
    if let Some(line) = e.line() {
        reason = format!("line {line}: {reason}");
    }
    RenderError::Template {
        name: name.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn ctx() -> Value {
        context! {
            agent => context! { name => "agent-1", address => "10.0.0.11", role => "private" },
            etcd => context! {
                binary => "/usr/bin/etcd",
                gateway_endpoints => "10.0.0.5:2379,10.0.0.6:2379",
                client_endpoints => "http://127.0.0.1:2379",
                tls => (),
            },
            docker => context! { cluster_store => "etcd://127.0.0.1:2379" },
        }
    }

    #[test]
    fn builtin_templates_render() {
        let t = Templates::load(None).unwrap();
        let unit = t.render(ETCD_PROXY_UNIT, &ctx()).unwrap();
        assert!(unit.contains(
            "ExecStart=/usr/bin/etcd gateway start --endpoints=10.0.0.5:2379,10.0.0.6:2379 --listen-addr=127.0.0.1:2379\n"
        ));
        let daemon = t.render_json(DAEMON_JSON, &ctx()).unwrap();
        assert_eq!(
            daemon,
            serde_json::json!({"cluster-store": "etcd://127.0.0.1:2379"})
        );
        let cni = t.render_json(CALICO_CNI, &ctx()).unwrap();
        assert_eq!(cni["type"], "calico");
        assert_eq!(cni["ipam"]["type"], "calico-ipam");
        assert_eq!(cni["etcd_endpoints"], "http://127.0.0.1:2379");
        let node = t.render_json(NODE_CONTAINER, &ctx()).unwrap();
        assert_eq!(node["env"]["NODENAME"], "agent-1");
    }

    #[test]
    fn operator_template_overrides_builtin_and_typos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DAEMON_JSON),
            r#"{"cluster-store": {{ docker.cluster_store | tojson }}, "live-restore": true}"#,
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let daemon = t.render_json(DAEMON_JSON, &ctx()).unwrap();
        assert_eq!(daemon["live-restore"], true);

        std::fs::write(dir.path().join("daemon.jsn.j2"), "{}").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("unknown template"), "{err}");
    }

    #[test]
    fn undefined_variables_fail_instead_of_rendering_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CALICO_CNI), "{{ etcd.endpoint_typo }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let err = t.render(CALICO_CNI, &ctx()).unwrap_err().to_string();
        assert!(err.contains("calico.cni.j2"), "{err}");
    }
}
