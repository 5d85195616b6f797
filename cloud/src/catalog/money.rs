//! Money without floating point: an amount in ten-thousandths of a euro,
//! enough for hourly prices (`0.0060`) and exact sums of monthly ones;
//! rounded half away from zero wherever a percentage or a rate divides.

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

/// Ten-thousandths of a unit (a euro, or a dollar before conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Eur(pub i64);

const SCALE: i64 = 10_000;

impl Eur {
    pub const ZERO: Eur = Eur(0);

    /// A decimal like `3.79`, `0.0060000000` or `-1`: digits beyond the
    /// fourth decimal are rounded.
    pub fn parse(text: &str) -> Option<Eur> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
            || whole.len() > 12
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut units = whole * SCALE;
        let mut scale = SCALE / 10;
        for (i, c) in fraction.chars().enumerate() {
            let digit = i64::from(c.to_digit(10)?);
            if i < 4 {
                units += digit * scale;
                scale /= 10;
            } else {
                if digit >= 5 {
                    units += 1;
                }
                break;
            }
        }
        Some(Eur(if negative { -units } else { units }))
    }

    /// `percent` (in hundredths: 2000 = 20 %) of this amount.
    pub fn percent(self, hundredths: i64) -> Eur {
        Eur(div_round(self.0 * hundredths, 100 * 100))
    }

    /// This amount times `rate` (itself in ten-thousandths: 8532 = 0.8532).
    pub fn times(self, rate: Eur) -> Eur {
        Eur(div_round(self.0 * rate.0, SCALE))
    }

    /// Rounded to whole cents.
    pub fn cents(self) -> Eur {
        Eur(div_round(self.0, 100) * 100)
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

/// `a / b` rounded half away from zero (`b > 0`).
fn div_round(a: i64, b: i64) -> i64 {
    let half = b / 2;
    if a >= 0 {
        (a + half) / b
    } else {
        -((-a + half) / b)
    }
}

impl Add for Eur {
    type Output = Eur;
    fn add(self, other: Eur) -> Eur {
        Eur(self.0 + other.0)
    }
}

impl Sum for Eur {
    fn sum<I: Iterator<Item = Eur>>(iter: I) -> Eur {
        iter.fold(Eur::ZERO, Add::add)
    }
}

impl fmt::Display for Eur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.abs();
        write!(f, "{sign}{}.{:04}", abs / SCALE, abs % SCALE)
    }
}

impl serde::Serialize for Eur {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        for (text, units) in [
            ("3.79", 37_900),
            ("0.0060000000", 60),
            ("4.5100000000", 45_100),
            ("0.00005", 1),
            ("0.00004", 0),
            ("12", 120_000),
            (".5", 5_000),
            ("-1.25", -12_500),
        ] {
            assert_eq!(Eur::parse(text), Some(Eur(units)), "{text}");
        }
        for bad in ["", "abc", "1.2.3", "1e3", "--1", "1,5", "9999999999999"] {
            assert_eq!(Eur::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn percentages_rates_and_cents_round_half_away_from_zero() {
        // 20 % of 3.79 is 0.758.
        assert_eq!(Eur(37_900).percent(2000), Eur(7_580));
        // 20 % of 0.0007 is 0.00014, rounds to 0.0001.
        assert_eq!(Eur(7).percent(2000), Eur(1));
        // 5 USD at 0.8532.
        assert_eq!(Eur(50_000).times(Eur(8_532)), Eur(42_660));
        assert_eq!(Eur(42_660).cents(), Eur(42_700));
        assert_eq!(Eur(42_649).cents(), Eur(42_600));
        assert_eq!(Eur(-42_650).cents(), Eur(-42_700));
        assert_eq!(Eur(37_900).to_string(), "3.7900");
        assert_eq!([Eur(1), Eur(2)].into_iter().sum::<Eur>(), Eur(3));
    }
}
