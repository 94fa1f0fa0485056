//! PromQL read as the deploy tests need it (pure, no I/O): the selectors of an expression with
//! their label matchers, the labels its `on`/`ignoring`/`by`/`without`/`group_*` name, its
//! vector matchings (joins) with the selectors of their "one" side, and the labels its result
//! series carry, given the labels of each selected metric. Enough to prove statically that a
//! rule only names labels that exist and that its alert carries the encode's `name`.

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality};

/// Labels Prometheus adds to every scraped series: not the target's to serve.
pub(super) const SCRAPE_LABELS: [&str; 2] = ["instance", "job"];

/// One vector selector.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    /// The metric name.
    pub(super) metric: String,
    /// Its label matchers (`__name__` left out) as (label, operator, value).
    pub(super) matchers: Vec<(String, String, String)>,
}

impl Selector {
    /// It has the matcher `label op value`.
    pub(super) fn has(&self, label: &str, op: &str, value: &str) -> bool {
        self.matchers
            .iter()
            .any(|(l, o, v)| l == label && o == op && v == value)
    }
}

/// One vector matching of a binary operator between two vectors (set operators left out:
/// they never fail as many-to-many).
#[derive(Debug, Clone)]
pub(super) struct Join {
    /// The `on(...)` labels; `None` for `ignoring(...)` or no modifier.
    pub(super) on: Option<BTreeSet<String>>,
    /// The selectors of the side(s) that must be unique per match group: the right of a
    /// `group_left`, the left of a `group_right`, both of a one-to-one matching.
    pub(super) one_side: Vec<Selector>,
}

/// What an expression uses.
#[derive(Debug, Default)]
pub(super) struct Uses {
    /// Every selector, in order.
    pub(super) selectors: Vec<Selector>,
    /// Every label named by `on`, `ignoring`, `group_left`, `group_right`, `by`, `without`.
    pub(super) grouping: BTreeSet<String>,
    /// Every vector matching between two vectors.
    pub(super) joins: Vec<Join>,
}

/// The parsed expression; panics with the expression when it is not valid PromQL.
pub(super) fn parse(expr: &str) -> Expr {
    promql_parser::parser::parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"))
}

/// What `e` uses.
pub(super) fn uses(e: &Expr) -> Uses {
    let mut u = Uses::default();
    walk(e, &mut u);
    u
}

fn selector(v: &promql_parser::parser::VectorSelector) -> Selector {
    let matchers = v
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name != "__name__")
        .map(|m| {
            let op = match &m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Re(_) => "=~",
                MatchOp::NotRe(_) => "!~",
            };
            (m.name.clone(), op.to_string(), m.value.clone())
        })
        .collect();
    Selector {
        metric: v.name.clone().expect("a metric name in every selector"),
        matchers,
    }
}

fn walk(e: &Expr, u: &mut Uses) {
    match e {
        Expr::Aggregate(a) => {
            if let Some(m) = &a.modifier {
                u.grouping.extend(m.labels().labels.iter().cloned());
            }
            walk(&a.expr, u);
            if let Some(p) = &a.param {
                walk(p, u);
            }
        }
        Expr::Unary(x) => walk(&x.expr, u),
        Expr::Paren(x) => walk(&x.expr, u),
        Expr::Subquery(x) => walk(&x.expr, u),
        Expr::VectorSelector(v) => u.selectors.push(selector(v)),
        Expr::MatrixSelector(m) => u.selectors.push(selector(&m.vs)),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, u)),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                if let Some(matching) = &m.matching {
                    u.grouping.extend(matching.labels().labels.iter().cloned());
                }
                if let Some(l) = m.card.labels() {
                    u.grouping.extend(l.labels.iter().cloned());
                }
            }
            let set_op = b.op.is_set_operator();
            if !set_op && !is_scalar(&b.lhs) && !is_scalar(&b.rhs) {
                let card = b.modifier.as_ref().map(|m| &m.card);
                let one: Vec<&Expr> = match card {
                    Some(VectorMatchCardinality::ManyToOne(_)) => vec![&b.rhs],
                    Some(VectorMatchCardinality::OneToMany(_)) => vec![&b.lhs],
                    _ => vec![&b.lhs, &b.rhs],
                };
                let on = b.modifier.as_ref().and_then(|m| match &m.matching {
                    Some(LabelModifier::Include(l)) => Some(l.labels.iter().cloned().collect()),
                    _ => None,
                });
                let one_side = one.iter().flat_map(|x| uses(x).selectors).collect();
                u.joins.push(Join { on, one_side });
            }
            walk(&b.lhs, u);
            walk(&b.rhs, u);
        }
        _ => {}
    }
}

/// A number, or an expression of numbers only.
fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_scalar(&p.expr),
        Expr::Unary(u) => is_scalar(&u.expr),
        Expr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}

/// The labels every result series of `e` carries (besides `__name__`), given the labels of a
/// selector's series (`labels_of`; the scrape's `instance` and `job` are added here). Where the
/// result may come from either side (`or`), only the labels of both.
pub(super) fn result_labels(
    e: &Expr,
    labels_of: &dyn Fn(&Selector) -> BTreeSet<String>,
) -> BTreeSet<String> {
    let scrape = |s: Selector| -> BTreeSet<String> {
        let mut l = labels_of(&s);
        l.extend(SCRAPE_LABELS.iter().map(|s| s.to_string()));
        l
    };
    let of = |x: &Expr| result_labels(x, labels_of);
    match e {
        Expr::VectorSelector(v) => scrape(selector(v)),
        Expr::MatrixSelector(m) => scrape(selector(&m.vs)),
        Expr::Unary(x) => of(&x.expr),
        Expr::Paren(x) => of(&x.expr),
        Expr::Subquery(x) => of(&x.expr),
        // increase, changes, last_over_time, rate...: the labels of their vector argument;
        // vector(x) has none.
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .find(|a| !is_scalar(a))
            .map_or_else(BTreeSet::new, |a| of(a)),
        Expr::Aggregate(a) => match &a.modifier {
            Some(LabelModifier::Include(l)) => l.labels.iter().cloned().collect(),
            Some(LabelModifier::Exclude(l)) => {
                let mut inner = of(&a.expr);
                l.labels.iter().for_each(|x| {
                    inner.remove(x);
                });
                inner
            }
            None => BTreeSet::new(),
        },
        Expr::Binary(b) => binary_labels(b, labels_of),
        _ => BTreeSet::new(),
    }
}

fn binary_labels(
    b: &promql_parser::parser::BinaryExpr,
    labels_of: &dyn Fn(&Selector) -> BTreeSet<String>,
) -> BTreeSet<String> {
    let of = |x: &Expr| result_labels(x, labels_of);
    if is_scalar(&b.lhs) {
        return of(&b.rhs);
    }
    if is_scalar(&b.rhs) {
        return of(&b.lhs);
    }
    if b.op.is_set_operator() {
        return match b.op.to_string().as_str() {
            "or" => of(&b.lhs).intersection(&of(&b.rhs)).cloned().collect(),
            _ => of(&b.lhs),
        };
    }
    let Some(m) = &b.modifier else {
        return of(&b.lhs);
    };
    let (mut base, other) = match &m.card {
        VectorMatchCardinality::OneToMany(_) => (of(&b.rhs), of(&b.lhs)),
        _ => (of(&b.lhs), of(&b.rhs)),
    };
    match (&m.card, &m.matching) {
        (VectorMatchCardinality::OneToOne, Some(LabelModifier::Include(on))) => {
            base.retain(|l| on.labels.contains(l))
        }
        (VectorMatchCardinality::OneToOne, Some(LabelModifier::Exclude(ign))) => {
            base.retain(|l| !ign.labels.contains(l))
        }
        _ => {}
    }
    if let Some(include) = m.card.labels() {
        base.extend(
            include
                .labels
                .iter()
                .filter(|l| other.contains(*l))
                .cloned(),
        );
    }
    base
}

#[cfg(test)]
mod unit {
    use super::*;

    /// Direct wrapperd: only ffwrapper_info has `name`.
    fn direct(s: &Selector) -> BTreeSet<String> {
        let l: &[&str] = match s.metric.as_str() {
            "ffwrapper_info" => &["name", "version"],
            "ffwrapper_health" => &["state"],
            _ => &[],
        };
        l.iter().map(|x| x.to_string()).collect()
    }

    fn labels(expr: &str) -> Vec<String> {
        result_labels(&parse(expr), &direct).into_iter().collect()
    }

    #[test]
    fn result_labels_follow_joins_aggregations_and_set_operators() {
        let join = "ffwrapper_fps * on(instance) group_left(name) ffwrapper_info";
        assert_eq!(labels(join), ["instance", "job", "name"]);
        assert_eq!(labels("ffwrapper_fps < 1"), ["instance", "job"]);
        assert_eq!(
            labels(&format!("increase(ffwrapper_fps[5m]) or {join}")),
            ["instance", "job"]
        );
        assert_eq!(
            labels("max without(state) (ffwrapper_health)"),
            ["instance", "job"]
        );
        assert_eq!(labels("max by (name) (ffwrapper_info)"), ["name"]);
        assert_eq!(
            labels("ffwrapper_fps == on(instance) ffwrapper_info"),
            ["instance"]
        );
        assert_eq!(
            labels("ffwrapper_fps and on(instance) ffwrapper_info"),
            ["instance", "job"]
        );
        assert_eq!(labels("vector(1)"), Vec::<String>::new());
    }

    #[test]
    fn uses_names_selectors_grouping_and_the_one_side_of_joins() {
        let u = uses(&parse(
            r#"max by (state) (ffwrapper_health{job!~"x"} * on(instance, name) group_left(version) ffwrapper_info{job!~"x"}) > 0 and ffwrapper_up"#,
        ));
        let metrics: Vec<&str> = u.selectors.iter().map(|s| s.metric.as_str()).collect();
        assert_eq!(
            metrics,
            ["ffwrapper_health", "ffwrapper_info", "ffwrapper_up"]
        );
        assert!(u.selectors[0].has("job", "!~", "x"));
        let grouping: Vec<&str> = u.grouping.iter().map(String::as_str).collect();
        assert_eq!(grouping, ["instance", "name", "state", "version"]);
        assert_eq!(u.joins.len(), 1, "a set operator is no join: {:?}", u.joins);
        let j = &u.joins[0];
        assert_eq!(j.one_side.len(), 1);
        assert_eq!(j.one_side[0].metric, "ffwrapper_info");
        assert!(j.on.as_ref().unwrap().contains("name"));
    }
}
