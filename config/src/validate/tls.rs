//! The `tls` block shared by broker and balancer listeners: PEM files the
//! operator provides, or `auto` (the bundled CA issues the server
//! certificate at start-up and, unless told otherwise, verifies clients
//! against itself).

use std::path::PathBuf;

use super::Ctx;
use crate::model::{AutoTls, TlsFiles};
use crate::raw::RawTlsSpec;
use crate::span::join;

/// Validates the `tls` block at `tls_path` of the listener called `listener`.
pub(super) fn tls(cx: &mut Ctx<'_>, tls_path: &str, listener: &str, spec: RawTlsSpec) -> Option<TlsFiles> {
    let raw = spec.0;
    let auto = raw.auto.unwrap_or(false);
    let require_certificate = raw.require_certificate.unwrap_or(false);
    let use_identity_as_username = raw.use_identity_as_username.unwrap_or(false);
    let crl = raw.crl.map(|p| cx.existing_file(&join(tls_path, "crl"), &p));
    let (cert, key, client_ca, auto) = if auto {
        for (key, given) in [("cert", raw.cert.is_some()), ("key", raw.key.is_some())] {
            if given {
                cx.error(
                    &join(tls_path, key),
                    "with auto, the bundled CA issues cert and key: remove one or the other",
                );
            }
        }
        let ca_dir = cx.ca_dir().to_owned();
        let out = ca_dir.join("auto").join(listener);
        let wants_clients = require_certificate || use_identity_as_username || crl.is_some();
        let client_ca = match raw.client_ca {
            Some(p) => Some(cx.existing_file(&join(tls_path, "client_ca"), &p)),
            None => wants_clients.then(|| ca_dir.join("ca.crt")),
        };
        let names = raw.names.unwrap_or_default();
        if let Some(i) = names.iter().position(String::is_empty) {
            cx.error(&format!("{tls_path}.names[{i}]"), "a certificate name cannot be empty");
        }
        (
            Some(out.join("server.crt")),
            Some(out.join("server.key")),
            client_ca,
            Some(AutoTls { ca_dir, names }),
        )
    } else {
        if raw.names.is_some() {
            cx.error(
                &join(tls_path, "names"),
                "names only applies with auto: true (the certificate file has its own)",
            );
        }
        let cert = required(cx, tls_path, "cert", raw.cert);
        let key = required(cx, tls_path, "key", raw.key);
        let client_ca = raw
            .client_ca
            .map(|p| cx.existing_file(&join(tls_path, "client_ca"), &p));
        (cert, key, client_ca, None)
    };
    if client_ca.is_none() {
        let needs = [
            ("require_certificate", require_certificate),
            ("use_identity_as_username", use_identity_as_username),
            ("crl", crl.is_some()),
        ];
        for (key, _) in needs.into_iter().filter(|(_, set)| *set) {
            cx.error(
                &join(tls_path, key),
                "needs tls.client_ca: the CA bundle client certificates are verified against",
            );
        }
    }
    Some(TlsFiles {
        cert: cert?,
        key: key?,
        client_ca,
        require_certificate,
        use_identity_as_username,
        crl,
        auto,
    })
}

fn required(cx: &mut Ctx<'_>, tls_path: &str, key: &str, value: Option<PathBuf>) -> Option<PathBuf> {
    match value {
        Some(p) => Some(cx.existing_file(&join(tls_path, key), &p)),
        None => {
            let message = format!("missing {key}: a TLS listener needs a PEM {key} file (or tls: auto)");
            cx.error(&join(tls_path, key), message);
            None
        }
    }
}
