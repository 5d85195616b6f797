//! What a server create can actually buy, line by line: the server in its
//! region, a public IPv4 where it is billed apart, backups where they are
//! sold as a share of the server; and the monthly total. Pure: a catalog
//! and a request in, an estimate out.

use super::{BackupCost, Catalog, CatalogError, Eur, Exchange, Ipv4Cost, VatBasis};
use crate::driver::ProviderKind;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Server,
    Ipv4,
    Backups,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    pub item: LineKind,
    pub description: String,
    pub monthly_eur: Eur,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub provider: ProviderKind,
    pub region: String,
    pub size: String,
    pub currency: &'static str,
    pub vat: VatBasis,
    pub items: Vec<LineItem>,
    pub monthly_total_eur: Eur,
    /// The server alone, by the hour (`None` where billed monthly only).
    pub server_hourly_eur: Option<Eur>,
    pub source: String,
    pub as_of: String,
    pub exchange: Option<Exchange>,
}

#[derive(Debug, Clone)]
pub struct EstimateRequest<'a> {
    pub region: &'a str,
    pub size: &'a str,
    pub backups: bool,
}

pub fn estimate(
    catalog: &Catalog,
    request: &EstimateRequest<'_>,
) -> Result<Estimate, CatalogError> {
    let (size, price) = catalog.offer(request.region, request.size)?;
    let mut items = vec![LineItem {
        item: LineKind::Server,
        description: format!(
            "{} {} ({} vCPU, {} GB memory, {} GB disk) in {}",
            catalog.name, size.id, size.vcpus, size.memory_gb, size.disk_gb, request.region
        ),
        monthly_eur: price.monthly_eur,
    }];
    if let Ipv4Cost::Charged { monthly_eur } = &catalog.ipv4 {
        if let Some(ipv4) = monthly_eur.get(request.region) {
            items.push(LineItem {
                item: LineKind::Ipv4,
                description: "public IPv4 address".into(),
                monthly_eur: *ipv4,
            });
        }
    }
    if request.backups {
        match catalog.backups {
            BackupCost::Percent { hundredths } => items.push(LineItem {
                item: LineKind::Backups,
                description: format!("backups ({}% of the server)", hundredths as f64 / 100.0),
                monthly_eur: price.monthly_eur.percent(hundredths),
            }),
            BackupCost::NotOffered => {
                return Err(CatalogError::BackupsNotOffered {
                    provider: catalog.name,
                })
            }
        }
    }
    Ok(Estimate {
        provider: catalog.provider,
        region: request.region.to_owned(),
        size: size.id.clone(),
        currency: "EUR",
        vat: catalog.vat,
        monthly_total_eur: items.iter().map(|i| i.monthly_eur).sum(),
        items,
        server_hourly_eur: price.hourly_eur,
        source: catalog.source.clone(),
        as_of: catalog.as_of.clone(),
        exchange: catalog.exchange.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tables::catalog;

    fn request(region: &str, size: &str, backups: bool) -> EstimateRequest<'static> {
        EstimateRequest {
            region: Box::leak(region.to_owned().into_boxed_str()),
            size: Box::leak(size.to_owned().into_boxed_str()),
            backups,
        }
    }

    #[test]
    fn line_items_and_totals() {
        use ProviderKind::*;
        // (provider, region, size, backups, line items' monthly EUR, total)
        type Case = (
            ProviderKind,
            &'static str,
            &'static str,
            bool,
            &'static [i64],
            i64,
        );
        let cases: &[Case] = &[
            // 3.79 + 0.50 IPv4.
            (Hetzner, "fsn1", "cx22", false, &[37_900, 5_000], 42_900),
            // + 20 % backups of 3.79 = 0.758.
            (
                Hetzner,
                "fsn1",
                "cx22",
                true,
                &[37_900, 5_000, 7_580],
                50_480,
            ),
            (
                Hetzner,
                "hel1",
                "cax21",
                true,
                &[64_900, 5_000, 12_980],
                82_880,
            ),
            (
                Scaleway,
                "nl-ams-1",
                "DEV1-S",
                false,
                &[64_200, 29_200],
                93_400,
            ),
            // IPv4 included: the server alone.
            (OpenStack, "GRA11", "d2-2", false, &[38_800], 38_800),
            (
                Exoscale,
                "de-fra-1",
                "standard.small",
                false,
                &[189_400],
                189_400,
            ),
            (Contabo, "EU", "V91", false, &[45_000], 45_000),
            // 12 USD at 0.8532.
            (
                Lightsail,
                "eu-west-1",
                "small_3_0",
                false,
                &[102_384],
                102_384,
            ),
        ];
        for &(provider, region, size, backups, lines, total) in cases {
            let got = estimate(&catalog(provider), &request(region, size, backups)).unwrap();
            let monthly: Vec<i64> = got.items.iter().map(|i| i.monthly_eur.0).collect();
            assert_eq!(
                (monthly.as_slice(), got.monthly_total_eur.0),
                (lines, total),
                "{provider} {size}"
            );
            assert_eq!(got.items[0].item, LineKind::Server);
        }
    }

    #[test]
    fn what_cannot_be_bought_has_a_code() {
        use ProviderKind::*;
        let cases = [
            (Hetzner, "mars1", "cx22", false, "unknown_region"),
            (Hetzner, "fsn1", "cx999", false, "unknown_size"),
            (Scaleway, "pl-waw-1", "DEV1-XL", false, "size_not_in_region"),
            (OpenStack, "GRA11", "d2-2", true, "backups_not_offered"),
        ];
        for (provider, region, size, backups, code) in cases {
            let refused =
                estimate(&catalog(provider), &request(region, size, backups)).unwrap_err();
            assert_eq!(refused.code(), code, "{refused}");
        }
        assert_eq!(
            crate::catalog::provider("digitalocean").unwrap_err().code(),
            "unknown_provider"
        );
    }
}
