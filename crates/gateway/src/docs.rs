//! `/docs`: the OpenAPI document rendered as one plain HTML page.
//!
//! It needs no network and runs no script: routes, parameters, request
//! examples and responses come from the same document `/v1/openapi.yaml`
//! serves, walked as JSON so the page follows the document without code
//! of its own per route.

use serde_json::Value;
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;line-height:1.45;color:#222}code,pre{font-family:ui-monospace,monospace;\
background:#f4f4f4}pre{padding:.6rem;overflow-x:auto}table{border-collapse:collapse;\
margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;\
vertical-align:top}.m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}\
section{border-top:1px solid #ddd;margin-top:1.5rem}";

/// Renders the page.
pub fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    let mut out = String::with_capacity(32 * 1024);
    let title = text(&doc["info"]["title"]);
    let version = text(&doc["info"]["version"]);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} API</title><style>{STYLE}</style></head><body>\n\
         <h1>{t} <small>{v}</small></h1>\n<p>{d}</p>\n\
         <p>Machine-readable: <a href=\"/v1/openapi.yaml\">/v1/openapi.yaml</a>. \
         Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> or \
         <code>x-cohesix-auth: &lt;token&gt;</code>.</p>\n",
        t = esc(&title),
        v = esc(&version),
        d = esc(&text(&doc["info"]["description"])),
    );
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                operation(&mut out, path, method, op);
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn operation(out: &mut String, path: &str, method: &str, op: &Value) {
    let _ = write!(
        out,
        "<section><h2><span class=\"m\">{}</span><code>{}</code></h2>\n<p><b>{}</b></p>\n",
        esc(method),
        esc(path),
        esc(&text(&op["summary"])),
    );
    if let Some(d) = op["description"].as_str() {
        let _ = writeln!(out, "<p>{}</p>", esc(d));
    }
    if let Some(params) = op["parameters"].as_array() {
        out.push_str(
            "<h3>Parameters</h3><table><tr><th>name</th><th>in</th><th>required</th>\
                      <th>type</th><th>example</th><th>description</th></tr>\n",
        );
        for p in params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                esc(&text(&p["name"])),
                esc(&text(&p["in"])),
                p["required"].as_bool().unwrap_or(false),
                esc(&schema_type(&p["schema"])),
                esc(&compact(&p["example"])),
                esc(&text(&p["description"])),
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        for (kind, body) in content {
            let _ = writeln!(out, "<h3>Request body <code>{}</code></h3>", esc(kind));
            example(out, &body["example"]);
        }
    }
    if let Some(responses) = op["responses"].as_object() {
        out.push_str(
            "<h3>Responses</h3><table><tr><th>code</th><th>description</th>\
                      <th>body</th></tr>\n",
        );
        for (code, r) in responses {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>",
                esc(code),
                esc(&text(&r["description"]))
            );
            if let Some(content) = r["content"].as_object() {
                for (kind, body) in content {
                    let shown = body_name(&body["schema"]);
                    let _ = write!(out, "<code>{}</code> {}", esc(kind), esc(&shown));
                    example(out, &body["example"]);
                }
            }
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn example(out: &mut String, value: &Value) {
    if value.is_null() {
        return;
    }
    let shown = serde_json::to_string_pretty(value).unwrap_or_default();
    let _ = writeln!(out, "<pre>{}</pre>", esc(&shown));
}

/// `FsResponse` for a `$ref`, the type name otherwise.
fn body_name(schema: &Value) -> String {
    match schema["$ref"].as_str() {
        Some(r) => r.rsplit('/').next().unwrap_or(r).to_string(),
        None => schema_type(schema),
    }
}

fn schema_type(schema: &Value) -> String {
    match &schema["type"] {
        Value::String(s) => s.clone(),
        Value::Array(types) => types.iter().map(text).collect::<Vec<_>>().join(" | "),
        _ => String::new(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn page_lists_every_route_with_its_parameters() {
        let page = render(&crate::openapi::document());
        for route in [
            "/v1/fs/ls",
            "/v1/fs/cat",
            "/v1/fs/tail",
            "/v1/fs/echo",
            "/v1/meta/bounds",
            "/v1/meta/status",
            "/metrics",
            "/v1/openapi.yaml",
            "/docs",
        ] {
            assert!(page.contains(&format!("<code>{route}</code>")), "{route}");
        }
        assert!(page.contains("<code>max_bytes</code>"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
