//! The dated price tables, one per provider, for the providers whose APIs
//! give no prices (and for Hetzner when no account is there to ask its
//! API). Each names its source page and the date its figures are from;
//! the figures were transcribed from those public pages and change when
//! the providers change them: refresh a table by editing it and its
//! `AS_OF` together.

use super::{
    Arch, BackupCost, Catalog, Eur, Exchange, Ipv4Cost, Origin, Price, Region, Size, VatBasis,
};
use crate::driver::ProviderKind;

/// The date every table below was transcribed for.
pub const AS_OF: &str = "2025-06-30";

/// USD → EUR: the ECB reference rate of [`AS_OF`] (1 EUR = 1.1720 USD).
const USD_EUR: &str = "0.8532";

/// What storing a server image (a snapshot) costs a month per GB, net of
/// VAT, as of [`AS_OF`], and where the figure is from; `None` where Slipway
/// saves no server images.
pub fn image_storage_per_gb_month(provider: ProviderKind) -> Option<(Eur, &'static str)> {
    match provider {
        ProviderKind::Hetzner => Some((
            Eur(119),
            "https://www.hetzner.com/cloud (snapshots: EUR 0.0119 per GB and month)",
        )),
        ProviderKind::OpenStack => Some((
            Eur(100),
            "https://www.ovhcloud.com/en/public-cloud/prices/ (instance snapshots: EUR 0.01 per GB and month)",
        )),
        _ => None,
    }
}

/// `(id, vCPUs, memory GB, disk GB, arch, monthly, hourly, only in these regions (empty: all))`.
type Row = (
    &'static str,
    u32,
    f64,
    u32,
    Arch,
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
);

struct Table {
    provider: ProviderKind,
    source: &'static str,
    vat: VatBasis,
    usd: bool,
    default_image: &'static str,
    regions: &'static [(&'static str, &'static str, &'static str)],
    rows: &'static [Row],
    ipv4_monthly: Option<&'static str>,
    backups: BackupCost,
    notes: &'static [&'static str],
}

use Arch::{Arm, X86};

fn tables() -> Vec<Table> {
    vec![
        Table {
            provider: ProviderKind::Hetzner,
            source: "https://www.hetzner.com/cloud/ (EU locations)",
            vat: VatBasis::Net,
            usd: false,
            default_image: "debian-12",
            regions: &[("fsn1", "Falkenstein", "DE"), ("nbg1", "Nuremberg", "DE"), ("hel1", "Helsinki", "FI")],
            rows: &[
                ("cx22", 2, 4.0, 40, X86, "3.79", Some("0.0060"), &[]),
                ("cx32", 4, 8.0, 80, X86, "6.80", Some("0.0109"), &[]),
                ("cx42", 8, 16.0, 160, X86, "16.40", Some("0.0263"), &[]),
                ("cx52", 16, 32.0, 320, X86, "32.40", Some("0.0519"), &[]),
                ("cpx11", 2, 2.0, 40, X86, "4.35", Some("0.0070"), &[]),
                ("cpx21", 3, 4.0, 80, X86, "7.55", Some("0.0121"), &[]),
                ("cpx31", 4, 8.0, 160, X86, "13.60", Some("0.0218"), &[]),
                ("cax11", 2, 4.0, 40, Arm, "3.79", Some("0.0060"), &["fsn1", "nbg1", "hel1"]),
                ("cax21", 4, 8.0, 80, Arm, "6.49", Some("0.0104"), &["fsn1", "nbg1", "hel1"]),
                ("cax31", 8, 16.0, 160, Arm, "12.49", Some("0.0200"), &["fsn1", "nbg1", "hel1"]),
            ],
            ipv4_monthly: Some("0.50"),
            backups: BackupCost::Percent { hundredths: 2000 },
            notes: &["With a Hetzner account, prices come live from its API instead (`?account=`)."],
        },
        Table {
            provider: ProviderKind::Scaleway,
            source: "https://www.scaleway.com/en/pricing/virtual-instances/",
            vat: VatBasis::Net,
            usd: false,
            default_image: "debian_bookworm",
            regions: &[("fr-par-1", "Paris 1", "FR"), ("fr-par-2", "Paris 2", "FR"), ("nl-ams-1", "Amsterdam 1", "NL"), ("pl-waw-1", "Warsaw 1", "PL")],
            rows: &[
                ("DEV1-S", 2, 2.0, 20, X86, "6.42", Some("0.0088"), &[]),
                ("DEV1-M", 3, 4.0, 40, X86, "14.45", Some("0.0198"), &[]),
                ("DEV1-L", 4, 8.0, 80, X86, "30.66", Some("0.0420"), &[]),
                ("DEV1-XL", 4, 12.0, 120, X86, "46.57", Some("0.0638"), &["fr-par-1", "fr-par-2", "nl-ams-1"]),
            ],
            ipv4_monthly: Some("2.92"),
            backups: BackupCost::NotOffered,
            notes: &["A flexible IPv4 is billed apart (0.004 EUR/hour); snapshots are billed per GB."],
        },
        Table {
            provider: ProviderKind::OpenStack,
            source: "https://www.ovhcloud.com/en/public-cloud/prices/ (OVHcloud Public Cloud)",
            vat: VatBasis::Net,
            usd: false,
            default_image: "Debian 12",
            regions: &[("GRA11", "Gravelines", "FR"), ("SBG5", "Strasbourg", "FR"), ("DE1", "Frankfurt", "DE"), ("UK1", "London", "GB"), ("WAW1", "Warsaw", "PL"), ("BHS5", "Beauharnois", "CA")],
            rows: &[
                ("d2-2", 1, 2.0, 25, X86, "3.88", Some("0.0099"), &[]),
                ("d2-4", 2, 4.0, 50, X86, "7.70", Some("0.0198"), &[]),
                ("b3-8", 2, 8.0, 50, X86, "33.15", Some("0.0758"), &[]),
                ("b3-16", 4, 16.0, 100, X86, "66.30", Some("0.1517"), &[]),
            ],
            ipv4_monthly: None,
            backups: BackupCost::NotOffered,
            notes: &["Prices are OVHcloud's; another OpenStack cloud prices differently.", "Instance backups are snapshots billed per GB."],
        },
        Table {
            provider: ProviderKind::Exoscale,
            source: "https://www.exoscale.com/pricing/ (EUR)",
            vat: VatBasis::Net,
            usd: false,
            default_image: "Linux Debian 12 (Bookworm) 64-bit",
            regions: &[("ch-gva-2", "Geneva", "CH"), ("ch-dk-2", "Zurich", "CH"), ("de-fra-1", "Frankfurt", "DE"), ("de-muc-1", "Munich", "DE"), ("at-vie-1", "Vienna 1", "AT"), ("bg-sof-1", "Sofia", "BG")],
            rows: &[
                ("standard.tiny", 1, 1.0, 50, X86, "10.98", Some("0.0150"), &[]),
                ("standard.small", 2, 2.0, 50, X86, "18.94", Some("0.0259"), &[]),
                ("standard.medium", 2, 4.0, 50, X86, "33.06", Some("0.0453"), &[]),
                ("standard.large", 4, 8.0, 50, X86, "61.30", Some("0.0840"), &[]),
            ],
            ipv4_monthly: None,
            backups: BackupCost::NotOffered,
            notes: &["Prices include a 50 GB root disk (Exoscale bills disk apart, per GB)."],
        },
        Table {
            provider: ProviderKind::Contabo,
            source: "https://contabo.com/en/vps/ (region EU)",
            vat: VatBasis::Net,
            usd: false,
            default_image: "debian-12",
            regions: &[("EU", "Germany (Nuremberg, Düsseldorf)", "DE")],
            rows: &[
                ("V91", 3, 8.0, 75, X86, "4.50", None, &[]),
                ("V94", 6, 12.0, 100, X86, "7.00", None, &[]),
                ("V97", 8, 24.0, 200, X86, "14.00", None, &[]),
            ],
            ipv4_monthly: None,
            backups: BackupCost::NotOffered,
            notes: &["Billed by the month only (no hourly price); other regions add a monthly surcharge not listed here.", "Sizes are Contabo's product ids: V91 Cloud VPS 10, V94 Cloud VPS 20, V97 Cloud VPS 30 (NVMe)."],
        },
        Table {
            provider: ProviderKind::Lightsail,
            source: "https://aws.amazon.com/lightsail/pricing/ (Linux bundles with a public IPv4, USD)",
            vat: VatBasis::Net,
            usd: true,
            default_image: "debian_12",
            regions: &[("eu-central-1", "Frankfurt", "DE"), ("eu-west-1", "Ireland", "IE"), ("eu-west-2", "London", "GB"), ("eu-west-3", "Paris", "FR"), ("eu-north-1", "Stockholm", "SE"), ("us-east-1", "N. Virginia", "US"), ("us-west-2", "Oregon", "US")],
            rows: &[
                ("nano_3_0", 2, 0.5, 20, X86, "5.00", Some("0.0067"), &[]),
                ("micro_3_0", 2, 1.0, 40, X86, "7.00", Some("0.0094"), &[]),
                ("small_3_0", 2, 2.0, 60, X86, "12.00", Some("0.0161"), &[]),
                ("medium_3_0", 2, 4.0, 80, X86, "24.00", Some("0.0323"), &[]),
                ("large_3_0", 2, 8.0, 160, X86, "44.00", Some("0.0591"), &[]),
            ],
            ipv4_monthly: None,
            backups: BackupCost::NotOffered,
            notes: &["Priced in USD and converted; automatic snapshots are billed per GB."],
        },
    ]
}

fn money(text: &str, rate: Option<Eur>) -> Eur {
    let amount = Eur::parse(text).expect("the tables hold decimals");
    rate.map_or(amount, |rate| amount.times(rate))
}

fn build(table: Table) -> Catalog {
    let rate = table
        .usd
        .then(|| Eur::parse(USD_EUR).expect("a decimal rate"));
    let region_ids: Vec<&str> = table.regions.iter().map(|r| r.0).collect();
    let sizes = table
        .rows
        .iter()
        .map(
            |&(id, vcpus, memory_gb, disk_gb, architecture, monthly, hourly, only)| Size {
                id: id.into(),
                vcpus,
                memory_gb,
                disk_gb,
                architecture,
                prices: region_ids
                    .iter()
                    .filter(|r| only.is_empty() || only.contains(r))
                    .map(|region| Price {
                        region: (*region).into(),
                        monthly_eur: money(monthly, rate),
                        hourly_eur: hourly.map(|h| money(h, rate)),
                    })
                    .collect(),
            },
        )
        .collect();
    Catalog {
        provider: table.provider,
        name: table.provider.display_name(),
        driver: table.provider.has_driver(),
        origin: Origin::Table,
        source: table.source.into(),
        as_of: AS_OF.into(),
        vat: table.vat,
        exchange: rate.map(|rate| Exchange {
            from: "USD",
            rate,
            date: AS_OF.into(),
            source: "ECB euro foreign exchange reference rate".into(),
        }),
        default_image: table.default_image.into(),
        regions: table
            .regions
            .iter()
            .map(|(id, name, country)| Region {
                id: (*id).into(),
                name: (*name).into(),
                country: (*country).into(),
            })
            .collect(),
        sizes,
        ipv4: match table.ipv4_monthly {
            None => Ipv4Cost::Included,
            Some(price) => Ipv4Cost::Charged {
                monthly_eur: region_ids
                    .iter()
                    .map(|r| ((*r).to_owned(), money(price, rate)))
                    .collect(),
            },
        },
        backups: table.backups,
        notes: table.notes.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// The table of `provider`.
pub fn catalog(provider: ProviderKind) -> Catalog {
    let table = tables()
        .into_iter()
        .find(|t| t.provider == provider)
        .expect("every provider has a table");
    build(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_a_consistent_table() {
        for provider in ProviderKind::ALL {
            let catalog = catalog(provider);
            assert!(
                !catalog.regions.is_empty() && !catalog.sizes.is_empty(),
                "{provider}"
            );
            for size in &catalog.sizes {
                assert!(
                    !size.prices.is_empty(),
                    "{provider} {} is sold nowhere",
                    size.id
                );
                for price in &size.prices {
                    assert!(catalog.regions.iter().any(|r| r.id == price.region));
                    assert!(price.monthly_eur > Eur::ZERO);
                }
            }
        }
    }

    #[test]
    fn dollar_prices_are_converted_at_the_stated_rate() {
        let lightsail = catalog(ProviderKind::Lightsail);
        let exchange = lightsail
            .exchange
            .as_ref()
            .expect("USD prices state their rate");
        assert_eq!(
            (exchange.from, exchange.rate, exchange.date.as_str()),
            ("USD", Eur(8532), AS_OF)
        );
        let (_, price) = lightsail.offer("eu-central-1", "nano_3_0").unwrap();
        assert_eq!(price.monthly_eur, Eur(42_660));
        assert!(catalog(ProviderKind::Hetzner).exchange.is_none());
    }
}
