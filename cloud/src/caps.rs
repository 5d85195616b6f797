//! A project's spending caps, checked before anything is bought: how many
//! servers it may hold and how many euros a month they may cost together.
//! Pure, so the server create calls it inside the transaction that counts
//! what the project already holds.

use crate::catalog::Eur;

/// `None`: no cap of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_servers: Option<u32>,
    pub max_monthly_eur: Option<Eur>,
}

/// What the project holds now (servers not destroyed, their monthly cost
/// at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub servers: u32,
    pub monthly_eur: Eur,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapExceeded {
    #[error(
        "the project may hold {cap} servers and holds {holds}; raise `max_servers` or destroy one"
    )]
    Servers { cap: u32, holds: u32 },
    #[error("this server costs {adding} EUR a month; with the {holds} EUR the project's servers cost, that is over its cap of {cap} EUR (`max_monthly_eur`)")]
    Monthly { cap: Eur, holds: Eur, adding: Eur },
}

impl CapExceeded {
    pub fn code(&self) -> &'static str {
        "cap_exceeded"
    }
}

/// Whether one more server costing `adding` a month stays within `caps`.
pub fn check(caps: &Caps, usage: &Usage, adding: Eur) -> Result<(), CapExceeded> {
    if let Some(cap) = caps.max_servers {
        if usage.servers >= cap {
            return Err(CapExceeded::Servers {
                cap,
                holds: usage.servers,
            });
        }
    }
    if let Some(cap) = caps.max_monthly_eur {
        if usage.monthly_eur + adding > cap {
            return Err(CapExceeded::Monthly {
                cap,
                holds: usage.monthly_eur,
                adding,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_table() {
        let eur = |e: i64| Eur(e * 10_000);
        let caps = |servers, monthly: Option<i64>| Caps {
            max_servers: servers,
            max_monthly_eur: monthly.map(eur),
        };
        let usage = |servers, monthly| Usage {
            servers,
            monthly_eur: eur(monthly),
        };
        // (caps, usage, adding, allowed)
        let cases = [
            (caps(None, None), usage(100, 10_000), eur(500), true),
            (caps(Some(3), None), usage(2, 0), eur(5), true),
            (caps(Some(3), None), usage(3, 0), eur(5), false),
            (caps(None, Some(50)), usage(1, 45), eur(5), true),
            (caps(None, Some(50)), usage(1, 45), Eur(50_001), false),
            (caps(Some(0), Some(1_000)), usage(0, 0), eur(1), false),
            (caps(Some(5), Some(10)), usage(1, 0), eur(11), false),
        ];
        for (caps, usage, adding, allowed) in cases {
            assert_eq!(
                check(&caps, &usage, adding).is_ok(),
                allowed,
                "{caps:?} {usage:?} {adding}"
            );
        }
        let refused = check(&caps(None, Some(50)), &usage(1, 45), eur(6)).unwrap_err();
        assert_eq!(refused.code(), "cap_exceeded");
        assert!(
            refused.to_string().contains("over its cap of 50.0000 EUR"),
            "{refused}"
        );
    }
}
