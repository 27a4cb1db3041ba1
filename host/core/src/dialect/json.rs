//! Reading a dialect's request body: typed field access with OpenAI-shaped client errors that
//! name the parameter at fault.

use serde_json::{Map, Value};

use crate::errors::{ErrorKind, GatewayError};

pub type Obj = Map<String, Value>;

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn invalid_type(param: &str, expected: &str, got: &Value) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidType,
        format!("Invalid type for '{param}': expected {expected}, but got {}.", kind_of(got)),
    )
    .with_param(param.to_owned())
}

pub fn missing(param: &str) -> GatewayError {
    GatewayError::new(ErrorKind::MissingParameter, format!("Missing required parameter: '{param}'."))
        .with_param(param.to_owned())
}

pub fn invalid(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidValue, message.into()).with_param(param.to_owned())
}

pub fn unsupported(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::UnsupportedParameter, message.into()).with_param(param.to_owned())
}

/// The body as a JSON object.
pub fn body(bytes: &[u8]) -> Result<Obj, GatewayError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(GatewayError::new(
            ErrorKind::InvalidType,
            format!("The request body must be a JSON object, not {}.", kind_of(&other)),
        )),
        Err(e) => Err(GatewayError::new(
            ErrorKind::InvalidJson,
            format!("We could not parse the JSON body of your request: {e}"),
        )),
    }
}

/// A field that is absent or `null` reads as `None`.
pub fn opt<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub fn opt_str<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a str>, GatewayError> {
    match opt(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid_type(key, "a string", v)),
    }
}

pub fn req_str<'a>(o: &'a Obj, key: &str) -> Result<&'a str, GatewayError> {
    opt_str(o, key)?.ok_or_else(|| missing(key))
}

pub fn opt_bool(o: &Obj, key: &str) -> Result<Option<bool>, GatewayError> {
    match opt(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid_type(key, "a boolean", v)),
    }
}

/// A non-negative integer that fits in `u32`.
pub fn opt_u32(o: &Obj, key: &str) -> Result<Option<u32>, GatewayError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => u32::try_from(n).map(Some).map_err(|_| invalid(key, format!("'{key}' is too large."))),
            None => Err(invalid_type(key, "a non-negative integer", v)),
        },
    }
}

pub fn opt_number<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a Value>, GatewayError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v)),
        Some(v) => Err(invalid_type(key, "a number", v)),
    }
}

pub fn opt_array<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a Vec<Value>>, GatewayError> {
    match opt(o, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(invalid_type(key, "an array", v)),
    }
}

pub fn as_obj<'a>(v: &'a Value, param: &str) -> Result<&'a Obj, GatewayError> {
    v.as_object().ok_or_else(|| invalid_type(param, "an object", v))
}

/// Copy the sampling fields both APIs share under the same name, when present.
pub fn copy_numbers(from: &Obj, to: &mut Obj, keys: &[&str]) -> Result<(), GatewayError> {
    for k in keys {
        if let Some(v) = opt_number(from, k)? {
            to.insert((*k).to_owned(), v.clone());
        }
    }
    Ok(())
}
