//! Places in a scenario's text: the line and column of a key path, for errors found
//! after parsing. It reads text only, and must not parse YAML.

/// Finds the line and column of a key path (`["heartbeat", "timeout"]`, or
/// `["steps", "[1]", "name"]` for a list item's key) in block-style YAML, for errors found
/// after parsing. Falls back to the deepest ancestor found.
pub(super) fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    search(text, path).0
}

/// The line and column of the key path itself, or `None` when only an ancestor is found
/// (the key is in a flow mapping, say, or not in the text at all).
pub(super) fn locate_exact(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    match search(text, path) {
        (found, depth) if depth == path.len() => found,
        _ => None,
    }
}

/// The place of the deepest key of `path` found, and how many of its keys were found.
fn search(text: &str, path: &[&str]) -> (Option<(usize, usize)>, usize) {
    let mut found = None;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    // Items of the list being searched for `[i]`, seen so far, and their indent.
    let mut items = 0;
    let mut item_indent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let mut trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent {
            if indent <= p {
                // Left the block of the key we matched last: the path is not below it.
                break;
            }
        }
        if let Some(wanted) = path.get(depth).and_then(|k| list_index(k)) {
            if let Some(rest) = trimmed.strip_prefix("- ") {
                if item_indent.is_none_or(|i| i == indent) {
                    item_indent = Some(indent);
                    if items == wanted {
                        found = Some((number + 1, indent + 1));
                        depth += 1;
                        if depth == path.len() {
                            break;
                        }
                        parent_indent = Some(indent);
                        // The item's first key sits on the dash's line, two columns in.
                        indent += 2;
                        trimmed = rest;
                    } else {
                        items += 1;
                        continue;
                    }
                }
            }
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if depth < path.len() && key == path[depth] && trimmed.contains(':') {
            found = Some((number + 1, indent + 1));
            depth += 1;
            if depth == path.len() {
                break;
            }
            parent_indent = Some(indent);
        }
    }
    (found, depth)
}

/// `[3]` → 3: a path segment that is a list index.
fn list_index(segment: &str) -> Option<usize> {
    segment.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// A key path as people read it: `steps[1].name`.
pub(super) fn shown_path(path: &[&str]) -> String {
    let mut shown = String::new();
    for segment in path {
        if !shown.is_empty() && list_index(segment).is_none() {
            shown.push('.');
        }
        shown.push_str(segment);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_follows_nesting() {
        let text = "auth:\n  timeout: 1s\nheartbeat:\n  # c\n  timeout: 2s\n";
        assert_eq!(locate(text, &["heartbeat", "timeout"]), Some((5, 3)));
        assert_eq!(locate(text, &["auth", "timeout"]), Some((2, 3)));
        assert_eq!(locate(text, &["heartbeat", "nope"]), Some((3, 1)));
        assert_eq!(locate_exact(text, &["heartbeat", "timeout"]), Some((5, 3)));
        assert_eq!(locate_exact(text, &["heartbeat", "nope"]), None);
    }

    #[test]
    fn locate_finds_list_items_and_their_keys() {
        let text = "steps:\n  - name: a\n    send: {}\n  # c\n  - name: b\n    timeout: 0s\nheartbeat: {}\n";
        assert_eq!(locate(text, &["steps", "[1]"]), Some((5, 3)));
        assert_eq!(locate(text, &["steps", "[1]", "name"]), Some((5, 5)));
        assert_eq!(locate(text, &["steps", "[1]", "timeout"]), Some((6, 5)));
        assert_eq!(locate(text, &["steps", "[0]", "send"]), Some((3, 5)));
        // Not in the item: its item is the deepest place found.
        assert_eq!(locate(text, &["steps", "[0]", "timeout"]), Some((2, 3)));
        assert_eq!(shown_path(&["steps", "[1]", "name"]), "steps[1].name");
    }
}
