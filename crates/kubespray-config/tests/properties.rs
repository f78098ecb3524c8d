//! Property tests: the hand-over edit changes exactly the intended keys on generated group_vars
//! with comments, anchors and odd quoting; the parsers never panic on arbitrary input.

use std::path::Path;

use kubespray_config::{Target, edit_vars_text, parse_ini, parse_vars, parse_yaml};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

const KEYS: [(&str, Target); 3] = [
    ("kube_network_plugin", Target::Str("cni")),
    ("kube_owner", Target::Str("root")),
    ("kube_proxy_remove", Target::Bool(true)),
];

/// One top-level entry (possibly several lines) of a generated vars file, never an intended key.
fn other_entry() -> impl Strategy<Value = String> {
    let name = "[a-z][a-z_]{0,8}"
        .prop_filter("not an intended key", |n| !KEYS.iter().any(|(k, _)| k == n));
    let value = prop_oneof![
        Just("plain value".to_owned()),
        Just("'single ''quoted'' : # not a comment'".to_owned()),
        Just("\"double \\\"quoted\\\" \\t {{ kube_owner }}\"".to_owned()),
        Just("yes".to_owned()),
        Just("0755".to_owned()),
        Just("~".to_owned()),
        Just("[a, 'b', {c: d}]".to_owned()),
        Just("{x: 1, y: [2, 3]}".to_owned()),
        Just("|\n  line one\n  kube_owner: not a key\n".to_owned()),
        Just(">-\n  folded\n  text\n".to_owned()),
        Just("\n  kube_owner: nested\n  deeper:\n    - 1\n    - two\n".to_owned()),
        Just("\n  - item\n  - kube_network_plugin: nested\n".to_owned()),
        Just("!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n".to_owned()),
        Just("value    # trailing comment".to_owned()),
    ];
    (name, value).prop_map(|(n, v)| {
        if v.starts_with('\n') {
            format!("{n}:{v}")
        } else {
            format!("{n}: {v}")
        }
    })
}

/// An intended key with an odd but valid value.
fn key_entry(key: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("{key}: cilium")),
        Just(format!("{key}: 'cilium'")),
        Just(format!("{key}: \"calico\"")),
        Just(format!("{key}: kube   # who owns /opt/cni/bin")),
        Just(format!("{key}: false")),
        Just(format!("{key}:\n  - a\n  - b")),
    ]
}

#[derive(Debug, Clone)]
enum Piece {
    Comment(String),
    Blank,
    Entry(String),
    AnchorPair(String),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[ -~]{0,30}".prop_map(|c| Piece::Comment(format!("# {c}"))),
        Just(Piece::Comment("# kube_owner: kube".to_owned())),
        Just(Piece::Blank),
        other_entry().prop_map(Piece::Entry),
        "[a-z]{1,5}".prop_map(Piece::AnchorPair),
    ]
}

fn vars_file() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(piece(), 0..12),
        proptest::option::of(key_entry("kube_network_plugin")),
        proptest::option::of(key_entry("kube_owner")),
        proptest::option::of(key_entry("kube_proxy_remove")),
        any::<(bool, bool, usize, usize, usize)>(),
        any::<bool>(),
    )
        .prop_map(
            |(pieces, net, owner, proxy, (header, final_newline, p1, p2, p3), crlf)| {
                let mut entries: Vec<String> = Vec::new();
                for (i, p) in pieces.into_iter().enumerate() {
                    entries.push(match p {
                        Piece::Comment(c) => c,
                        Piece::Blank => String::new(),
                        Piece::Entry(e) => e,
                        // an anchor on another key, and an alias to it
                        Piece::AnchorPair(a) => {
                            format!("anchored_{a}{i}: &{a}{i} 'shared'\nalias_{a}{i}: *{a}{i}")
                        }
                    });
                }
                for (entry, pos) in [(net, p1), (owner, p2), (proxy, p3)] {
                    if let Some(e) = entry {
                        let at = pos % (entries.len() + 1);
                        entries.insert(at, e);
                    }
                }
                let mut text = if header {
                    "---\n".to_owned()
                } else {
                    String::new()
                };
                text.push_str(&entries.join("\n"));
                if final_newline {
                    text.push('\n');
                }
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                text
            },
        )
        .prop_filter("parses as a mapping of unique keys", |text| {
            parse_vars(Path::new("g.yml"), text).is_ok() && unique_top_keys(text)
        })
}

fn unique_top_keys(text: &str) -> bool {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(top_key)
        .all(|k| seen.insert(k.to_owned()))
}

fn top_key(line: &str) -> Option<&str> {
    if line.starts_with([' ', '#', '-']) || line.is_empty() {
        return None;
    }
    line.split_once(':').map(|(k, _)| k)
}

/// The text with a final line break, in the file's own style.
fn terminated(text: &str) -> String {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}{eol}")
    }
}

/// The file without the intended keys' entries (key line plus indented continuation lines).
fn without_keys(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        match top_key(line) {
            Some(k) => skipping = KEYS.iter().any(|(key, _)| *key == k),
            None if line.starts_with([' ', '-']) => {}
            None => skipping = false,
        }
        if !skipping {
            out.push(line.trim_end_matches('\n'));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn edit_changes_exactly_the_intended_keys(text in vars_file()) {
        let path = Path::new("g.yml");
        let after = edit_vars_text(path, &text, &KEYS).map_err(|e| TestCaseError::fail(format!("{e}\n--- input:\n{text}")))?;
        let before_values = parse_vars(path, &text).expect("input parses");
        let after_values = parse_vars(path, &after).expect("output parses");
        for (key, target) in KEYS {
            let want = match target { Target::Str(s) => Value::from(s), Target::Bool(b) => Value::from(b) };
            prop_assert_eq!(after_values.get(key), Some(&want), "{}:\n{}", key, after);
        }
        for (k, v) in &before_values {
            if !KEYS.iter().any(|(key, _)| key == k) {
                prop_assert_eq!(after_values.get(k), Some(v), "{} changed:\n{}", k, after);
            }
        }
        prop_assert_eq!(after_values.len(), before_values.len() + KEYS.iter().filter(|(k, _)| !before_values.contains_key(*k)).count());
        // Every other line is byte-identical and in the same order.
        // (A last line without a line break gets one when keys are appended after it.)
        let (before_lines, after_lines) = (terminated(&text), terminated(&after));
        prop_assert_eq!(without_keys(&before_lines), without_keys(&after_lines), "input:\n{}\noutput:\n{}", text, after);
        // A quoted string value keeps its quote character.
        for line in text.lines() {
            for (key, target) in KEYS {
                if let Target::Str(s) = target {
                    for q in ['\'', '"'] {
                        if line.starts_with(&format!("{key}: {q}")) {
                            let quoted = format!("{key}: {q}{s}{q}");
                            prop_assert!(after.contains(&quoted), "{} lost its quotes:\n{}", key, after);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in ".{0,300}") {
        let _ = parse_ini(Path::new("inventory.ini"), &text);
        let _ = parse_yaml(Path::new("hosts.yaml"), &text);
        let _ = parse_vars(Path::new("g.yml"), &text);
        let _ = edit_vars_text(Path::new("g.yml"), &text, &KEYS);
    }

    #[test]
    fn parsers_never_panic_on_inventory_like_text(text in "([\\[\\]:a-z_=#'\" {}\\-&*|>!0-9.]{0,12}\n?){0,25}") {
        let _ = parse_ini(Path::new("inventory.ini"), &text);
        let _ = parse_yaml(Path::new("hosts.yaml"), &text);
        let _ = parse_vars(Path::new("g.yml"), &text);
        let _ = edit_vars_text(Path::new("g.yml"), &text, &KEYS);
    }
}
