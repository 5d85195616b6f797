//! The cloud catalog: providers, their regions and sizes with monthly
//! prices in EUR (servers and installs come with their API).

use super::Ctx;
use crate::error::Result;
use crate::output::or_dash;
use serde_json::Value;

pub async fn providers(ctx: &Ctx, provider: Option<&str>) -> Result<()> {
    let Some(provider) = provider else {
        return ctx
            .list(
                "/v1/providers",
                &[
                    "PROVIDER",
                    "NAME",
                    "REGIONS",
                    "SIZES",
                    "CREATE",
                    "PRICES FROM",
                ],
                |p| {
                    let count = |key: &str| p[key].as_array().map_or(0, Vec::len).to_string();
                    vec![
                        or_dash(p["provider"].as_str()),
                        or_dash(p["name"].as_str()),
                        count("regions"),
                        count("sizes"),
                        if p["driver"] == true {
                            "yes"
                        } else {
                            "not yet"
                        }
                        .to_owned(),
                        format!(
                            "{} ({})",
                            or_dash(p["source"].as_str()),
                            or_dash(p["as_of"].as_str())
                        ),
                    ]
                },
            )
            .await;
    };
    let catalog: Value = ctx
        .client
        .get(&format!(
            "/v1/providers/{}",
            crate::client::segment(provider)
        ))
        .await?;
    if ctx.out.json {
        ctx.out.json(&catalog);
        return Ok(());
    }
    let mut rows = Vec::new();
    for size in catalog["sizes"].as_array().into_iter().flatten() {
        for price in size["prices"].as_array().into_iter().flatten() {
            rows.push(vec![
                or_dash(size["id"].as_str()),
                size["vcpus"].to_string(),
                format!("{} GB", size["memory_gb"]),
                format!("{} GB", size["disk_gb"]),
                or_dash(price["region"].as_str()),
                format!("{:.2}", price["monthly_eur"].as_f64().unwrap_or_default()),
            ]);
        }
    }
    ctx.out.table(
        &["SIZE", "VCPUS", "MEMORY", "DISK", "REGION", "EUR/MONTH"],
        &rows,
    );
    println!(
        "prices {} of VAT, from {} as of {}",
        or_dash(catalog["vat"].as_str()),
        or_dash(catalog["source"].as_str()),
        or_dash(catalog["as_of"].as_str())
    );
    Ok(())
}
