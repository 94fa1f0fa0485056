//! The list's sort keys; `s` cycles through them.

/// How the target rows are ordered; `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By name, A to Z.
    Name,
    /// Worst first: down and unauthorized, failing, stalled, exited, stopping and restarting,
    /// connecting, warming up, ok (exited encodes whose API is gone after every live row, as
    /// always).
    Health,
    /// Lowest current fps first (where trouble shows), unknown last.
    Fps,
    /// Lowest current speed first, unknown last.
    Speed,
    /// Shortest uptime first (recent restarts on top).
    Uptime,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Name => SortKey::Health,
            SortKey::Health => SortKey::Fps,
            SortKey::Fps => SortKey::Speed,
            SortKey::Speed => SortKey::Uptime,
            SortKey::Uptime => SortKey::Name,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Health => "health",
            SortKey::Fps => "fps",
            SortKey::Speed => "speed",
            SortKey::Uptime => "uptime",
        }
    }
}
