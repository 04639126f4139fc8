//! File-driven tests of the whole loader: every broken file under
//! `tests/broken/` states, in `# expect:` lines, the exact errors (key path,
//! line:column, message start) it must produce, in order. The reference
//! configuration must load and say what it documents.

use std::path::{Path, PathBuf};

use crate::{parse, LoadError, Transport};

fn broken_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken")
}

#[test]
fn every_broken_file_reports_its_exact_errors() {
    let dir = broken_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "only {} broken files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| e.replace("{dir}", &dir.display().to_string()))
            .collect();
        assert!(!expected.is_empty(), "{} has no # expect: line", file.display());
        let errors = match parse(&text, &dir) {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(LoadError::Invalid(errors)) => errors,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), expected.len(), "{}: got {got:#?}", file.display());
        for (got, want) in got.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "{}:\n  got  {got}\n  want {want}",
                file.display()
            );
        }
    }
}

#[test]
fn reference_config_loads_with_its_documented_values() {
    let config = parse(crate::REFERENCE_YAML, Path::new("/etc/skerry")).unwrap();
    assert_eq!(config.ca.dir, Path::new("/var/lib/skerry/ca"));
    let rate = config.broker.max_message_rate.unwrap();
    assert_eq!((rate.count.get(), rate.per.as_secs()), (1000, 1));
    let [node] = config.broker.nodes.as_slice() else {
        panic!("one node expected")
    };
    assert_eq!(node.name, "node1");
    assert_eq!(node.data_dir, Path::new("/var/lib/skerry/node1"));
    let [l] = node.listeners.as_slice() else {
        panic!("one listener expected")
    };
    assert_eq!(
        (l.name.as_str(), l.bind.to_string(), l.transport),
        ("mqtt", "127.0.0.1:1884".to_owned(), Transport::Tcp)
    );
    // The values the reference states are the defaults.
    assert_eq!(l.max_connections.get(), crate::Listener::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(l.handshake_timeout, crate::Listener::DEFAULT_HANDSHAKE_TIMEOUT);
    assert_eq!(l.max_packet_size, crate::Listener::DEFAULT_MAX_PACKET_SIZE);
    assert_eq!(config.logging, crate::Logging::default());
    let b = &config.broker;
    let rule = crate::AclRule {
        access: crate::Access::All,
        topic: "devices/%u/#".to_owned(),
        users: vec![],
    };
    assert_eq!(b.acl, [rule]);
    assert_eq!(b.sessions, crate::Sessions::default());
    assert_eq!(b.store, crate::Store::default());
    let defaults = crate::Broker::default();
    assert_eq!(
        (
            b.max_message_size,
            b.max_keep_alive,
            b.topic_alias_maximum,
            b.sys_interval,
            b.allow_anonymous
        ),
        (
            defaults.max_message_size,
            defaults.max_keep_alive,
            defaults.topic_alias_maximum,
            defaults.sys_interval,
            defaults.allow_anonymous
        )
    );
    assert_eq!(b.shared_subscription_policy, crate::SharedPolicy::PreferLocal);
}

/// A YAML key line (`  name: x`, `- bind: y`, `# tls:`), live or commented out.
fn key_of(line: &str) -> Option<(&str, bool)> {
    let trimmed = line.trim_start();
    let commented = trimmed.starts_with('#');
    let body = trimmed.trim_start_matches('#').trim_start().trim_start_matches("- ");
    let (key, rest) = body.split_once(':')?;
    let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    (is_key && (rest.is_empty() || rest.starts_with(' '))).then_some((key, commented))
}

/// Every key in the reference file, live or commented out, has prose
/// comment lines right above it; commented-out example keys may share the
/// prose that opens their block, and a later list item's keys are covered
/// by the first item's.
#[test]
fn reference_config_documents_every_key() {
    let lines: Vec<&str> = crate::REFERENCE_YAML.lines().collect();
    let mut documented_keys = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, commented)) = key_of(line) else { continue };
        let indent = line.len()
            - line
                .trim_start()
                .trim_start_matches('#')
                .trim_start()
                .trim_start_matches("- ")
                .len();
        let mut above = lines[..i].iter().rev();
        let prose = if commented {
            above.find(|l| key_of(l).is_none())
        } else {
            above.next()
        };
        let documented = prose.is_some_and(|l| l.trim_start().starts_with('#') && key_of(l).is_none());
        if documented {
            documented_keys.insert((indent, key.to_owned()));
        }
        assert!(
            documented || documented_keys.contains(&(indent, key.to_owned())),
            "line {}: key without a comment above it: {line}",
            i + 1
        );
    }
}

#[test]
fn empty_file_is_the_defaults() {
    let config = parse("# nothing here\n", Path::new(".")).unwrap();
    assert!(config.broker.nodes.is_empty());
    assert_eq!(config.logging, crate::Logging::default());
}

#[test]
fn embedded_default_is_valid_and_wires_lb_to_the_node() {
    let config = crate::embedded_default(Path::new("/srv")).unwrap();
    let lb = config.lb.expect("the default runs a balancer");
    let node = &config.broker.nodes[0];
    assert_eq!(node.data_dir, Path::new("/srv/skerry-data/node1"));
    let from_lb = node.listeners[0].bind.to_string();
    assert_eq!(lb.pools[0].members[0].address, from_lb);
    let tls = lb.listeners[1].tls.as_ref().unwrap();
    assert!(tls.require_certificate && tls.auto.is_some());
    assert_eq!(tls.client_ca.as_deref(), Some(Path::new("/srv/skerry-data/ca/ca.crt")));
    assert_eq!(config.admin.unwrap().bind.to_string(), "127.0.0.1:8888");
}
