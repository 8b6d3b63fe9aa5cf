//! Reading the files a scenario is made of, before anything parses them: regular files
//! only, each under a size cap, and a YAML scenario's nesting checked by a cheap scan.
//!
//! The caps exist because parsers are not linear in everything: YAML parsing is
//! quadratic in flow nesting (40 KB of `[` took 3.8 s, 200 KB over 20 s), and a data file
//! named `/dev/zero` would be read forever. Special files are refused before they are
//! opened for reading: opening a FIFO blocks until someone writes to it.
//!
//! This module must not interpret what it reads.

use std::io::{self, Read as _};
use std::path::Path;

/// The largest scenario file (YAML or `.rhai`): far past any real scenario.
pub const SCENARIO_MAX_BYTES: u64 = 1024 * 1024;
/// The largest hooks file a YAML scenario names.
pub const SCRIPT_MAX_BYTES: u64 = 1024 * 1024;
/// The largest card data file: 256 MiB holds millions of rows, and the file is held in
/// memory for the whole run.
pub const DATA_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The deepest nesting in a YAML scenario (block indentation plus flow brackets). Real
/// scenarios nest 4 or 5 deep.
pub const MAX_NESTING: usize = 64;

/// Reads a regular file of at most `cap` bytes. Errors are worded to follow the path.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let refuse = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file: only regular files are read"),
        )
    };
    let too_large = |len: u64| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {len} bytes, over the limit of {cap} ({} KiB)",
                cap / 1024
            ),
        )
    };
    // `metadata` follows symlinks, so a link to a regular file is fine.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(kind(&meta)));
    }
    if meta.len() > cap {
        return Err(too_large(meta.len()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // If the path was swapped for a FIFO since the check, opening must not block.
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(kind(&meta)));
    }
    let mut bytes = Vec::new();
    // One byte past the cap tells a file that grew since the check from one that fits.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// As [`read_capped`], for text.
pub fn read_text_capped(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, cap)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text".to_string()))
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Where YAML text nests deeper than `max`: `(line, column)`, both 1-based.
///
/// Depth is block indentation levels, plus compact `- ` entries, plus open `[` / `{`
/// outside quotes and comments. It is an estimate made without parsing, so it errs
/// towards counting: a bracket inside a plain scalar counts too, which only matters to
/// a file that would be absurd anyway. It is linear in the text.
pub fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (number, line) in text.lines().enumerate() {
        let mut column = 0;
        let mut chars = line.chars().peekable();
        let mut block = 0;
        if quote.is_none() && flow == 0 {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
            // `- - - x` nests a sequence per dash on one line.
            let dashes = trimmed
                .split_inclusive(' ')
                .take_while(|part| part.trim_end() == "-")
                .count();
            block = indents.len() + dashes;
            if block > max {
                return Some((number + 1, indent + 1));
            }
        }
        // What came before on this line that is not a space: decides whether a quote
        // starts a quoted scalar (after `:`, `,`, `[`, `{`, `-`, or at the start) or is
        // an apostrophe inside a plain one.
        let mut previous = None;
        // The character just before, spaces included: a `#` starts a comment only at the
        // start or after a space. Kept as a char, not found by slicing the line, because
        // columns count characters and the line's bytes may not.
        let mut last: Option<char> = None;
        while let Some(c) = chars.next() {
            column += 1;
            match quote {
                Some('"') => match c {
                    '\\' => {
                        chars.next();
                        column += 1;
                    }
                    '"' => quote = None,
                    _ => {}
                },
                Some(_) => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            column += 1;
                        } else {
                            quote = None;
                        }
                    }
                }
                None => match c {
                    '#' if last.is_none_or(|l| l == ' ' || l == '\t') => break,
                    '"' | '\'' if previous.is_none_or(|p| ":,[{-?".contains(p)) => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        if block + flow > max {
                            return Some((number + 1, column));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            if !c.is_whitespace() {
                previous = Some(c);
            }
            last = Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_without_parsing() {
        let real = "heartbeat:\n  send: {type: heartBeat, a: [1, {b: \"[[[\"}]}\n  \
                    expect: {x: 'it''s [ not'}  # [[[[\nthresholds:\n  - - - a\n";
        // Line 2: two block levels and three brackets; quoted and commented ones do not
        // count.
        assert_eq!(too_deep(real, 5), None);
        // Columns count characters, not bytes: text beyond ASCII is no panic.
        assert_eq!(too_deep("name: é#x\nb: 'ü\\' # [[[[[[\n", 2), None);
        assert_eq!(too_deep("name: é [[[\n", 2), Some((1, 10)));
        assert_eq!(too_deep(real, 4), Some((2, 34)));
        assert_eq!(too_deep("thresholds:\n  - - - a\n", 4), Some((2, 3)));
        assert_eq!(too_deep("thresholds:\n  - - - a\n", 5), None);
        let flow = format!("a: {}", "[".repeat(100));
        assert_eq!(too_deep(&flow, 64), Some((1, 4 + 63)));
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(too_deep(&block, 64), Some((65, 65)));
        assert_eq!(too_deep(&block, 70), None);
        // Closing more than was opened, and quotes that never close, do not panic.
        assert_eq!(too_deep("]]]}}} \"[[[\n'", 4), None);
    }

    #[test]
    fn only_regular_files_under_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "12345").unwrap();
        assert_eq!(read_capped(&file, 5).unwrap(), b"12345");
        let e = read_capped(&file, 4).unwrap_err().to_string();
        assert!(e.contains("5 bytes, over the limit of 4"), "{e}");
        let e = read_capped(dir.path(), 4).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            let e = read_capped(Path::new("/dev/zero"), 1 << 20)
                .unwrap_err()
                .to_string();
            assert!(e.contains("a device"), "{e}");
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: mkfifo reads the NUL-terminated path only.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            // Returns at once: the FIFO is refused before it is opened.
            let e = read_capped(&fifo, 1 << 20).unwrap_err().to_string();
            assert!(e.contains("a FIFO"), "{e}");
        }
    }
}
