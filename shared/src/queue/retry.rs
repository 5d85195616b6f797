//! Backoff for retries: exponential in the attempt number with jitter, then
//! snapped to one of the configured delay tiers (per-message TTLs only
//! expire at the head of a queue, so each tier is its own fixed-TTL queue).

use std::time::Duration;

/// The tier for the retry after `attempt` (1-based) failed.
pub fn tier_for(attempt: i32, tiers: &[Duration], jitter: f64) -> Duration {
    let first = tiers.first().copied().unwrap_or(Duration::from_secs(1));
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let ideal =
        first.as_secs_f64() * 2f64.powi(exponent as i32) * (0.75 + 0.5 * jitter.clamp(0.0, 1.0));
    // The largest tier not above the ideal delay, never below the first.
    tiers
        .iter()
        .copied()
        .filter(|tier| tier.as_secs_f64() <= ideal)
        .max()
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<Duration> {
        [1, 5, 30, 120, 600].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn delays_grow_with_attempts_and_stay_on_tiers() {
        let delays: Vec<_> = (1..=12).map(|a| tier_for(a, &tiers(), 0.5)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(delays[0], Duration::from_secs(1));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(600));
        assert!(delays.iter().all(|d| tiers().contains(d)));
    }

    #[test]
    fn jitter_can_move_a_retry_to_a_neighbouring_tier() {
        let tiers = [1, 2, 4, 8].map(Duration::from_secs).to_vec();
        assert_eq!(tier_for(3, &tiers, 0.0), Duration::from_secs(2));
        assert_eq!(tier_for(3, &tiers, 1.0), Duration::from_secs(4));
    }
}
