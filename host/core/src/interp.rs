//! `${ENV_VAR}` interpolation: `${NAME}` is replaced by the variable's value; `${NAME:-fallback}`
//! uses the fallback when the variable is unset or empty; `$$` is a literal `$`. An unset variable
//! without a fallback is an error that names it.

/// Expand `${VAR}` references with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unclosed `${{` in \"{input}\""))?;
            let expr = &body[..end];
            let (name, fallback) = match expr.split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid environment variable reference"));
            }
            match (lookup(name).filter(|v| !v.is_empty()), fallback) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(f)) => out.push_str(f),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_fallbacks() {
        assert_eq!(expand("Bearer ${KEY}", env).unwrap(), "Bearer sk-123");
        assert_eq!(expand("${MISSING:-dflt}/x", env).unwrap(), "dflt/x");
        assert_eq!(expand("${EMPTY:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand("cost $$5 and $x", env).unwrap(), "cost $5 and $x");
        assert_eq!(expand("plain", env).unwrap(), "plain");
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand("${NOPE}", env).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${unclosed", env).is_err());
        assert!(expand("${bad name}", env).is_err());
    }
}
