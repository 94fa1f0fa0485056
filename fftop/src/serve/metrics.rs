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

/// One metric family as it is gathered, borrowing from the targets' texts.
#[derive(Debug, Default)]
struct Family<'a> {
    /// Its `# HELP` line (the first one seen).
    help: Option<&'a str>,
    /// Its `# TYPE` line (the first one seen).
    kind: Option<&'a str>,
    /// Its samples, relabelled, from every target, one a line.
    samples: String,
}

/// The families in the order they were first seen.
#[derive(Debug, Default)]
struct Families<'a> {
    /// Family names, first seen first.
    order: Vec<&'a str>,
    /// By name.
    by_name: HashMap<&'a str, Family<'a>>,
}

impl<'a> Families<'a> {
    fn get(&mut self, fam: &'a str) -> &mut Family<'a> {
        if !self.by_name.contains_key(fam) {
            self.order.push(fam);
        }
        self.by_name.entry(fam).or_default()
    }

    /// One target's text, relabelled with `name` (already escaped).
    fn add(&mut self, text: &'a str, name: &str) {
        let mut current: Option<&'a str> = None;
        for line in text.lines() {
            let line = line.trim_end();
            let help = line.strip_prefix("# HELP ");
            if let Some(rest) = help.or(line.strip_prefix("# TYPE ")) {
                let Some(fam) = rest.split_whitespace().next() else {
                    continue;
                };
                let f = self.get(fam);
                let slot = if help.is_some() {
                    &mut f.help
                } else {
                    &mut f.kind
                };
                slot.get_or_insert(line);
                current = Some(fam);
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(end) = line.find(['{', ' ', '\t']).filter(|e| *e > 0) else {
                continue;
            };
            let metric = &line[..end];
            // A histogram's `_bucket`/`_sum`/`_count` belong to the family above them.
            let fam = current.filter(|c| metric.starts_with(c)).unwrap_or(metric);
            let f = self.get(fam);
            let before = f.samples.len();
            if relabel_into(line, end, name, &mut f.samples).is_none() {
                f.samples.truncate(before);
            }
        }
    }
}

/// The whole answer.
pub fn render(sources: &[Source<'_>]) -> String {
    let mut fams = Families::default();
    for s in sources {
        if let Some(text) = s.text.filter(|_| s.up) {
            fams.add(text, &escape(s.name));
        }
    }
    let size: usize = fams.by_name.values().map(|f| f.samples.len()).sum();
    let mut out = String::with_capacity(size + 64 * fams.order.len() + 64 * sources.len());
    for fam in &fams.order {
        let Some(f) = fams.by_name.get(fam) else {
            continue;
        };
        if f.samples.is_empty() {
            continue;
        }
        for l in f.help.iter().chain(&f.kind) {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&f.samples);
    }
    out.push_str("# HELP ffwrapper_target_up 1 when the target answered its last poll, else 0\n");
    out.push_str("# TYPE ffwrapper_target_up gauge\n");
    for s in sources {
        out.push_str("ffwrapper_target_up{name=\"");
        out.push_str(&escape(s.name));
        out.push_str(if s.up { "\"} 1\n" } else { "\"} 0\n" });
    }
    out
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
    let end = line.find(['{', ' ', '\t']).filter(|e| *e > 0)?;
    let mut out = String::new();
    relabel_into(line, end, &escape(name), &mut out)?;
    Some((line[..end].to_string(), out.trim_end().to_string()))
}

/// Appends the relabelled sample (and a newline) to `out`; `end` is where the metric name ends,
/// `name` is escaped already. `None` (with `out` partly written) when the line does not parse.
fn relabel_into(line: &str, end: usize, name: &str, out: &mut String) -> Option<()> {
    let metric = &line[..end];
    let (labels, rest) = if line[end..].starts_with('{') {
        let close = closing_brace(&line[end..])? + end;
        (&line[end + 1..close], &line[close + 1..])
    } else {
        ("", &line[end..])
    };
    out.push_str(metric);
    out.push_str("{name=\"");
    out.push_str(name);
    out.push('"');
    for label in split_labels(labels)? {
        if label.split('=').next().map(str::trim) != Some("name") {
            out.push(',');
            out.push_str(label);
        }
    }
    out.push_str("} ");
    out.push_str(rest.trim());
    out.push('\n');
    Some(())
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

/// `a="x",b="y, z"` into its `key="value"` parts (commas inside quotes kept); `None` when a
/// quote is left open.
fn split_labels(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                let part = s[start..i].trim();
                if !part.is_empty() {
                    out.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quotes {
        return None;
    }
    let part = s[start..].trim();
    if !part.is_empty() {
        out.push(part);
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
