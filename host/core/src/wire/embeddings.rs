//! The OpenAI embeddings API (`POST /v1/embeddings`): the request body (`model`, `input`,
//! `encoding_format`, `dimensions`), bounded and validated, and the response the gateway renders
//! from the vectors an upstream returned: floats, or base64 of the little-endian `f32` bytes (how
//! OpenAI encodes them, and what its SDKs decode by default).

use base64::Engine as _;
use serde_json::{Map, Value};

use super::shape::ShapeLimits;
use crate::errors::{ErrorKind, GatewayError};

/// The most inputs one request may embed (OpenAI's own bound).
pub const MAX_INPUTS: usize = 2048;

/// How the client wants its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
}

/// A validated embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsBody {
    pub model: String,
    /// the texts, in order (at least one, none empty)
    pub input: Vec<String>,
    pub encoding: Encoding,
    /// the output dimensions asked for
    pub dimensions: Option<u32>,
}

fn invalid(param: &str, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidValue, message).with_param(param.to_owned())
}

fn wrong_type(param: &str, expected: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidType, format!("Invalid type for '{param}': expected {expected}."))
        .with_param(param.to_owned())
}

impl EmbeddingsBody {
    /// Parse and validate a request body; every failure is a client error naming the parameter.
    pub fn parse_with(bytes: &[u8], limits: &ShapeLimits) -> Result<Self, GatewayError> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(GatewayError::new(ErrorKind::InvalidJson, "The request body must be a JSON object."));
        }
        super::shape::check(bytes, limits)?;
        let body: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| {
            GatewayError::new(
                ErrorKind::InvalidJson,
                format!("We could not parse the JSON body of your request ({e}). Expected a JSON object."),
            )
        })?;
        let model = match body.get("model") {
            None => {
                return Err(GatewayError::new(
                    ErrorKind::MissingParameter,
                    "You must provide a model parameter.".to_owned(),
                )
                .with_param("model"));
            }
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(Value::String(_)) => {
                return Err(invalid("model", "Invalid value for 'model': it must not be empty.".into()));
            }
            Some(_) => return Err(wrong_type("model", "a string")),
        };
        let input = match body.get("input") {
            None => {
                return Err(GatewayError::new(
                    ErrorKind::MissingParameter,
                    "Missing required parameter: 'input'.".to_owned(),
                )
                .with_param("input"));
            }
            Some(v) => inputs(v)?,
        };
        let encoding = match body.get("encoding_format") {
            None | Some(Value::Null) => Encoding::Float,
            Some(Value::String(s)) if s == "float" => Encoding::Float,
            Some(Value::String(s)) if s == "base64" => Encoding::Base64,
            Some(Value::String(s)) => {
                return Err(invalid(
                    "encoding_format",
                    format!("Invalid value for 'encoding_format': '{s}'; supported values are 'float' and 'base64'."),
                ));
            }
            Some(_) => return Err(wrong_type("encoding_format", "a string")),
        };
        let dimensions = match body.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(invalid(
                        "dimensions",
                        "Invalid value for 'dimensions': expected a positive integer.".into(),
                    ));
                }
            },
        };
        Ok(Self { model, input, encoding, dimensions })
    }
}

/// `input`: a string or an array of strings. Token arrays are refused (no free upstream takes
/// them), as are empty inputs and batches beyond [`MAX_INPUTS`].
fn inputs(v: &Value) -> Result<Vec<String>, GatewayError> {
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            if items.len() > MAX_INPUTS {
                return Err(invalid(
                    "input",
                    format!("Invalid 'input': at most {MAX_INPUTS} inputs per request, got {}.", items.len()),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(invalid(
                            "input",
                            "Invalid 'input': token arrays are not supported by this gateway's embedding providers; send the text."
                                .into(),
                        ));
                    }
                    _ => return Err(wrong_type(&format!("input[{i}]"), "a string")),
                }
            }
            out
        }
        _ => return Err(wrong_type("input", "a string or an array of strings")),
    };
    if list.is_empty() {
        return Err(invalid("input", "Invalid 'input': it must not be empty.".into()));
    }
    if let Some(i) = list.iter().position(|s| s.is_empty()) {
        return Err(invalid("input", format!("Invalid 'input': input[{i}] is an empty string.")));
    }
    Ok(list)
}

/// One vector as base64 of its little-endian `f32` bytes.
pub fn base64_of(vector: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for x in vector {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The OpenAI `list` of embeddings, in input order.
pub fn render(model: &str, vectors: &[Vec<f32>], encoding: Encoding, prompt_tokens: u64) -> Vec<u8> {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match encoding {
                Encoding::Float => Value::from(v.iter().map(|x| Value::from(f64::from(*x))).collect::<Vec<_>>()),
                Encoding::Base64 => Value::from(base64_of(v)),
            };
            serde_json::json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Read an OpenAI embeddings response: the vectors in `index` order (float or base64 entries)
/// and the prompt tokens it counted. `None` when it is not that shape.
pub fn read_openai(body: &[u8]) -> Option<(Vec<Vec<f32>>, Option<u64>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    let mut out: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let vector = match item.get("embedding")? {
            Value::Array(xs) => {
                // f32 vectors: the narrowing is the format's own precision
                #[expect(clippy::cast_possible_truncation)]
                let v: Option<Vec<f32>> = xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
                v?
            }
            Value::String(s) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
                if bytes.len() % 4 != 0 {
                    return None;
                }
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            _ => return None,
        };
        out.push((index, vector));
    }
    out.sort_by_key(|(i, _)| *i);
    let tokens = v.get("usage").and_then(|u| u.get("prompt_tokens")).and_then(Value::as_u64);
    Some((out.into_iter().map(|(_, v)| v).collect(), tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<EmbeddingsBody, GatewayError> {
        EmbeddingsBody::parse_with(s.as_bytes(), &ShapeLimits::default())
    }

    #[test]
    fn a_string_or_a_list_of_strings_is_accepted_in_order() {
        let b = parse(r#"{"model":"m","input":"hello"}"#).unwrap();
        assert_eq!((b.input, b.encoding, b.dimensions), (vec!["hello".to_owned()], Encoding::Float, None));
        let b = parse(r#"{"model":"m","input":["a","b","c"],"encoding_format":"base64","dimensions":8}"#).unwrap();
        assert_eq!((b.input.join(","), b.encoding, b.dimensions), ("a,b,c".to_owned(), Encoding::Base64, Some(8)));
    }

    #[test]
    fn bad_inputs_are_client_errors_naming_the_parameter() {
        for (body, param) in [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"m"}"#, "input"),
            (r#"{"model":"m","input":[]}"#, "input"),
            (r#"{"model":"m","input":""}"#, "input"),
            (r#"{"model":"m","input":[[1,2,3]]}"#, "input"),
            (r#"{"model":"m","input":[1,2,3]}"#, "input"),
            (r#"{"model":"m","input":{"a":1}}"#, "input"),
            (r#"{"model":"m","input":"x","encoding_format":"int8"}"#, "encoding_format"),
            (r#"{"model":"m","input":"x","dimensions":0}"#, "dimensions"),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.blame(), crate::errors::Blame::Client, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
        let many = format!(r#"{{"model":"m","input":[{}]}}"#, vec![r#""x""#; MAX_INPUTS + 1].join(","));
        assert_eq!(parse(&many).unwrap_err().param.as_deref(), Some("input"));
    }

    #[test]
    fn base64_is_the_little_endian_f32_bytes_and_reads_back() {
        let v = vec![0.5f32, -1.25, 3.0e-3];
        let body = render("m", std::slice::from_ref(&v), Encoding::Base64, 7);
        let (read, tokens) = read_openai(&body).unwrap();
        assert_eq!((read, tokens), (vec![v.clone()], Some(7)));
        assert_eq!(base64_of(&[1.0]), "AACAPw==");
        let floats = render("m", std::slice::from_ref(&v), Encoding::Float, 7);
        assert_eq!(read_openai(&floats).unwrap().0, vec![v]);
    }

    #[test]
    fn openai_bodies_are_read_in_index_order() {
        let body =
            br#"{"data":[{"index":1,"embedding":[2.0]},{"index":0,"embedding":[1.0]}],"usage":{"prompt_tokens":3}}"#;
        assert_eq!(read_openai(body).unwrap(), (vec![vec![1.0], vec![2.0]], Some(3)));
        assert!(read_openai(br#"{"data":[{"index":0}]}"#).is_none());
    }
}
