//! Quoting for everything that reaches a remote shell.
//!
//! Every remote command is built from typed pieces here: a value is never
//! pasted into a command line unquoted, and file contents never travel in a
//! command line at all (they go over stdin).

use std::fmt;

/// Quotes one value for a POSIX shell. Inventory values are validated before
/// they get here, so a NUL byte (the only thing sh cannot carry) is a bug.
pub fn quote(value: &str) -> String {
    shlex::try_quote(value)
        .expect("remote values never contain NUL bytes")
        .into_owned()
}

/// A command line built argument by argument, each one quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    words: Vec<String>,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            words: vec![quote(program)],
        }
    }

    pub fn arg(mut self, value: impl AsRef<str>) -> Self {
        self.words.push(quote(value.as_ref()));
        self
    }

    pub fn args<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for v in values {
            self.words.push(quote(v.as_ref()));
        }
        self
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_values_single_words() {
        let cases = [
            ("plain", "plain"),
            ("/opt/mesosphere/active/cni", "/opt/mesosphere/active/cni"),
            ("two words", "'two words'"),
            ("it's", "\"it's\""),
            ("$(reboot)", "'$(reboot)'"),
            ("a;b", "'a;b'"),
            ("", "''"),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "quoting {input:?}");
        }
    }

    #[test]
    fn quoted_values_round_trip_through_a_shell_parser() {
        let nasty = ["x' ; rm -rf / ; '", "`id`", "a\nb", "--", "-rf", "*", "\\"];
        for value in nasty {
            let line = Cmd::new("echo").arg(value).to_string();
            let parsed = shlex::split(&line).expect("parses");
            assert_eq!(
                parsed,
                vec!["echo".to_string(), value.to_string()],
                "{line}"
            );
        }
    }
}
