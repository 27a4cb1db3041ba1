//! JSON Schema (as OpenAI clients write it for tools and structured output) -> the OpenAPI 3.0
//! subset Gemini's `Schema` accepts.
//!
//! Gemini rejects the whole request on a key it does not know (`additionalProperties`,
//! `$schema`, `$defs`, `strict`, ...), so this keeps only the fields its `Schema` has and
//! rewrites the common JSON Schema idioms it lacks:
//! - `$ref` into `$defs` / `definitions` is inlined (to a bounded depth; recursion beyond it
//!   becomes a plain object);
//! - `type: ["string", "null"]`, `anyOf: [X, {"type": "null"}]` and `null` in `enum` become
//!   `nullable: true`;
//! - `oneOf` is read as `anyOf`; `allOf` is merged; `const` becomes a one-value `enum`;
//! - `enum`s that are not all strings are dropped (Gemini's enums are strings);
//! - `format` is kept only where the Gemini API accepts it (`enum`, `date-time`);
//! - `required` keeps only names of listed properties; an empty `properties` is dropped.

use serde_json::{Map, Value, json};

/// How deep `$ref`s are followed before a schema is cut to `{"type": "object"}`.
const MAX_DEPTH: usize = 24;

/// Schema keys copied as they are.
const PLAIN_KEYS: &[&str] = &[
    "title",
    "description",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "default",
    "minProperties",
    "maxProperties",
    "propertyOrdering",
];

/// Clean a whole schema (its own `$defs` / `definitions` resolve its `$ref`s).
pub fn clean(schema: &Value) -> Value {
    clean_at(schema, schema, 0)
}

/// Whether a cleaned schema is an object without any properties (Gemini refuses those as
/// function parameters: "properties: should be non-empty for OBJECT type").
pub fn is_empty_object(schema: &Value) -> bool {
    let Some(obj) = schema.as_object() else { return true };
    let is_object = obj.get("type").and_then(Value::as_str).is_none_or(|t| t.eq_ignore_ascii_case("object"));
    is_object
        && obj.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty)
        && !obj.contains_key("anyOf")
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn clean_at(node: &Value, root: &Value, depth: usize) -> Value {
    let Some(obj) = node.as_object() else {
        // `true` / `{}`-like schemas: anything goes
        return json!({});
    };
    if depth > MAX_DEPTH {
        return json!({"type": "object"});
    }
    // `$ref`: the target, with the referring node's own keys (description, ...) on top
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let mut merged = match resolve(root, reference).and_then(Value::as_object) {
            Some(target) => target.clone(),
            None => Map::new(),
        };
        for (k, v) in obj {
            if k != "$ref" {
                merged.insert(k.clone(), v.clone());
            }
        }
        return clean_at(&Value::Object(merged), root, depth + 1);
    }
    // `allOf`: merge the parts into this node
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        let mut merged = obj.clone();
        merged.remove("allOf");
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str).and_then(|r| resolve(root, r)) {
                Some(target) => target,
                None => part,
            };
            let Some(part) = part.as_object() else { continue };
            for (k, v) in part {
                match (k.as_str(), merged.get_mut(k)) {
                    ("properties", Some(Value::Object(props))) => {
                        if let Value::Object(more) = v {
                            props.extend(more.iter().map(|(a, b)| (a.clone(), b.clone())));
                        }
                    }
                    ("required", Some(Value::Array(req))) => {
                        if let Value::Array(more) = v {
                            req.extend(more.iter().cloned());
                        }
                    }
                    (_, Some(_)) => {}
                    (_, None) => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        return clean_at(&Value::Object(merged), root, depth + 1);
    }

    let mut out = Map::new();
    let mut nullable = obj.get("nullable").and_then(Value::as_bool).unwrap_or(false);

    // type: a name, or a list of names
    match obj.get("type") {
        Some(Value::String(t)) if t == "null" => nullable = true,
        Some(Value::String(t)) => {
            out.insert("type".to_owned(), Value::String(t.clone()));
        }
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            nullable |= names.contains(&"null");
            let rest: Vec<&str> = names.into_iter().filter(|t| *t != "null").collect();
            match rest.as_slice() {
                [] => {}
                [one] => {
                    out.insert("type".to_owned(), json!(one));
                }
                many => {
                    out.insert("anyOf".to_owned(), many.iter().map(|t| json!({"type": t})).collect());
                }
            }
        }
        _ => {}
    }

    // anyOf / oneOf: null variants become `nullable`; a single variant is merged in
    if let Some(variants) = obj.get("anyOf").or_else(|| obj.get("oneOf")).and_then(Value::as_array) {
        let mut kept = Vec::new();
        for v in variants {
            let is_null =
                v.get("type").and_then(Value::as_str) == Some("null") && v.as_object().is_some_and(|o| o.len() == 1);
            if is_null {
                nullable = true;
            } else {
                kept.push(clean_at(v, root, depth + 1));
            }
        }
        match kept.len() {
            0 => {}
            1 => {
                if let Some(Value::Object(only)) = kept.pop() {
                    for (k, v) in only {
                        if k == "nullable" {
                            nullable |= v.as_bool().unwrap_or(false);
                        } else {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
            }
            _ => {
                out.insert("anyOf".to_owned(), Value::Array(kept));
            }
        }
    }

    // enum / const: strings only
    let enum_values =
        obj.get("enum").and_then(Value::as_array).cloned().or_else(|| obj.get("const").map(|c| vec![c.clone()]));
    if let Some(values) = enum_values {
        if values.iter().any(Value::is_null) {
            nullable = true;
        }
        let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
        if !values.is_empty() && values.iter().all(Value::is_string) {
            out.entry("type".to_owned()).or_insert_with(|| json!("string"));
            out.insert("enum".to_owned(), Value::Array(values));
        }
    }

    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && matches!(format, "enum" | "date-time")
    {
        out.insert("format".to_owned(), json!(format));
    }

    for key in PLAIN_KEYS {
        if let Some(v) = obj.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }

    if let Some(props) = obj.get("properties").and_then(Value::as_object)
        && !props.is_empty()
    {
        let cleaned: Map<String, Value> =
            props.iter().map(|(k, v)| (k.clone(), clean_at(v, root, depth + 1))).collect();
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            let required: Vec<Value> =
                required.iter().filter(|r| r.as_str().is_some_and(|r| cleaned.contains_key(r))).cloned().collect();
            if !required.is_empty() {
                out.insert("required".to_owned(), Value::Array(required));
            }
        }
        out.insert("properties".to_owned(), Value::Object(cleaned));
        out.entry("type".to_owned()).or_insert_with(|| json!("object"));
    }

    match obj.get("items") {
        Some(items @ Value::Object(_)) => {
            out.insert("items".to_owned(), clean_at(items, root, depth + 1));
        }
        // tuple form: the first element's schema is the best single answer
        Some(Value::Array(items)) if !items.is_empty() => {
            out.insert("items".to_owned(), clean_at(&items[0], root, depth + 1));
        }
        _ => {}
    }

    if nullable {
        out.insert("nullable".to_owned(), Value::Bool(true));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_keys_are_stripped_and_names_kept() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "strict": true,
            "properties": {
                "additionalProperties": {"type": "string", "description": "a property with an awkward name"},
                "when": {"type": "string", "format": "date-time"},
                "email": {"type": "string", "format": "email"},
            },
            "required": ["when", "missing"],
        });
        let c = clean(&s);
        assert_eq!(
            c,
            json!({
                "type": "object",
                "required": ["when"],
                "properties": {
                    "additionalProperties": {"type": "string", "description": "a property with an awkward name"},
                    "when": {"type": "string", "format": "date-time"},
                    "email": {"type": "string"},
                },
            })
        );
    }

    #[test]
    fn refs_nullable_and_unions() {
        let s = json!({
            "type": "object",
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}, "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "properties": {
                "unit": {"$ref": "#/$defs/Unit", "description": "temperature unit"},
                "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "opt": {"type": ["string", "null"]},
                "fixed": {"const": "x"},
                "nums": {"type": "integer", "enum": [1, 2]},
                "list": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
                "tree": {"$ref": "#/$defs/Node"},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
            },
        });
        let c = clean(&s);
        let p = &c["properties"];
        assert_eq!(p["unit"], json!({"type": "string", "enum": ["c", "f"], "description": "temperature unit"}));
        assert_eq!(p["maybe"], json!({"type": "integer", "nullable": true}));
        assert_eq!(p["either"], json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}));
        assert_eq!(p["opt"], json!({"type": "string", "nullable": true}));
        assert_eq!(p["fixed"], json!({"type": "string", "enum": ["x"]}));
        assert_eq!(p["nums"], json!({"type": "integer"}));
        assert_eq!(p["list"], json!({"type": "array", "items": {"type": "number"}}));
        assert_eq!(p["both"]["required"], json!(["b"]));
        assert_eq!(p["both"]["properties"].as_object().unwrap().len(), 2);
        // recursion is cut, not followed forever
        let text = c.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
    }

    #[test]
    fn empty_objects_are_recognised() {
        assert!(is_empty_object(&clean(&json!({"type": "object", "properties": {}}))));
        assert!(is_empty_object(&clean(&json!({}))));
        assert!(!is_empty_object(&clean(&json!({"type": "object", "properties": {"a": {"type": "string"}}}))));
    }
}
