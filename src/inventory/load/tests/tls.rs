//! `etcd.tls`: the three files together, PEM of the right kind, a private
//! key, and endpoints whose scheme agrees with it.

use std::os::unix::fs::PermissionsExt;

use super::*;

const CERT: &str = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";

fn tls_fixture() -> Fixture {
    let f = Fixture::new();
    f.write("tls/ca.pem", CERT);
    f.write("tls/client.pem", CERT);
    f.write("tls/client-key.pem", KEY);
    f.write("tls/cert-as-key.pem", CERT);
    for key in ["tls/client-key.pem", "tls/cert-as-key.pem"] {
        fs::set_permissions(f.path(key), fs::Permissions::from_mode(0o600)).unwrap();
    }
    f
}

fn with_tls(tls: &str) -> String {
    replace(
        MINIMAL,
        "  endpoints: [http://10.0.0.5:2379]\n",
        &format!("  endpoints: [https://10.0.0.5:2379]\n  tls: {tls}\n"),
    )
}

const TLS: &str = "{ca: tls/ca.pem, cert: tls/client.pem, key: tls/client-key.pem}";

#[test]
fn tls_files_are_read_relative_to_the_inventory() {
    let f = tls_fixture();
    let inv = f.ok(&with_tls(TLS));
    let tls = inv.etcd.tls.expect("tls");
    assert_eq!(tls.ca.path, f.path("tls/ca.pem"));
    assert_eq!(&tls.key.content[..], KEY.as_bytes());
    // Debug never shows the key's bytes.
    let shown = format!("{tls:?}");
    assert!(!shown.contains("aGVsbG8"), "{shown}");
    assert!(shown.contains("client-key.pem, sha256 "), "{shown}");
}

#[test]
fn a_key_readable_by_others_is_refused_in_openssh_words() {
    let f = tls_fixture();
    let key = f.path("tls/client-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = with_tls(TLS);
    let (line, col) = pos(&yaml, "tls/client-key.pem");
    assert_eq!(
        f.err(&yaml).to_string(),
        format!(
            "{}{line}:{col}: permissions 0644 for '{k}' are too open: the etcd client key must \
             not be readable by group or others (chmod 600 '{k}')",
            f.prefix(),
            k = key.display()
        )
    );
}

#[test]
fn each_tls_file_must_exist_and_hold_its_kind_of_pem() {
    let f = tls_fixture();
    let cases = [
        (
            "{ca: tls/ca.pem, cert: tls/client.pem}",
            "`tls` needs `key`: `ca`, `cert` and `key` go together",
        ),
        (
            "{ca: tls/none.pem, cert: tls/client.pem, key: tls/client-key.pem}",
            "etcd.tls ca file",
        ),
        (
            "{ca: tls/client-key.pem, cert: tls/client.pem, key: tls/client-key.pem}",
            "holds a \"PRIVATE KEY\" PEM block; it must hold one or more PEM certificates",
        ),
        (
            "{ca: tls/ca.pem, cert: tls/client.pem, key: tls/cert-as-key.pem}",
            "it must hold a PEM private key",
        ),
        (
            "{ca: tls/ca.pem, cert: tls/client.pem, key: tls/client-key.pem, pass: x}",
            "unknown field `pass`, expected one of `ca`, `cert`, `key`",
        ),
    ];
    for (tls, want) in cases {
        let text = f.err(&with_tls(tls)).to_string();
        assert!(text.contains(want), "{tls}:\n  want {want}\n  got  {text}");
        assert!(
            !text.contains("aGVsbG8"),
            "no file content in errors: {text}"
        );
    }
    // A file that is not PEM at all; the wording names it, not its bytes.
    f.write("tls/client.pem", "secret-looking text");
    let text = f.err(&with_tls(TLS)).to_string();
    assert!(text.contains("client.pem is not PEM"), "{text}");
    assert!(!text.contains("secret-looking"), "{text}");
}

#[test]
fn endpoints_and_tls_go_together() {
    let f = tls_fixture();
    let http_with_tls = replace(&with_tls(TLS), "https://10.0.0.5", "http://10.0.0.5");
    let (line, col) = pos(&http_with_tls, "http://10.0.0.5");
    let text = f.err(&http_with_tls).to_string();
    assert!(
        text.starts_with(&format!(
            "{}{line}:{col}: etcd endpoint http://10.0.0.5:2379 is plain http://, but `etcd.tls` \
             is set",
            f.prefix()
        )),
        "{text}"
    );
    let https_alone = replace(MINIMAL, "http://10.0.0.5", "https://10.0.0.5");
    let text = f.err(&https_alone).to_string();
    assert!(text.contains("uses TLS, but `etcd` has no `tls`"), "{text}");
}
