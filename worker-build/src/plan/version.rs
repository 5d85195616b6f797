//! Versions and version requirements, as apps declare them: npm ranges
//! (`>=18`, `18.x`, `^20.1`, `~18.2`, `16 || 18`, `18 - 20`), PEP 440
//! specifiers (`>=3.12`, `~=3.11`, `==3.12.*`, `>=3.9,<4`) and plain
//! versions (`3.13`, `v20.11.0`). Only release numbers count: pre-release
//! tags are not offered by any base image, so they are not modelled.

use std::cmp::Ordering;
use std::fmt;

/// A release number; missing parts are 0 (`3.13` is `3.13.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// `3`, `3.13`, `3.13.5`, `v20.1.0`, `go1.22.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let partial = Partial::parse(text)?;
        (!partial.wildcard && partial.given > 0).then(|| partial.floor())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version with possibly missing or wildcard parts: `18`, `18.x`, `3.12.*`.
#[derive(Debug, Clone, Copy)]
struct Partial {
    parts: [u64; 3],
    /// How many leading parts were given as numbers (0..=3).
    given: usize,
    /// Whether an `x` or `*` part was written.
    wildcard: bool,
}

impl Partial {
    fn parse(text: &str) -> Option<Partial> {
        let text = text.trim();
        let text = text
            .strip_prefix("go")
            .or_else(|| text.strip_prefix(['v', 'V', '=']))
            .unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        let mut parts = [0; 3];
        let mut given = 0;
        let mut wildcard = false;
        for (i, part) in text.split('.').enumerate() {
            if i >= 3 {
                return None;
            }
            if matches!(part, "x" | "X" | "*") {
                wildcard = true;
            } else if wildcard || part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return None;
            } else {
                parts[i] = part.parse().ok()?;
                given += 1;
            }
        }
        Some(Partial {
            parts,
            given,
            wildcard,
        })
    }

    fn floor(self) -> Version {
        Version::new(self.parts[0], self.parts[1], self.parts[2])
    }

    /// The first version after every version this partial covers
    /// (`18` -> `19.0.0`, `3.12` -> `3.13.0`); `None` when all are covered.
    fn ceiling(self) -> Option<Version> {
        let [major, minor, _] = self.parts;
        match self.given {
            0 => None,
            1 => Some(Version::new(major + 1, 0, 0)),
            2 => Some(Version::new(major, minor + 1, 0)),
            _ => None,
        }
    }

    fn is_exact(self) -> bool {
        self.given == 3
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// PEP 440 `!=`: before the version or at/after this ceiling.
    Outside(Version),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

impl Comparator {
    fn allows(&self, v: Version) -> bool {
        let order = v.cmp(&self.version);
        match self.op {
            Op::Less => order == Ordering::Less,
            Op::LessOrEqual => order != Ordering::Greater,
            Op::Greater => order == Ordering::Greater,
            Op::GreaterOrEqual => order != Ordering::Less,
            Op::Outside(ceiling) => order == Ordering::Less || v >= ceiling,
        }
    }
}

/// Alternatives (`||`), each a set of comparators that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    alternatives: Vec<Vec<Comparator>>,
}

impl Requirement {
    /// An npm range or a PEP 440 specifier (commas and spaces both join).
    pub fn parse(text: &str) -> Option<Requirement> {
        let alternatives = text
            .split("||")
            .map(parse_set)
            .collect::<Option<Vec<_>>>()?;
        Some(Requirement { alternatives })
    }

    /// `VERSION` and every later patch (or later minor, for `3`): how a
    /// `.python-version` of `3.13` or a `go 1.22` line reads.
    pub fn at_least_within(partial_text: &str) -> Option<Requirement> {
        let partial = Partial::parse(partial_text)?;
        let set = if partial.is_exact() {
            vec![
                Comparator {
                    op: Op::GreaterOrEqual,
                    version: partial.floor(),
                },
                Comparator {
                    op: Op::Less,
                    version: Version::new(partial.parts[0], partial.parts[1] + 1, 0),
                },
            ]
        } else {
            covering(partial)
        };
        Some(Requirement {
            alternatives: vec![set],
        })
    }

    pub fn allows(&self, v: Version) -> bool {
        self.alternatives
            .iter()
            .any(|set| set.iter().all(|c| c.allows(v)))
    }
}

fn parse_set(text: &str) -> Option<Vec<Comparator>> {
    let text = text.trim();
    if text.is_empty() || text == "*" || text == "x" {
        return Some(Vec::new());
    }
    // Hyphen range: `18 - 20` is `>=18.0.0 <21.0.0`.
    if let Some((low, high)) = text.split_once(" - ") {
        let (low, high) = (Partial::parse(low)?, Partial::parse(high)?);
        let mut set = vec![Comparator {
            op: Op::GreaterOrEqual,
            version: low.floor(),
        }];
        set.push(match high.ceiling() {
            Some(ceiling) => Comparator {
                op: Op::Less,
                version: ceiling,
            },
            None => Comparator {
                op: Op::LessOrEqual,
                version: high.floor(),
            },
        });
        return Some(set);
    }
    // `>= 18` is written with a space at times: glue operators to their version.
    let mut words: Vec<String> = Vec::new();
    for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
        match words.last_mut() {
            Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(word),
            _ => words.push(word.to_string()),
        }
    }
    let mut set = Vec::new();
    for word in words {
        set.extend(parse_comparator(&word)?);
    }
    Some(set)
}

fn parse_comparator(word: &str) -> Option<Vec<Comparator>> {
    let at = |op, version| Comparator { op, version };
    let operator_len = word
        .find(|c: char| !"<>=!~^".contains(c))
        .unwrap_or(word.len());
    let (op, rest) = word.split_at(operator_len);
    let partial = Partial::parse(rest)?;
    let v = partial.floor();
    Some(match op {
        "" | "=" | "==" => covering(partial),
        "===" if partial.is_exact() => covering(partial),
        ">=" => vec![at(Op::GreaterOrEqual, v)],
        "<" => vec![at(Op::Less, v)],
        ">" => match partial.ceiling() {
            // `>18` means after every 18.x.
            Some(ceiling) => vec![at(Op::GreaterOrEqual, ceiling)],
            None => vec![at(Op::Greater, v)],
        },
        "<=" => match partial.ceiling() {
            Some(ceiling) => vec![at(Op::Less, ceiling)],
            None => vec![at(Op::LessOrEqual, v)],
        },
        "!=" => {
            let ceiling = partial
                .ceiling()
                .unwrap_or(Version::new(v.major, v.minor, v.patch + 1));
            vec![at(Op::Outside(ceiling), v)]
        }
        // npm: `^1.2.3` up to the next major (or minor for 0.x).
        "^" => {
            let ceiling = if v.major > 0 || partial.given == 1 {
                Version::new(v.major + 1, 0, 0)
            } else if v.minor > 0 || partial.given == 2 {
                Version::new(0, v.minor + 1, 0)
            } else {
                Version::new(0, 0, v.patch + 1)
            };
            vec![at(Op::GreaterOrEqual, v), at(Op::Less, ceiling)]
        }
        // npm: `~1.2.3` up to the next minor; `~1` up to the next major.
        "~" => {
            let ceiling = if partial.given == 1 {
                Version::new(v.major + 1, 0, 0)
            } else {
                Version::new(v.major, v.minor + 1, 0)
            };
            vec![at(Op::GreaterOrEqual, v), at(Op::Less, ceiling)]
        }
        // PEP 440: `~=3.11` is `>=3.11, ==3.*`; `~=3.11.2` is `>=3.11.2, ==3.11.*`.
        "~=" if partial.given >= 2 => {
            let ceiling = if partial.given == 2 {
                Version::new(v.major + 1, 0, 0)
            } else {
                Version::new(v.major, v.minor + 1, 0)
            };
            vec![at(Op::GreaterOrEqual, v), at(Op::Less, ceiling)]
        }
        _ => return None,
    })
}

/// Every version the partial covers: `18` is `>=18.0.0 <19.0.0`.
fn covering(partial: Partial) -> Vec<Comparator> {
    let floor = Comparator {
        op: Op::GreaterOrEqual,
        version: partial.floor(),
    };
    match (partial.given, partial.ceiling()) {
        (0, _) => Vec::new(),
        (_, Some(ceiling)) => vec![
            floor,
            Comparator {
                op: Op::Less,
                version: ceiling,
            },
        ],
        (_, None) => vec![
            floor,
            Comparator {
                op: Op::LessOrEqual,
                version: partial.floor(),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_as_npm_and_pep_440_write_them() {
        let v = |s: &str| Version::parse(s).unwrap();
        let table: &[(&str, &[&str], &[&str])] = &[
            (">=18", &["18.0.0", "18.20.4", "26.1.0"], &["17.9.9"]),
            (">= 18", &["18.20.4"], &["16.0.0"]),
            ("18.x", &["18.0.0", "18.20.4"], &["19.0.0", "17.1.0"]),
            ("20", &["20.11.1"], &["18.20.4", "21.0.0"]),
            ("^20.1", &["20.1.0", "20.9.9"], &["20.0.9", "21.0.0"]),
            ("~18.2", &["18.2.5"], &["18.3.0"]),
            ("16 || 18", &["16.1.0", "18.20.4"], &["20.0.0"]),
            ("18 - 20", &["18.0.0", "20.9.0"], &["21.0.0"]),
            (">=18 <21", &["20.9.0"], &["21.0.0"]),
            (">18", &["19.0.0"], &["18.20.4"]),
            ("<=20", &["20.9.0"], &["21.0.0"]),
            ("*", &["1.0.0"], &[]),
            (">=3.12", &["3.13.5"], &["3.11.2"]),
            (">=3.9,<4", &["3.11.2", "3.13.5"], &["4.0.0"]),
            ("~=3.11", &["3.11.2", "3.13.5"], &["3.10.0"]),
            ("~=3.11.1", &["3.11.2"], &["3.12.0"]),
            ("==3.12.*", &["3.12.1"], &["3.13.5", "3.11.2"]),
            (">=3.8, !=3.11.*", &["3.13.5"], &["3.11.2"]),
            ("v20.11.0", &["20.11.0"], &["20.11.1"]),
        ];
        for (text, allowed, refused) in table {
            let r = Requirement::parse(text).unwrap_or_else(|| panic!("{text} parses"));
            for a in *allowed {
                assert!(r.allows(v(a)), "{text} allows {a}");
            }
            for b in *refused {
                assert!(!r.allows(v(b)), "{text} refuses {b}");
            }
        }
        for nonsense in ["banana", ">=", "3.x.1", "1.2.3.4", "<>3"] {
            assert_eq!(Requirement::parse(nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn a_release_series_covers_its_patches_only() {
        let r = Requirement::at_least_within("3.13").unwrap();
        assert!(r.allows(Version::new(3, 13, 5)));
        assert!(!r.allows(Version::new(3, 14, 0)));
        assert!(!r.allows(Version::new(3, 12, 9)));
        assert_eq!(Version::parse("go1.22.1"), Some(Version::new(1, 22, 1)));
        assert_eq!(Version::parse("1.19"), Some(Version::new(1, 19, 0)));
        assert_eq!(Version::parse("1.x"), None);
    }
}
