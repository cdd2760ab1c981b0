//! The whole comparison as JSON (every metric, its policy, statistics,
//! verdict and reasons): for tools that post-process it.

use crate::compare::verdict::Comparison;

pub fn render(c: &Comparison) -> String {
    // Serialising these plain structs cannot fail; non-finite numbers
    // become null.
    serde_json::to_string_pretty(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}
