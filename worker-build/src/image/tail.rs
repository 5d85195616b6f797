//! Reading a failed build's last lines for what they say happened (see
//! `storage_race`, `network_trouble`).

/// Whether a line of `tail` (compared in lowercase) contains one of
/// `needles` (lowercase) and, when `also` is given, that word too.
pub fn mentions(tail: &str, needles: &[&str], also: Option<&str>) -> bool {
    tail.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        also.is_none_or(|word| line.contains(word)) && needles.iter().any(|n| line.contains(n))
    })
}
