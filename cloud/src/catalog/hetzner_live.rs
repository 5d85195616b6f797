//! Hetzner's catalog from its own API: locations (`/locations`), server
//! types with their net prices per location (`/server_types`), and the
//! primary IPv4 and backup prices (`/pricing`); cached per account for a
//! while, since prices change rarely and every read costs a rate-limit
//! token.

use super::{Arch, BackupCost, Catalog, Eur, Ipv4Cost, Origin, Price, Region, Size, VatBasis};
use crate::driver::ProviderKind;
use crate::error::CloudError;
use crate::hetzner::Hetzner;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The catalog from the three answers; `as_of` is when they were read.
pub fn from_api(
    locations: &[Value],
    server_types: &[Value],
    pricing: &Value,
    as_of: &str,
    source: &str,
) -> Catalog {
    let net =
        |price: &Value, field: &str| Eur::parse(price[field]["net"].as_str().unwrap_or_default());
    let sizes = server_types
        .iter()
        .filter(|t| t["deprecated"] != true && t["deprecation"].is_null())
        .filter_map(|t| {
            let prices: Vec<Price> = t["prices"]
                .as_array()?
                .iter()
                .filter_map(|p| {
                    Some(Price {
                        region: p["location"].as_str()?.to_owned(),
                        monthly_eur: net(p, "price_monthly")?,
                        hourly_eur: net(p, "price_hourly"),
                    })
                })
                .collect();
            Some(Size {
                id: t["name"].as_str()?.to_owned(),
                vcpus: u32::try_from(t["cores"].as_u64()?).ok()?,
                memory_gb: t["memory"].as_f64()?,
                disk_gb: u32::try_from(t["disk"].as_u64()?).ok()?,
                architecture: if t["architecture"] == "arm" {
                    Arch::Arm
                } else {
                    Arch::X86
                },
                prices,
            })
        })
        .collect();
    let ipv4 = pricing["primary_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["type"] == "ipv4")
        .map(|p| {
            let per_location = p["prices"].as_array().into_iter().flatten();
            Ipv4Cost::Charged {
                monthly_eur: per_location
                    .filter_map(|l| {
                        Some((l["location"].as_str()?.to_owned(), net(l, "price_monthly")?))
                    })
                    .collect(),
            }
        })
        .unwrap_or(Ipv4Cost::Included);
    let backups = pricing["server_backup"]["percentage"]
        .as_str()
        .and_then(Eur::parse)
        .map_or(BackupCost::NotOffered, |p| BackupCost::Percent {
            hundredths: p.0 / 100,
        });
    Catalog {
        provider: ProviderKind::Hetzner,
        name: ProviderKind::Hetzner.display_name(),
        driver: true,
        origin: Origin::Live,
        source: source.to_owned(),
        as_of: as_of.to_owned(),
        vat: VatBasis::Net,
        exchange: None,
        default_image: "debian-12".into(),
        regions: locations
            .iter()
            .filter_map(|l| {
                Some(Region {
                    id: l["name"].as_str()?.to_owned(),
                    name: l["city"].as_str().unwrap_or_default().to_owned(),
                    country: l["country"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect(),
        sizes,
        ipv4,
        backups,
        notes: vec![format!(
            "Read from the Hetzner Cloud API; VAT ({}%) not included.",
            pricing["vat_rate"].as_str().unwrap_or("?")
        )],
    }
}

/// Reads the three answers through `client`.
pub async fn fetch(client: &Hetzner, endpoint: &str) -> Result<Catalog, CloudError> {
    let locations = client.locations().await?;
    let server_types = client.server_types().await?;
    let pricing = client.pricing().await?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let source = format!("{endpoint} (/locations, /server_types, /pricing)");
    Ok(from_api(&locations, &server_types, &pricing, &now, &source))
}

/// Each key's catalog and when it was read.
type Kept = HashMap<String, (Instant, Arc<Catalog>)>;

/// Catalogs read live, per account, kept for `ttl`.
#[derive(Clone)]
pub struct LiveCache {
    ttl: Duration,
    kept: Arc<Mutex<Kept>>,
}

impl LiveCache {
    pub fn new(ttl: Duration) -> LiveCache {
        LiveCache {
            ttl,
            kept: Arc::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Catalog>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, c)| c.clone())
    }

    pub fn put(&self, key: &str, catalog: Catalog) -> Arc<Catalog> {
        let catalog = Arc::new(catalog);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, (at, _)| at.elapsed() < self.ttl);
        kept.insert(key.to_owned(), (Instant::now(), catalog.clone()));
        catalog
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_come_per_location_from_the_answers() {
        let locations = [
            json!({"name": "fsn1", "city": "Falkenstein", "country": "DE"}),
            json!({"name": "ash", "city": "Ashburn, VA", "country": "US"}),
        ];
        let types = [
            json!({"name": "cpx11", "cores": 2, "memory": 2.0, "disk": 40, "architecture": "x86", "deprecated": false, "deprecation": null,
                   "prices": [{"location": "fsn1", "price_hourly": {"net": "0.0070000000", "gross": "0.0083"}, "price_monthly": {"net": "4.3500000000", "gross": "5.1765"}},
                              {"location": "ash", "price_hourly": {"net": "0.0080000000", "gross": "0.0095"}, "price_monthly": {"net": "4.9900000000", "gross": "5.9381"}}]}),
            json!({"name": "cx11", "cores": 1, "memory": 2.0, "disk": 20, "architecture": "x86", "deprecated": true, "prices": []}),
        ];
        let pricing = json!({"vat_rate": "19.00", "server_backup": {"percentage": "20.0000000000"},
            "primary_ips": [{"type": "ipv4", "prices": [{"location": "fsn1", "price_monthly": {"net": "0.5000000000"}}, {"location": "ash", "price_monthly": {"net": "0.6000000000"}}]}]});
        let catalog = from_api(&locations, &types, &pricing, "2026-12-05T12:00:00Z", "fake");
        assert_eq!(catalog.origin, Origin::Live);
        assert_eq!(catalog.sizes.len(), 1, "deprecated types are not for sale");
        let (_, ash) = catalog.offer("ash", "cpx11").unwrap();
        assert_eq!(
            (ash.monthly_eur, ash.hourly_eur),
            (Eur(49_900), Some(Eur(80)))
        );
        assert_eq!(catalog.backups, BackupCost::Percent { hundredths: 2000 });
        let estimate = super::super::estimate::estimate(
            &catalog,
            &super::super::estimate::EstimateRequest {
                region: "ash",
                size: "cpx11",
                backups: true,
            },
        )
        .unwrap();
        // 4.99 + 0.60 + 0.998.
        assert_eq!(estimate.monthly_total_eur, Eur(65_880));
    }
}
