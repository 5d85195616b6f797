//! What each provider sells and for how much: regions, sizes (vCPUs,
//! memory, disk, architecture), the default image, monthly and hourly EUR
//! per region, whether those are net or gross of VAT, what a public IPv4
//! and backups add, and where the figures came from (`source`, `as_of`,
//! and for dollar prices the exchange rate and its date). Hetzner's comes
//! live from its API ([`hetzner_live`]); the others from dated tables in
//! this repository ([`tables`]). Lookups answer with stable codes.

pub mod estimate;
pub mod hetzner_live;
pub mod money;
pub mod tables;

pub use money::Eur;

use crate::driver::ProviderKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Whether prices include VAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VatBasis {
    /// Before VAT (what the provider bills a business in the EU before tax).
    Net,
    Gross,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86,
    Arm,
}

#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub id: String,
    pub name: String,
    /// ISO 3166 country code.
    pub country: String,
}

/// A size's price in one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Price {
    pub region: String,
    pub monthly_eur: Eur,
    /// `None` where the provider bills by the month only (Contabo).
    pub hourly_eur: Option<Eur>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub id: String,
    pub vcpus: u32,
    pub memory_gb: f64,
    pub disk_gb: u32,
    pub architecture: Arch,
    /// One per region the size is offered in.
    pub prices: Vec<Price>,
}

/// What a public IPv4 costs on top of a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ipv4Cost {
    /// In the server's price.
    Included,
    /// Per region: monthly EUR.
    Charged { monthly_eur: BTreeMap<String, Eur> },
}

/// What backups cost, where the provider sells them as a line of a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupCost {
    /// A share of the server's price (Hetzner: 20 %), in hundredths of a percent.
    Percent { hundredths: i64 },
    /// Not sold as a flat line here (snapshots billed per GB, or none).
    NotOffered,
}

/// Dollar prices converted at this rate.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub from: &'static str,
    /// EUR per unit of `from`.
    pub rate: Eur,
    pub date: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub provider: ProviderKind,
    pub name: &'static str,
    /// Whether Slipway has a driver to create servers there.
    pub driver: bool,
    /// `live` (the provider's API, cached) or `table` (this repository).
    pub origin: Origin,
    pub source: String,
    pub as_of: String,
    pub vat: VatBasis,
    pub exchange: Option<Exchange>,
    pub default_image: String,
    pub regions: Vec<Region>,
    pub sizes: Vec<Size>,
    pub ipv4: Ipv4Cost,
    pub backups: BackupCost,
    /// What else a reader should know (disk billed apart, month-only billing).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Live,
    Table,
}

impl Serialize for ProviderKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A lookup that failed, with its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "unknown provider `{0}`; known: hetzner, scaleway, openstack, exoscale, contabo, lightsail"
    )]
    UnknownProvider(String),
    #[error("{provider} has no region `{region}`")]
    UnknownRegion {
        provider: &'static str,
        region: String,
    },
    #[error("{provider} has no size `{size}`")]
    UnknownSize {
        provider: &'static str,
        size: String,
    },
    #[error("{provider} does not offer size `{size}` in region `{region}`")]
    SizeNotInRegion {
        provider: &'static str,
        size: String,
        region: String,
    },
    #[error("{provider} sells no backups as a line of a server (snapshots are billed apart)")]
    BackupsNotOffered { provider: &'static str },
}

impl CatalogError {
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::UnknownProvider(_) => "unknown_provider",
            CatalogError::UnknownRegion { .. } => "unknown_region",
            CatalogError::UnknownSize { .. } => "unknown_size",
            CatalogError::SizeNotInRegion { .. } => "size_not_in_region",
            CatalogError::BackupsNotOffered { .. } => "backups_not_offered",
        }
    }
}

pub fn provider(id: &str) -> Result<ProviderKind, CatalogError> {
    ProviderKind::parse(id).ok_or_else(|| CatalogError::UnknownProvider(id.to_owned()))
}

impl Catalog {
    /// The size and its price in `region`, or why not.
    pub fn offer(&self, region: &str, size: &str) -> Result<(&Size, &Price), CatalogError> {
        let provider = self.name;
        if !self.regions.iter().any(|r| r.id == region) {
            return Err(CatalogError::UnknownRegion {
                provider,
                region: region.to_owned(),
            });
        }
        let found =
            self.sizes
                .iter()
                .find(|s| s.id == size)
                .ok_or_else(|| CatalogError::UnknownSize {
                    provider,
                    size: size.to_owned(),
                })?;
        let price = found
            .prices
            .iter()
            .find(|p| p.region == region)
            .ok_or_else(|| CatalogError::SizeNotInRegion {
                provider,
                size: size.to_owned(),
                region: region.to_owned(),
            })?;
        Ok((found, price))
    }
}
