//! Aligned columns and `key: value` lines for people; small enough not to need a crate.

use serde_json::Value;

/// Longest cell shown; longer ones end in `…` (`--output json` has everything).
const MAX_CELL: usize = 60;

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| clip(c)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&mut headers.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Prints `key: value` lines, the keys aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in pairs {
        println!("{:width$} {value}", format!("{key}:"));
    }
}

/// Prints a JSON object as `a.b: value` lines (for answers without a table of their own).
pub fn flat(value: &Value) {
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    fields(&pairs);
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, inner, out);
            }
        }
        other => out.push((prefix.to_owned(), text(other))),
    }
}

/// A value as one cell: strings bare, `null` empty, anything else as compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value[key]` as a cell.
pub fn cell(value: &Value, key: &str) -> String {
    text(&value[key])
}

fn clip(cell: &str) -> String {
    // One line per row: a newline in a description would break the columns.
    let cell = cell.replace(['\n', '\r', '\t'], " ");
    match cell.char_indices().nth(MAX_CELL) {
        Some((at, _)) => format!("{}…", &cell[..at]),
        None => cell,
    }
}
