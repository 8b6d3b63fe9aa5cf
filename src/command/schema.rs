//! `wsoak schema scenario|report`: the JSON Schemas of what wsoak reads and writes. The
//! scenario schema is generated from the scenario model; the report schema is the
//! committed file, compiled in, which the tests hold real reports to.

use super::EXIT_OK;
use crate::cli::SchemaKind;

/// The committed schema of report.json.
const REPORT_SCHEMA: &str = include_str!("../../schema/report.schema.json");

/// Prints the schema `of` on stdout, as pretty JSON.
pub(crate) fn schema(of: SchemaKind) -> anyhow::Result<u8> {
    match of {
        SchemaKind::Scenario => {
            let schema = crate::scenario::scenario_schema();
            say_raw!("{}\n", serde_json::to_string_pretty(&schema)?);
        }
        SchemaKind::Report => say_raw!("{REPORT_SCHEMA}"),
    }
    Ok(EXIT_OK)
}
