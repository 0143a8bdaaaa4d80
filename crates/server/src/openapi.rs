//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of every HTTP
//! endpoint, hand-written in `openapi.json` beside this file. A test reads
//! the router's routes from `lib.rs` and fails when the document and the
//! router disagree, so a new endpoint cannot go undocumented.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Served without a token: it describes the API, it is not the API.
pub async fn handler() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::DOCUMENT;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// The text inside the parentheses that open at the start of `text`'s
    /// call (`text` starts just after the `(`).
    fn inside(text: &str) -> &str {
        let mut depth = 1;
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[..i];
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// The first string literal in `text`.
    fn literal(text: &str) -> Option<&str> {
        let start = text.find('"')? + 1;
        let len = text[start..].find('"')?;
        Some(&text[start..start + len])
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// `(path, method)` for every `.route(...)` in the router's source,
    /// with the prefix of the `.nest(prefix, router)` it is part of.
    fn routes_in(source: &str) -> BTreeSet<(String, String)> {
        let source: String = source
            .lines()
            .map(|line| match line.find("//") {
                Some(i) if !line[..i].contains('"') => &line[..i],
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        // `let name = Router::new() ... ;` spans, by name.
        let mut chains = Vec::new();
        for (start, _) in source.match_indices("let ") {
            let rest = &source[start + 4..];
            let Some((name, _)) = rest.split_once(" = Router::new()") else {
                continue;
            };
            if name.is_empty() || !name.chars().all(is_ident) {
                continue;
            }
            let mut depth = 0i32;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' | '{' => depth += 1,
                        ')' | '}' => depth -= 1,
                        _ => {}
                    }
                    c == ';' && depth == 0
                })
                .map_or(source.len(), |(i, _)| start + 4 + i);
            chains.push((start, end, name.to_owned()));
        }
        let mut prefixes = HashMap::new();
        for (at, _) in source.match_indices(".nest(") {
            let args = inside(&source[at + 6..]);
            if let (Some(prefix), Some((_, name))) = (literal(args), args.rsplit_once(',')) {
                prefixes.insert(name.trim().to_owned(), prefix.to_owned());
            }
        }
        let mut routes = BTreeSet::new();
        for (at, _) in source.match_indices(".route(") {
            let prefix = chains
                .iter()
                .find(|(start, end, _)| *start < at && at < *end)
                .and_then(|(_, _, name)| prefixes.get(name).cloned())
                .unwrap_or_default();
            let args = inside(&source[at + 7..]);
            let path = literal(args).expect("a route path literal");
            for method in METHODS {
                let call = format!("{method}(");
                let found = args
                    .match_indices(&call)
                    .any(|(i, _)| !args[..i].chars().next_back().is_some_and(is_ident));
                if found {
                    routes.insert((format!("{prefix}{path}"), method.to_owned()));
                }
            }
            // `drafting(h)` and `publishing(h)` are `post(h)` behind a role check.
            let wrapped = ["drafting(", "publishing("].iter().any(|call| {
                args.match_indices(call)
                    .any(|(i, _)| !args[..i].chars().next_back().is_some_and(is_ident))
            });
            if wrapped {
                routes.insert((format!("{prefix}{path}"), "post".to_owned()));
            }
        }
        routes
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item.get(method).is_some() {
                    out.insert((path.clone(), method.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_of_the_router_is_documented_and_nothing_else() {
        let routes = routes_in(include_str!("lib.rs"));
        assert!(
            routes.contains(&("/api/v1/posts".to_owned(), "post".to_owned())),
            "the route parser found: {routes:?}"
        );
        assert!(routes.contains(&("/healthz".to_owned(), "get".to_owned())));
        let documented = documented();
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from crates/server/src/openapi.json: {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routes).collect();
        assert!(
            stale.is_empty(),
            "openapi.json documents routes the router does not have: {stale:?}"
        );
    }

    #[test]
    fn the_route_parser_reads_nesting_and_method_chains() {
        let source = r#"
            let api = Router::new()
                .route("/a", post(x::handler).get(y::handler))
                // .route("/commented", get(z))
                .route("/b/{id}", axum::routing::patch(p).layer(Limit::max(3)));
            let feed = Router::new().route("/feed", get(f));
            Router::new().route("/top", get(t)).nest("/v1", api).merge(feed)
        "#;
        let routes: Vec<_> = routes_in(source)
            .into_iter()
            .map(|(p, m)| format!("{m} {p}"))
            .collect();
        assert_eq!(
            routes,
            [
                "get /feed",
                "get /top",
                "get /v1/a",
                "post /v1/a",
                "patch /v1/b/{id}"
            ]
        );
    }
}
