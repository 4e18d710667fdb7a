//! Checking a document against an official JSON Schema (draft-07 or 2020-12, as the schema's
//! `$schema` says), with every violation reported as a field error at its JSON pointer.

use serde_json::Value;

use crate::error::{FieldError, RegistryError};

/// At most this many violations are listed; a document breaking more rules is far off anyway.
const MAX_REPORTED: usize = 50;

/// A compiled schema. Compile once (schemas are embedded in the binary) and share.
pub struct Schema {
    name: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("name", &self.name).finish()
    }
}

impl Schema {
    /// Compiles a whole schema document. `name` says which schema a violation is against.
    pub fn compile(name: &str, schema: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(schema).map_err(|e| format!("schema {name} is not JSON: {e}"))?;
        let validator =
            jsonschema::validator_for(&schema).map_err(|e| format!("schema {name} does not compile: {e}"))?;
        Ok(Self { name: name.to_owned(), validator })
    }

    /// Compiles one definition of a schema document (e.g. `#/definitions/AgentCard`), keeping the
    /// document's other definitions reachable.
    pub fn compile_definition(name: &str, schema: &str, pointer: &str) -> Result<Self, String> {
        let full: Value = serde_json::from_str(schema).map_err(|e| format!("schema {name} is not JSON: {e}"))?;
        let mut root = serde_json::Map::new();
        for key in ["$schema", "$id", "definitions", "$defs"] {
            if let Some(v) = full.get(key) {
                root.insert(key.to_owned(), v.clone());
            }
        }
        root.insert("$ref".to_owned(), Value::String(pointer.to_owned()));
        let validator = jsonschema::validator_for(&Value::Object(root))
            .map_err(|e| format!("schema {name} does not compile: {e}"))?;
        Ok(Self { name: name.to_owned(), validator })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every violation, each at the pointer of the offending value (under `base`, the
    /// document's own pointer in the request, e.g. `/card`).
    pub fn violations(&self, document: &Value, base: &str) -> Vec<FieldError> {
        self.validator
            .iter_errors(document)
            .take(MAX_REPORTED)
            .map(|e| FieldError::new(format!("{base}{}", e.instance_path()), format!("{e} ({})", self.name)))
            .collect()
    }

    /// Fails with `schema_violation` (422) listing every violation.
    pub fn check(&self, document: &Value, base: &str) -> Result<(), RegistryError> {
        let errors = self.violations(document, base);
        if errors.is_empty() { Ok(()) } else { Err(RegistryError::SchemaViolation(errors)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_located_by_pointer() {
        let schema = Schema::compile(
            "test",
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["name"],
                "properties":{"tags":{"type":"array","items":{"type":"string"}}}}"#,
        )
        .unwrap();
        let errors = schema.violations(&serde_json::json!({"tags": ["a", 3]}), "/card");
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/card"), "{errors:?}");
        assert!(pointers.contains(&"/card/tags/1"), "{errors:?}");
        assert!(schema.check(&serde_json::json!({"name": "x"}), "").is_ok());
    }
}
