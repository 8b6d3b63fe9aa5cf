//! Places in a scenario's text: the line and column of a key path, for errors found
//! after parsing. It reads text only, and must not parse YAML.

/// Finds the line and column of a key path (`["heartbeat", "timeout"]`) in block-style
/// YAML, for errors found after parsing. Falls back to the deepest ancestor found.
pub(super) fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent {
            if indent <= p {
                // Left the block of the key we matched last: the path is not below it.
                break;
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
    found
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
    }
}
