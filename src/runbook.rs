//! The operations documents built into the binary: the runbook (`docs/RUNBOOK.md`), served as
//! HTML at `/runbook` ([`crate::http::runbook`]) with GitHub-style heading ids, and the
//! Prometheus alert rules (`config/prometheus/routewatch-alerts.yml`), printed by `routewatch
//! alert-rules` with each alert's `runbook_url` on the operator's base URL.

use std::collections::HashMap;
use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// `docs/RUNBOOK.md` as built.
pub const RUNBOOK_MARKDOWN: &str = include_str!("../docs/RUNBOOK.md");

/// `config/prometheus/routewatch-alerts.yml` as built.
pub const ALERT_RULES: &str = include_str!("../config/prometheus/routewatch-alerts.yml");

/// The `runbook_url` base of the shipped rules: the runbook the alerting routewatch serves
/// (`instance` is its scrape target, i.e. its HTTP listener).
pub const DEFAULT_RUNBOOK_BASE: &str = "http://{{ $labels.instance }}/runbook";

/// The anchor GitHub gives a heading: lower case; letters, digits, `-` and `_` kept, spaces
/// become `-`, everything else dropped ("RoutewatchPrefixHijack" -> "routewatchprefixhijack",
/// "Installing the rules and the dashboard" -> "installing-the-rules-and-the-dashboard").
pub fn github_anchor(heading: &str) -> String {
    heading
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The runbook page: the Markdown rendered to one self-contained HTML document (no external
/// assets), each heading with its GitHub-style id (a repeated one gets `-1`, `-2`, ... as on
/// GitHub). Rendered once.
pub fn runbook_html() -> &'static str {
    static HTML: LazyLock<String> = LazyLock::new(|| render_page(RUNBOOK_MARKDOWN));
    HTML.as_str()
}

fn render_page(markdown: &str) -> String {
    let mut events: Vec<Event<'_>> = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { .. }) = events[i] {
            let mut text = String::new();
            for e in &events[i + 1..] {
                match e {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => text.push_str(t),
                    _ => {}
                }
            }
            let base = github_anchor(&text);
            let n = seen.entry(base.clone()).or_insert(0);
            let anchor = if *n == 0 { base } else { format!("{base}-{n}") };
            *n += 1;
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(anchor));
            }
        }
        i += 1;
    }
    let mut body = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut body, events.into_iter());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>routewatch runbook</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <p class=\"build\">routewatch {}</p>\n{body}</body>\n</html>\n",
        crate::build_info::LONG_VERSION
    )
}

const STYLE: &str = "body { max-width: 60rem; margin: 2rem auto; padding: 0 1rem; \
font-family: sans-serif; line-height: 1.5; }\n\
pre { background: #f4f4f4; padding: 0.75rem; overflow-x: auto; }\n\
code { font-size: 0.95em; }\n\
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }\n\
h3:target { background: #fff3c4; }\n\
.build { color: #666; font-size: 0.85em; }\n";

/// The alert rules with every `runbook_url` on `base` (`None`: as shipped, the runbook each
/// routewatch serves at `/runbook`): `runbook_url: "<base>#<anchor>"`. `base` must fit a YAML
/// double-quoted string as it is (the CLI checks it).
pub fn alert_rules(base: Option<&str>) -> String {
    let Some(base) = base else {
        return ALERT_RULES.to_string();
    };
    let mut out = String::with_capacity(ALERT_RULES.len() + 4096);
    for line in ALERT_RULES.split_inclusive('\n') {
        match runbook_url_parts(line) {
            Some((head, _, anchor_and_rest)) => {
                out.push_str(head);
                out.push_str(base);
                out.push_str(anchor_and_rest);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A `runbook_url: "<base>#<anchor>"` line split into (everything up to the opening quote,
/// base, `#<anchor>"` and the rest).
fn runbook_url_parts(line: &str) -> Option<(&str, &str, &str)> {
    const KEY: &str = "runbook_url: \"";
    let start = line.find(KEY)? + KEY.len();
    let hash = start + line[start..].rfind('#')?;
    Some((&line[..start], &line[start..hash], &line[hash..]))
}

/// Every alert's (name, `runbook_url` anchor) in the shipped rules, in order.
pub fn alert_anchors() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in ALERT_RULES.lines() {
        if let Some(n) = line.trim().strip_prefix("- alert:") {
            name = Some(n.trim().to_string());
        } else if let Some((_, _, rest)) = runbook_url_parts(line) {
            if let Some(n) = name.take() {
                let anchor = rest.trim_end().trim_end_matches('"');
                out.push((n, anchor.trim_start_matches('#').to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_the_ones_github_gives() {
        assert_eq!(
            github_anchor("RoutewatchPrefixHijack"),
            "routewatchprefixhijack"
        );
        assert_eq!(
            github_anchor("Installing the rules and the dashboard"),
            "installing-the-rules-and-the-dashboard"
        );
        assert_eq!(github_anchor("What's `new` (v0.1)?"), "whats-new-v01");
    }

    #[test]
    fn repeated_headings_get_numbered_ids_and_text_is_escaped() {
        let html = render_page("# A b\n\n## A b\n\ntext <&>\n\n## `code` here\n");
        assert!(html.contains("<h1 id=\"a-b\">A b</h1>"), "{html}");
        assert!(html.contains("<h2 id=\"a-b-1\">A b</h2>"), "{html}");
        assert!(
            html.contains("<h2 id=\"code-here\"><code>code</code> here</h2>"),
            "{html}"
        );
    }

    #[test]
    fn every_alert_has_a_runbook_url_whose_anchor_is_a_heading_of_the_page() {
        let anchors = alert_anchors();
        let alerts = ALERT_RULES.matches("- alert:").count();
        assert_eq!(anchors.len(), alerts, "{anchors:?}");
        let html = runbook_html();
        for (name, anchor) in &anchors {
            assert_eq!(anchor, &name.to_lowercase());
            assert!(
                html.contains(&format!("<h3 id=\"{anchor}\">{name}</h3>")),
                "{name}: no heading with id {anchor}"
            );
        }
    }

    #[test]
    fn alert_rules_put_every_runbook_url_on_the_given_base() {
        assert_eq!(alert_rules(None), ALERT_RULES);
        // As shipped: the alerting routewatch's own /runbook (RoutewatchTargetMissing, which
        // has no instance label, names the default listener instead).
        for line in ALERT_RULES
            .lines()
            .filter(|l| l.contains("runbook_url: \""))
        {
            let (_, base, _) = runbook_url_parts(line).unwrap();
            assert!(
                base == DEFAULT_RUNBOOK_BASE
                    || base == r#"http://{{ or $labels.instance \"127.0.0.1:9179\" }}/runbook"#,
                "{line}"
            );
        }
        let base = "https://wiki.example.net/ops/routewatch";
        let text = alert_rules(Some(base));
        let urls: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("runbook_url: \""))
            .collect();
        assert_eq!(urls.len(), alert_anchors().len());
        for (line, (_, anchor)) in urls.iter().zip(alert_anchors()) {
            assert_eq!(
                line.trim(),
                format!("runbook_url: \"{base}#{anchor}\""),
                "{line}"
            );
        }
        // Nothing else changed.
        let strip = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.contains("runbook_url: \""))
                .map(String::from)
                .collect()
        };
        assert_eq!(strip(&text), strip(ALERT_RULES));
    }
}
