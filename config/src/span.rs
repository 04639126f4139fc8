//! Where each key of a YAML document sits. serde (and so `yaml_serde`)
//! forgets positions once a value is deserialized, but the checks that run
//! after parsing (duplicate ports, missing files, bad units) must still say
//! `line:column`. This walks the document's events once with
//! `saphyr-parser` and records the position of every value by its key path
//! (`broker.nodes[0].listeners[1].bind`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A 1-based line and column in the YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, counted from 1.
    pub line: usize,
    /// Column, counted from 1.
    pub col: usize,
}

/// Key path -> position of the value under that key.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    values: HashMap<String, Pos>,
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, next: usize },
}

impl SpanIndex {
    /// Indexes `text`. A text the event parser rejects yields what was
    /// indexed up to the error; the serde pass reports the syntax error.
    pub(crate) fn build(text: &str) -> Self {
        let mut index = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let pos = Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { key: key @ None, .. }) = stack.last_mut() {
                        *key = Some(value.into_owned());
                    } else if let Some(path) = child_path(&mut stack) {
                        index.values.insert(path, pos);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = child_path(&mut stack).unwrap_or_default();
                    index.values.insert(path.clone(), pos);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Mapping { path, key: None },
                        _ => Frame::Sequence { path, next: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Alias(_) => {
                    child_path(&mut stack);
                }
                _ => {}
            }
        }
        index
    }

    /// Position of the value at `path`, or of its nearest indexed ancestor
    /// (a missing key is reported where its parent mapping starts).
    pub(crate) fn find(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.values.get(path) {
                return *pos;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.values.get("").copied().unwrap_or(Pos { line: 1, col: 1 }),
            }
        }
    }
}

/// The path of the value node that starts now, consuming the pending key
/// or sequence slot of its parent. `None` at the document root.
fn child_path(stack: &mut [Frame]) -> Option<String> {
    match stack.last_mut()? {
        Frame::Mapping { path, key } => {
            let key = key.take().unwrap_or_default();
            Some(join(path, &key))
        }
        Frame::Sequence { path, next } => {
            *next += 1;
            Some(format!("{path}[{}]", *next - 1))
        }
    }
}

/// `join("a.b", "c") == "a.b.c"`, `join("", "c") == "c"`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_key_paths() {
        let text = "logging:\n  level: info\nbroker:\n  nodes:\n    - name: a\n      listeners:\n        - bind: 1.2.3.4:5\n        - bind: \"x\"\n";
        let idx = SpanIndex::build(text);
        assert_eq!(idx.find("logging.level"), Pos { line: 2, col: 10 });
        assert_eq!(idx.find("broker.nodes[0].name"), Pos { line: 5, col: 13 });
        assert_eq!(idx.find("broker.nodes[0].listeners[1].bind"), Pos { line: 8, col: 17 });
        // A key that is absent resolves to its parent.
        assert_eq!(idx.find("broker.nodes[0].listeners[1].tls"), Pos { line: 8, col: 11 });
    }
}
