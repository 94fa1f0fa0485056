//! `/metrics` of the aggregator: every target's Prometheus text, each series labelled with
//! `name="<target name>"` (replacing a `name` label the target gave itself, such as
//! `ffwrapper_info{name=…}`), `# HELP`/`# TYPE` once per family and the samples of a family kept
//! together (the text format requires it), plus `ffwrapper_target_up{name}`.
//!
//! Pure text work on the texts the pollers cached, so an answer never waits for a target.

use std::collections::HashMap;

/// One target's part of the answer.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The `name` label value.
    pub name: &'a str,
    /// It answered its last poll.
    pub up: bool,
    /// Its `/metrics` text, when it has one.
    pub text: Option<&'a str>,
}

/// One metric family as it is gathered.
#[derive(Debug, Default)]
struct Family {
    /// Its `# HELP` line (the first one seen).
    help: Option<String>,
    /// Its `# TYPE` line (the first one seen).
    kind: Option<String>,
    /// Its samples, relabelled, from every target.
    samples: Vec<String>,
}

/// The whole answer.
pub fn render(sources: &[Source<'_>]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: HashMap<String, Family> = HashMap::new();
    for s in sources {
        let Some(text) = s.text.filter(|_| s.up) else {
            continue;
        };
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or(line.strip_prefix("# TYPE "))
            {
                let fam = rest.split_whitespace().next().unwrap_or_default();
                if fam.is_empty() {
                    continue;
                }
                let key = fam.to_string();
                let f = family(&mut families, &mut order, &key);
                let slot = if line.starts_with("# HELP ") {
                    &mut f.help
                } else {
                    &mut f.kind
                };
                slot.get_or_insert_with(|| line.to_string());
                current = Some(key);
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((metric, sample)) = relabel(line, s.name) else {
                continue;
            };
            // A histogram's `_bucket`/`_sum`/`_count` belong to the family above them.
            let fam = match &current {
                Some(c) if metric.starts_with(c.as_str()) => c.clone(),
                _ => metric,
            };
            family(&mut families, &mut order, &fam).samples.push(sample);
        }
    }
    let mut out = String::new();
    for fam in &order {
        let Some(f) = families.get(fam) else { continue };
        if f.samples.is_empty() {
            continue;
        }
        for l in f.help.iter().chain(&f.kind) {
            out.push_str(l);
            out.push('\n');
        }
        for l in &f.samples {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str("# HELP ffwrapper_target_up 1 when the target answered its last poll, else 0\n");
    out.push_str("# TYPE ffwrapper_target_up gauge\n");
    for s in sources {
        out.push_str(&format!(
            "ffwrapper_target_up{{name=\"{}\"}} {}\n",
            escape(s.name),
            u8::from(s.up)
        ));
    }
    out
}

/// The family `fam`, made (and put in order) when new.
fn family<'m>(
    families: &'m mut HashMap<String, Family>,
    order: &mut Vec<String>,
    fam: &str,
) -> &'m mut Family {
    if !families.contains_key(fam) {
        order.push(fam.to_string());
    }
    families.entry(fam.to_string()).or_default()
}

/// A label value escaped for the text format.
pub fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One sample line with `name="…"` first and any `name` label of its own dropped; returns the
/// metric name too. `None` for a line that does not parse.
pub fn relabel(line: &str, name: &str) -> Option<(String, String)> {
    let end = line.find(['{', ' ', '\t'])?;
    let metric = &line[..end];
    if metric.is_empty() {
        return None;
    }
    let (labels, rest) = if line[end..].starts_with('{') {
        let close = closing_brace(&line[end..])? + end;
        (split_labels(&line[end + 1..close])?, &line[close + 1..])
    } else {
        (Vec::new(), &line[end..])
    };
    let mut parts = vec![format!("name=\"{}\"", escape(name))];
    parts.extend(
        labels
            .into_iter()
            .filter(|l| l.split('=').next().map(str::trim) != Some("name")),
    );
    Some((
        metric.to_string(),
        format!("{metric}{{{}}} {}", parts.join(","), rest.trim()),
    ))
}

/// The position of the `}` that closes the label set starting at `s[0] == '{'`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `a="x",b="y, z"` into its `key="value"` parts (commas inside quotes kept).
fn split_labels(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if in_quotes {
        return None;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "# HELP ffwrapper_fps Current fps\n# TYPE ffwrapper_fps gauge\nffwrapper_fps 25\n\
# HELP ffwrapper_health Health\n# TYPE ffwrapper_health gauge\nffwrapper_health{state=\"ok\"} 1\n\
ffwrapper_health{state=\"failing, badly\"} 0\n\
# TYPE ffwrapper_info gauge\nffwrapper_info{name=\"cam1\",version=\"0.1.0\"} 1\n";

    #[test]
    fn labels_every_series_and_groups_families() {
        let out = render(&[
            Source {
                name: "cam1",
                up: true,
                text: Some(A),
            },
            Source {
                name: "cam\"2",
                up: true,
                text: Some(A),
            },
            Source {
                name: "cam3",
                up: false,
                text: None,
            },
        ]);
        assert_eq!(
            out.matches("# TYPE ffwrapper_fps gauge").count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("ffwrapper_fps{name=\"cam1\"} 25\nffwrapper_fps{name=\"cam\\\"2\"} 25\n")
        );
        assert!(out.contains("ffwrapper_health{name=\"cam1\",state=\"failing, badly\"} 0"));
        assert!(
            out.contains("ffwrapper_info{name=\"cam1\",version=\"0.1.0\"} 1"),
            "{out}"
        );
        assert!(!out.contains("name=\"cam1\",name"));
        assert!(out.contains("ffwrapper_target_up{name=\"cam3\"} 0"));
        assert!(out.contains("ffwrapper_target_up{name=\"cam1\"} 1"));
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.contains("{name=\""), "{l}");
        }
    }

    #[test]
    fn odd_lines_are_skipped_not_fatal() {
        assert_eq!(relabel("{x} 1", "a"), None);
        assert_eq!(relabel("m{a=\"unclosed} 1", "a"), None);
        assert_eq!(
            relabel("m 1 1700000000000", "a").unwrap().1,
            "m{name=\"a\"} 1 1700000000000"
        );
    }
}
