//! Ingress paths in nginx's terms translated to HTTPRoute matches and rewrites.
//!
//! ingress-nginx writes a path of an Ingress with `use-regex: "true"` or a `rewrite-target` as
//! `location ~* "^<path>"`: a case-insensitive PCRE anchored only at the start (a prefix), and
//! `rewrite-target` as `rewrite "(?i)<path>" <target> break;`, which replaces the WHOLE request
//! path (not only the matched part) with the target, `$N` being the capture groups of the path.
//! Gateway API has no capture groups: a rewrite is carried over only where `ReplaceFullPath` or
//! `ReplacePrefixMatch` gives the same path, else it is refused with the reason. No output ever
//! holds a `$N`.

/// How a rule matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathMatch {
    /// `Exact`.
    Exact(String),
    /// `PathPrefix` (whole path segments).
    Prefix(String),
    /// `RegularExpression` (Cilium hands it to Envoy as an RE2 full match).
    Regex(String),
}

/// How a rule rewrites the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathRewrite {
    /// `ReplaceFullPath`.
    Full(String),
    /// `ReplacePrefixMatch` (only with a `PathPrefix` match).
    Prefix(String),
}

/// A translated path: the match, the rewrite and what differs from nginx (for a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translated {
    pub(crate) matched: PathMatch,
    pub(crate) rewrite: Option<PathRewrite>,
    pub(crate) notes: Vec<String>,
}

/// Characters that make a path a regular expression rather than a literal (`.` is left out:
/// `/v1.0` as a literal matches a subset of what nginx's regex matches, and says so in a note).
const META: &[char] = &[
    '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\',
];

/// Whether `text` holds `$` followed by a digit (a capture-group reference).
pub(crate) fn has_capture_ref(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

fn is_literal(path: &str) -> bool {
    !path.contains(META)
}

/// The RE2 full-match equivalent of nginx's `~* "^<path>"`: case-insensitive, a prefix.
pub(crate) fn regex_match(path: &str) -> Result<PathMatch, String> {
    if has_capture_ref(path) {
        return Err(format!(
            "the path {path:?} holds a `$N` reference; it is not a valid match"
        ));
    }
    let body = path.strip_prefix('^').unwrap_or(path);
    if is_literal(body) {
        Ok(PathMatch::Regex(format!("(?i){body}.*")))
    } else {
        Ok(PathMatch::Regex(format!("(?i)(?:{body}).*")))
    }
}

/// The note every regex-mode path carries: what nginx did and how the match says it.
pub(crate) fn regex_note(path: &str) -> String {
    format!(
        "nginx matched {path:?} as a case-insensitive regular expression anchored at the start only (a prefix, `location ~* \"^{path}\"`, PCRE); the RegularExpression match says the same for Envoy's RE2 (`(?i)` and a trailing `.*`): check PCRE-only syntax (lookarounds, backreferences)"
    )
}

/// `path` of an Ingress with `rewrite-target: <target>`.
pub(crate) fn rewrite(path: &str, target: &str) -> Result<Translated, String> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Err(format!(
            "the target {target:?} is a URL: nginx answers it with a 302 redirect, not a rewrite; use temporal-redirect (or an HTTPRoute RequestRedirect) instead. The rule is kept without it"
        ));
    }
    if target.contains('$') && !has_capture_ref(target) {
        return Err(format!(
            "the target {target:?} uses an nginx variable; Gateway API cannot express it"
        ));
    }
    if !has_capture_ref(target) {
        // nginx replaces the whole path when the regex matches: ReplaceFullPath, on the same
        // (regex) match.
        return Ok(Translated {
            matched: regex_match(path)?,
            rewrite: Some(PathRewrite::Full(target.to_owned())),
            notes: vec![regex_note(path)],
        });
    }
    let refused = |why: &str| {
        Err(format!(
            "the path {path:?} rewritten to {target:?} has no Gateway API equivalent ({why}); the rule is kept without the rewrite, so the backend sees the original path: rewrite in the application, or split the path into PathPrefix rules by hand"
        ))
    };
    let body = path.strip_prefix('^').unwrap_or(path);
    // The shapes whose last group captures "the rest of the path" after a literal prefix.
    let shapes: [(&str, &str, bool); 3] = [
        // `/app(/|$)(.*)` → `…$2`: the prefix as whole segments, the rest after it.
        ("(/|$)(.*)", "$2", true),
        // `/app(/.*)` → `…$1`: the rest including its leading slash.
        ("(/.*)", "$1", false),
        // `/app/(.*)` → `…$1`: the rest after the slash (the bare `/app` did not match).
        ("/(.*)", "$1", true),
    ];
    for (suffix, reference, slash_in_target) in shapes {
        let Some(prefix) = body.strip_suffix(suffix) else {
            continue;
        };
        if !is_literal(prefix) {
            return refused("the part before the captured rest is itself a regular expression");
        }
        let Some(replacement) = target.strip_suffix(reference) else {
            return refused("the target does not end with the group that captures the rest");
        };
        if has_capture_ref(replacement) {
            return refused("the target uses more than the group that captures the rest");
        }
        let replacement = if slash_in_target {
            // `…/$2`: the slash belongs to the target.
            let Some(stem) = replacement.strip_suffix('/') else {
                return refused("the target joins the rest without a slash");
            };
            stem
        } else {
            replacement
        };
        if !replacement.is_empty() && !replacement.starts_with('/') {
            return refused("the target is not an absolute path");
        }
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        let replace = if replacement.is_empty() {
            "/"
        } else {
            replacement
        };
        let mut notes = vec![format!(
            "nginx matched {path:?} case-insensitively; PathPrefix {prefix:?} is case-sensitive"
        )];
        if suffix != "(/|$)(.*)" {
            notes.push(format!(
                "nginx did not match the bare {prefix:?} (it needs the slash); PathPrefix {prefix:?} matches it and rewrites it to {replace:?}"
            ));
        }
        if suffix == "(/|$)(.*)" && replace != "/" {
            notes.push(format!(
                "the bare {prefix:?} becomes {replace:?}, where nginx gave {:?}",
                format!("{replace}/")
            ));
        }
        if prefix.contains('.') {
            notes.push(format!(
                "`.` in {prefix:?} matched any character in nginx; PathPrefix matches it literally"
            ));
        }
        return Ok(Translated {
            matched: PathMatch::Prefix(prefix.to_owned()),
            rewrite: Some(PathRewrite::Prefix(replace.to_owned())),
            notes,
        });
    }
    refused("capture groups other than a literal prefix followed by the rest of the path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_capture_rewrite_becomes_replace_prefix_match() {
        // ingress-nginx's rewrite example: `/something(/|$)(.*)` → `/$2`.
        let t = rewrite("/something(/|$)(.*)", "/$2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.matched, PathMatch::Prefix("/something".to_owned()));
        assert_eq!(t.rewrite, Some(PathRewrite::Prefix("/".to_owned())));
    }

    #[test]
    fn rewrite_without_groups_replaces_the_whole_path() {
        let t = rewrite("/legacy", "/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.matched, PathMatch::Regex("(?i)/legacy.*".to_owned()));
        assert_eq!(t.rewrite, Some(PathRewrite::Full("/".to_owned())));
    }

    #[test]
    fn the_rest_with_its_slash_keeps_it() {
        // `/app(/.*)` → `/new$1`: /app/x → /new/x.
        let t = rewrite("/app(/.*)", "/new$1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.matched, PathMatch::Prefix("/app".to_owned()));
        assert_eq!(t.rewrite, Some(PathRewrite::Prefix("/new".to_owned())));
        // `/api/(.*)` → `/$1`: /api/x → /x.
        let t = rewrite("/api/(.*)", "/$1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.rewrite, Some(PathRewrite::Prefix("/".to_owned())));
    }

    #[test]
    fn a_prefix_that_is_not_segment_bounded_is_refused() {
        // `/api(.*)` also matched /apifoo in nginx: PathPrefix cannot say that.
        assert!(rewrite("/api(.*)", "/$1").is_err());
        assert!(rewrite("/a[0-9](/|$)(.*)", "/$2").is_err());
    }

    #[test]
    fn regex_paths_are_case_insensitive_prefixes() {
        assert_eq!(
            regex_match("/img/[a-z]+"),
            Ok(PathMatch::Regex("(?i)(?:/img/[a-z]+).*".to_owned()))
        );
        assert_eq!(
            regex_match("^/docs"),
            Ok(PathMatch::Regex("(?i)/docs.*".to_owned()))
        );
        assert!(regex_match("/a$1").is_err());
    }

    #[test]
    fn groups_in_the_middle_are_refused() {
        assert!(rewrite("/user/(\\d+)/profile", "/profile?id=$1").is_err());
        assert!(rewrite("/a(/|$)(.*)", "/$1/$2").is_err());
        assert!(rewrite("/a", "$request_uri").is_err());
    }
}
