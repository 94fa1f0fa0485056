//! Who may do what on each listener: the bearer tokens and control (SPEC §6, §10).
//!
//! A request first shows a [`Credential`] (which configured token its `Authorization: Bearer`
//! carries, compared in constant time), then [`Guard::check`] decides from that and what the
//! request needs ([`Need`]). The decision is a pure function, so every combination is tested
//! below without a socket.
//!
//! # The table
//! On the **socket** every request may read, and control needs nothing more (the socket's mode
//! and its directory are the boundary) unless `API_READ_ONLY` turns control off (`403`).
//!
//! On **TCP** (`/healthz` is never checked):
//!
//! | the request bears | read, `API_TOKEN` unset | read, `API_TOKEN` set | control |
//! |---|---|---|---|
//! | nothing | ok | `401` | `401` with `API_TOKEN` set, else `403` |
//! | `API_TOKEN` | — | ok | `403` |
//! | `API_CONTROL_TOKEN` | ok | ok | ok (`403` with `API_READ_ONLY`) |
//! | another token | ok (ignored) | `401` | `401` (`403` when no token is configured at all) |
//!
//! Authentication comes first: with `API_TOKEN` set, a request without a good token gets `401`
//! whatever it asks, unknown paths included, so paths cannot be probed. A request that proved
//! who it is but may not control gets `403`. Without `API_TOKEN` reading stays open and a
//! token the request bears is not looked at (a client with a stale token keeps reading), but a
//! request that bears a wrong token asking to control is told `401`: it meant to authenticate
//! and failed. The control token also grants reading. A scheme other than `Bearer` counts as a
//! wrong token.

use subtle::ConstantTimeEq;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;

use super::format::plain;
use crate::config::Config;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Any `GET`/`HEAD` (and whatever is refused later with `404`/`405`).
    Read,
    /// `POST /stop`, `POST /restart`.
    Control,
}

/// Which configured token a request bears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential {
    /// No `Authorization` header, or one that does not matter (no token is configured).
    Nothing,
    /// A token that is neither configured one (or another scheme than `Bearer`).
    Wrong,
    /// `API_TOKEN`.
    Read,
    /// `API_CONTROL_TOKEN`.
    Control,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// `401`: no token, or a wrong one, where one is needed.
    Unauthorized,
    /// `403` with the one-line reason.
    Forbidden(&'static str),
}

/// The `403` for any control while `API_READ_ONLY` is set.
pub(crate) const READ_ONLY: &str = "control is turned off (API_READ_ONLY=true)";
/// The `403` for control over TCP when `API_CONTROL_TOKEN` is not set.
pub(crate) const NO_CONTROL_TOKEN: &str =
    "control over TCP needs API_CONTROL_TOKEN, which is not set";
/// The `403` for control over TCP without the control token.
pub(crate) const NEEDS_CONTROL_TOKEN: &str =
    "control over TCP needs the API_CONTROL_TOKEN bearer token";

impl Denied {
    /// The answer: `401` with `WWW-Authenticate: Bearer`, or `403` with the reason.
    pub(crate) fn response(self) -> Response {
        match self {
            Denied::Unauthorized => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            Denied::Forbidden(why) => plain(StatusCode::FORBIDDEN, why),
        }
    }

    /// A short word for the log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denied::Unauthorized => "missing or wrong bearer token",
            Denied::Forbidden(why) => why,
        }
    }
}

/// One listener's rules: the socket's, or TCP's with its tokens.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// TCP: the tokens count. The socket needs none.
    tcp: bool,
    /// `API_TOKEN` (TCP only).
    read_token: Option<Vec<u8>>,
    /// `API_CONTROL_TOKEN` (TCP only).
    control_token: Option<Vec<u8>>,
    /// `API_READ_ONLY`: no control on either listener.
    read_only: bool,
}

impl Guard {
    /// The socket's rules.
    pub(crate) fn socket(config: &Config) -> Guard {
        Guard {
            tcp: false,
            read_token: None,
            control_token: None,
            read_only: config.api_read_only,
        }
    }

    /// TCP's rules, with the configured tokens (an empty one counts as unset).
    pub(crate) fn tcp(config: &Config) -> Guard {
        let token = |t: &Option<String>| {
            t.as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec())
        };
        Guard {
            tcp: true,
            read_token: token(&config.api_token),
            control_token: token(&config.api_control_token),
            read_only: config.api_read_only,
        }
    }

    /// Which token `headers` bear: each configured token is compared in constant time.
    pub(crate) fn credential(&self, headers: &HeaderMap) -> Credential {
        if self.read_token.is_none() && self.control_token.is_none() {
            return Credential::Nothing;
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Credential::Nothing;
        };
        let Some(given) = bearer(value.as_bytes()) else {
            return Credential::Wrong;
        };
        let is = |t: &Option<Vec<u8>>| t.as_ref().is_some_and(|t| bool::from(given.ct_eq(t)));
        // Both compared, so the time does not say which one matched.
        let (control, read) = (is(&self.control_token), is(&self.read_token));
        if control {
            Credential::Control
        } else if read {
            Credential::Read
        } else {
            Credential::Wrong
        }
    }

    /// Whether a request bearing `cred` may do what it `need`s (the table in the module docs).
    pub(crate) fn check(&self, need: Need, cred: Credential) -> Result<(), Denied> {
        if !self.tcp {
            return match need {
                Need::Control if self.read_only => Err(Denied::Forbidden(READ_ONLY)),
                _ => Ok(()),
            };
        }
        let authenticated = match cred {
            Credential::Read | Credential::Control => true,
            Credential::Nothing => self.read_token.is_none(),
            Credential::Wrong => self.read_token.is_none() && need == Need::Read,
        };
        if !authenticated {
            return Err(Denied::Unauthorized);
        }
        match need {
            Need::Read => Ok(()),
            Need::Control if self.read_only => Err(Denied::Forbidden(READ_ONLY)),
            Need::Control if cred == Credential::Control => Ok(()),
            Need::Control if self.control_token.is_none() => {
                Err(Denied::Forbidden(NO_CONTROL_TOKEN))
            }
            Need::Control => Err(Denied::Forbidden(NEEDS_CONTROL_TOKEN)),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, spaces around the token trimmed).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Credential as C;

    fn guard(tcp: bool, read: Option<&str>, control: Option<&str>, read_only: bool) -> Guard {
        Guard {
            tcp,
            read_token: read.map(|t| t.as_bytes().to_vec()),
            control_token: control.map(|t| t.as_bytes().to_vec()),
            read_only,
        }
    }

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn credentials_name_the_token_borne() {
        let both = guard(true, Some("rd"), Some("ctl"), false);
        for (auth, want) in [
            (None, C::Nothing),
            (Some("Bearer rd"), C::Read),
            (Some("bearer ctl"), C::Control),
            (Some("BEARER  ctl "), C::Control),
            (Some("Bearer rdx"), C::Wrong),
            (Some("Bearer"), C::Wrong),
            (Some("Basic rd"), C::Wrong),
            (Some("Bearerrd"), C::Wrong),
            (Some("rd"), C::Wrong),
        ] {
            assert_eq!(both.credential(&headers(auth)), want, "{auth:?}");
        }
        // Nothing configured: whatever is borne does not matter.
        let none = guard(true, None, None, false);
        assert_eq!(none.credential(&headers(Some("Bearer x"))), C::Nothing);
        // Only the control token: the read token of another wrapperd is just wrong.
        let ctl = guard(true, None, Some("ctl"), false);
        assert_eq!(ctl.credential(&headers(Some("Bearer rd"))), C::Wrong);
        assert_eq!(ctl.credential(&headers(Some("Bearer ctl"))), C::Control);
        // The same token for both: it controls.
        let same = guard(true, Some("t"), Some("t"), false);
        assert_eq!(same.credential(&headers(Some("Bearer t"))), C::Control);
    }

    /// A decision of [`Guard::check`].
    type Decision = Result<(), Denied>;
    /// (API_TOKEN set, API_CONTROL_TOKEN set, read-only, credential) → (read, control).
    type Row = ((bool, bool, bool, Credential), (Decision, Decision));

    /// Every listener × tokens configured × read-only × credential × need, against the table
    /// of the module docs written out row by row.
    #[test]
    fn the_whole_table() {
        use Denied::{Forbidden, Unauthorized};
        const OK: Result<(), Denied> = Ok(());
        let u = Err(Unauthorized);
        let ro = Err(Forbidden(READ_ONLY));
        let no_ctl = Err(Forbidden(NO_CONTROL_TOKEN));
        let needs = Err(Forbidden(NEEDS_CONTROL_TOKEN));
        let rows: Vec<Row> = vec![
            // No token at all.
            ((false, false, false, C::Nothing), (OK, no_ctl)),
            ((false, false, true, C::Nothing), (OK, ro)),
            // Only API_TOKEN.
            ((true, false, false, C::Nothing), (u, u)),
            ((true, false, false, C::Wrong), (u, u)),
            ((true, false, false, C::Read), (OK, no_ctl)),
            ((true, false, true, C::Read), (OK, ro)),
            // Only API_CONTROL_TOKEN.
            ((false, true, false, C::Nothing), (OK, needs)),
            ((false, true, false, C::Wrong), (OK, u)),
            ((false, true, false, C::Control), (OK, OK)),
            ((false, true, true, C::Control), (OK, ro)),
            ((false, true, true, C::Nothing), (OK, ro)),
            ((false, true, true, C::Wrong), (OK, u)),
            // Both.
            ((true, true, false, C::Nothing), (u, u)),
            ((true, true, false, C::Wrong), (u, u)),
            ((true, true, false, C::Read), (OK, needs)),
            ((true, true, false, C::Control), (OK, OK)),
            ((true, true, true, C::Read), (OK, ro)),
            ((true, true, true, C::Control), (OK, ro)),
            ((true, true, true, C::Nothing), (u, u)),
        ];
        for ((read, control, read_only, cred), (want_read, want_control)) in rows {
            let g = guard(
                true,
                read.then_some("rd"),
                control.then_some("ctl"),
                read_only,
            );
            let at = format!(
                "API_TOKEN {read}, API_CONTROL_TOKEN {control}, read-only {read_only}, {cred:?}"
            );
            assert_eq!(g.check(Need::Read, cred), want_read, "read: {at}");
            assert_eq!(g.check(Need::Control, cred), want_control, "control: {at}");
        }
        // The socket: everything, except control when read-only.
        for cred in [C::Nothing, C::Wrong, C::Read, C::Control] {
            let open = guard(false, None, None, false);
            assert_eq!(open.check(Need::Read, cred), OK);
            assert_eq!(open.check(Need::Control, cred), OK);
            let shut = guard(false, None, None, true);
            assert_eq!(shut.check(Need::Read, cred), OK);
            assert_eq!(shut.check(Need::Control, cred), ro);
        }
    }

    #[test]
    fn empty_tokens_count_as_unset_and_answers_are_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::api::testutil::config(&dir, &[("API_TOKEN", ""), ("API_CONTROL_TOKEN", "ctl")]);
        let g = Guard::tcp(&config);
        assert!(g.read_token.is_none());
        assert_eq!(g.control_token.as_deref(), Some(&b"ctl"[..]));
        assert!(!Guard::socket(&config).tcp);
        let r = Denied::Unauthorized.response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            Denied::Forbidden(READ_ONLY).response().status(),
            StatusCode::FORBIDDEN
        );
    }
}
