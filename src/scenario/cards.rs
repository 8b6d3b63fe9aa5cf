//! The card data feeder: a CSV file with a header row, one row per session, dealt
//! round-robin by session id and pinned to that session across reconnects. It reads the
//! file once, at load, and must not read anything during the run.

use std::path::Path;

use super::input;

/// Card data: one row per session, pinned to that session across reconnects.
#[derive(Debug, Clone, Default)]
pub struct Cards {
    /// Column names, from the header row.
    pub columns: Vec<String>,
    /// Data rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Cards {
    /// Loads a CSV file with a header row.
    /// Only a regular file of at most [`input::DATA_MAX_BYTES`] is read.
    pub fn load(path: &Path) -> Result<Cards, String> {
        let bytes = input::read_capped(path, input::DATA_MAX_BYTES)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes.as_slice());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
            rows.push(record.iter().map(str::to_owned).collect());
        }
        if rows.is_empty() {
            return Err(format!("{}: has a header but no data rows", path.display()));
        }
        Ok(Cards { columns, rows })
    }

    /// The row for a session: rows are dealt round-robin by session id.
    pub fn row(&self, session_id: u32) -> &[String] {
        &self.rows[session_id as usize % self.rows.len()]
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::{load, Overrides};

    #[test]
    fn data_files_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        std::fs::write(
            &scenario,
            "data: {cards: /dev/zero}\nheartbeat:\n  send: x\n",
        )
        .unwrap();
        let e = load(&scenario, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.yaml:1:1: data.cards: /dev/zero: is a device"),
            "{e}"
        );
        std::fs::write(&scenario, "data: {cards: .}\nheartbeat:\n  send: x\n").unwrap();
        let e = load(&scenario, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
    }
}
