//! `${alert.source.ip}` placeholders: resolved exactly once against a context document. Owns
//! rendering only. Substituted text is never scanned again, so an alert field that itself
//! contains `${...}` stays literal text: templating is never code.

use serde_json::Value;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated `${{` at byte {0}")]
    Unterminated(usize),
    #[error("empty placeholder at byte {0}")]
    Empty(usize),
    #[error("placeholder `{0}`: root must be one of {ROOTS:?}")]
    UnknownRoot(String),
    #[error("placeholder `{0}`: no such field in this alert")]
    Missing(String),
    #[error("placeholder `{0}`: is an object or list, not a value")]
    NotScalar(String),
}

/// Namespaces a template may read.
pub const ROOTS: &[&str] = &["alert", "incident", "enrichment", "ioc", "vigil"];

/// The placeholder paths in `template`, checked for syntax and root (used by `playbook check`
/// so mistakes surface before an alert arrives).
///
/// # Errors
/// Unterminated or empty placeholders, or an unknown root.
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    scan(template, |piece| {
        if let Piece::Path(p) = piece {
            out.push(p.to_string());
        }
        Ok(())
    })?;
    Ok(out)
}

enum Piece<'a> {
    Text(&'a str),
    Path(&'a str),
}

fn scan<'a>(
    t: &'a str,
    mut f: impl FnMut(Piece<'a>) -> Result<(), TemplateError>,
) -> Result<(), TemplateError> {
    let mut rest = t;
    let mut base = 0usize;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$` is a literal `$`.
            f(Piece::Text(&rest[..=i]))?;
            rest = tail;
            base += i + 2;
            continue;
        }
        if !after.starts_with('{') {
            f(Piece::Text(&rest[..=i]))?;
            rest = after;
            base += i + 1;
            continue;
        }
        f(Piece::Text(&rest[..i]))?;
        let inner = &after[1..];
        let Some(end) = inner.find('}') else {
            return Err(TemplateError::Unterminated(base + i));
        };
        let path = inner[..end].trim();
        if path.is_empty() {
            return Err(TemplateError::Empty(base + i));
        }
        let root = path.split('.').next().unwrap_or("");
        if !ROOTS.contains(&root) {
            return Err(TemplateError::UnknownRoot(path.to_string()));
        }
        f(Piece::Path(path))?;
        let consumed = i + 2 + end + 1;
        rest = &rest[consumed..];
        base += consumed;
    }
    f(Piece::Text(rest))
}

/// Render `template` against `ctx` (an object with `alert`, `incident`, ... keys).
///
/// A template that is exactly one placeholder yields the field's own typed value (a number
/// stays a number); otherwise the result is a string with each placeholder's text inserted.
///
/// # Errors
/// Syntax errors, unknown roots, missing fields, and objects/lists inside text.
pub fn render(template: &str, ctx: &Value) -> Result<Value, TemplateError> {
    let trimmed = template.trim();
    if let Some(inner) = trimmed
        .strip_prefix("${")
        .and_then(|s| s.strip_suffix('}'))
        .filter(|s| !s.contains('}') && !s.contains("${"))
    {
        let path = inner.trim();
        placeholders(trimmed)?;
        return lookup(ctx, path).cloned();
    }
    let mut out = String::with_capacity(template.len());
    scan(template, |piece| {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Path(p) => match lookup(ctx, p)? {
                Value::String(s) => out.push_str(s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                _ => return Err(TemplateError::NotScalar(p.to_string())),
            },
        }
        Ok(())
    })?;
    Ok(Value::String(out))
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Result<&'a Value, TemplateError> {
    super::alert::get_path(ctx, path)
        .filter(|v| !v.is_null())
        .ok_or_else(|| TemplateError::Missing(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"alert": {"source": {"ip": "10.0.0.1", "port": 443},
                         "rule": {"name": "evil ${alert.source.ip} $(rm -rf /)"}}})
    }

    #[test]
    fn whole_placeholder_keeps_type() {
        assert_eq!(render("${alert.source.port}", &ctx()), Ok(json!(443)));
        assert_eq!(render("${alert.source.ip}", &ctx()), Ok(json!("10.0.0.1")));
    }

    #[test]
    fn text_interpolation_is_single_pass() {
        let out = render("rule: ${alert.rule.name}!", &ctx()).expect("renders");
        assert_eq!(out, json!("rule: evil ${alert.source.ip} $(rm -rf /)!"));
    }

    #[test]
    fn dollar_escapes_and_literals() {
        assert_eq!(render("cost $$5 $x", &ctx()), Ok(json!("cost $5 $x")));
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("${alert.nope}", &ctx()),
            Err(TemplateError::Missing("alert.nope".into()))
        );
        assert_eq!(
            render("a ${alert.source", &ctx()),
            Err(TemplateError::Unterminated(2))
        );
        assert_eq!(
            render("${env.HOME}", &ctx()),
            Err(TemplateError::UnknownRoot("env.HOME".into()))
        );
        assert_eq!(
            render("x ${alert.source}", &ctx()),
            Err(TemplateError::NotScalar("alert.source".into()))
        );
    }
}
