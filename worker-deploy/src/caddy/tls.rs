//! HTTPS for the apps, with certificates from Caddy's internal CA (local
//! mode) or an ACME CA (real names; see `slipway_shared::tls`).
//!
//! Layout (`NAME` is the apps server's name):
//!
//! ```text
//! apps.http.servers.NAME-tls = { listen: [HTTPS ADDR], automatic_https: {disable: true},
//!   tls_connection_policies: [{}],
//!   routes: [{@id: NAME-tls-drain, …}, {@id: NAME-tls-proxy, handle: [{reverse_proxy to the apps server}]}] }
//! apps.pki.certificate_authorities.local.install_trust = false
//! apps.tls.automation.policies += {@id: NAME-tls-policy, subjects: HOSTS, issuers: [internal | acme]}
//! apps.tls.certificates.automate = HOSTS
//! ```
//!
//! The TLS server terminates TLS and hands every request, Host header
//! unchanged, to the apps server, so the app routes exist once and a stop
//! or an upstream switch applies to both schemes. Certificates are issued
//! for the known host names only (no on-demand issuance): each published
//! host is added to the policy's subjects and to the `automate` list. Caddy
//! refuses a subject listed twice, so hosts are read first and only the
//! missing ones appended; a policy is never left with no subjects, which
//! would make it apply to every name. The internal root is never installed
//! into the host's trust store; clients fetch it from `/pki/ca/local`.

use super::drain::drain_route;
use super::{CaddyAdmin, CaddyError};
use serde_json::{json, Value};

fn tls_server(server: &str) -> String {
    format!("{server}-tls")
}

fn policy_id(server: &str) -> String {
    format!("{server}-tls-policy")
}

fn tls_server_json(server: &str, https_addr: &str, http_addr: &str) -> Value {
    json!({
        "listen": [https_addr],
        "automatic_https": {"disable": true},
        "tls_connection_policies": [{}],
        "routes": [
            drain_route(&tls_server(server)),
            {
                "@id": format!("{}-proxy", tls_server(server)),
                "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": http_addr}]}],
            },
        ],
    })
}

impl CaddyAdmin {
    /// Makes the TLS server of `server` listen on `https_addr` in front of
    /// the apps server on `http_addr`, and the internal CA stay out of the
    /// system trust store. Returns whether anything changed.
    pub async fn ensure_tls_server(
        &self,
        server: &str,
        https_addr: &str,
        http_addr: &str,
    ) -> Result<bool, CaddyError> {
        let mut changed = self.keep_out_of_trust_store().await?;
        let path = format!("/config/apps/http/servers/{}", tls_server(server));
        let wanted = tls_server_json(server, https_addr, http_addr);
        match self.get_opt(&path).await? {
            Some(current) if current == wanted => {}
            Some(_) => {
                self.send("PATCH", &path, Some(wanted)).await?;
                changed = true;
            }
            None => {
                self.send("PUT", &path, Some(wanted)).await?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Has certificates from `issuer` (a Caddy issuer module: the internal
    /// CA or ACME) issued for `hosts` (those not already covered).
    pub async fn add_tls_hosts(
        &self,
        server: &str,
        hosts: &[String],
        issuer: &Value,
    ) -> Result<(), CaddyError> {
        self.keep_out_of_trust_store().await?;
        let policy = policy_id(server);
        let subjects_path = format!("/id/{policy}/subjects");
        match self.get_opt(&format!("/id/{policy}")).await? {
            None => {
                let wanted = json!({"@id": policy, "subjects": hosts,
                                    "issuers": [issuer]});
                let policies = "/config/apps/tls/automation/policies";
                if self.get_opt(policies).await?.is_some() {
                    self.send("POST", policies, Some(wanted)).await?;
                } else {
                    self.send("PUT", policies, Some(json!([wanted]))).await?;
                }
            }
            Some(current) => {
                // The target's issuer setting changed: the policy follows.
                if current["issuers"] != json!([issuer]) {
                    let path = format!("/id/{policy}/issuers");
                    self.send("PATCH", &path, Some(json!([issuer]))).await?;
                }
                for host in missing(&current["subjects"], hosts) {
                    self.send("POST", &subjects_path, Some(json!(host))).await?;
                }
            }
        }
        let automate = "/config/apps/tls/certificates/automate";
        match self.get_opt(automate).await? {
            None => {
                self.send("PUT", automate, Some(json!(hosts))).await?;
            }
            Some(current) => {
                for host in missing(&current, hosts) {
                    self.send("POST", automate, Some(json!(host))).await?;
                }
            }
        }
        Ok(())
    }

    /// Stops managing certificates for `hosts` (an app destroyed).
    pub async fn remove_tls_hosts(&self, server: &str, hosts: &[String]) -> Result<(), CaddyError> {
        let policy = format!("/id/{}", policy_id(server));
        if let Some(current) = self.get_opt(&policy).await? {
            let kept = without(&current["subjects"], hosts);
            if kept.is_empty() {
                self.send("DELETE", &policy, None).await?;
            } else if kept.len() != current["subjects"].as_array().map_or(0, Vec::len) {
                self.send("PATCH", &format!("{policy}/subjects"), Some(json!(kept)))
                    .await?;
            }
        }
        let automate = "/config/apps/tls/certificates/automate";
        if let Some(current) = self.get_opt(automate).await? {
            let kept = without(&current, hosts);
            if kept.len() != current.as_array().map_or(0, Vec::len) {
                self.send("PATCH", automate, Some(json!(kept))).await?;
            }
        }
        Ok(())
    }

    /// Makes Caddy's internal CA stay out of the host's trust store; true
    /// when that had to be set. Done before anything can bring the CA up
    /// (a policy, a read of its root): with the default, Caddy would add
    /// its root to the system's trusted certificates on its first use.
    async fn keep_out_of_trust_store(&self) -> Result<bool, CaddyError> {
        let trust = "/config/apps/pki/certificate_authorities/local/install_trust";
        if self.get_opt(trust).await? == Some(json!(false)) {
            return Ok(false);
        }
        let pki = "/config/apps/pki";
        let wanted = json!({"certificate_authorities": {"local": {"install_trust": false}}});
        match self.get_opt(pki).await? {
            None => self.send("PUT", pki, Some(wanted)).await?,
            Some(_) => self.send("PATCH", pki, Some(wanted)).await?,
        };
        Ok(true)
    }

    /// The PEM root certificate of Caddy's internal CA (`local`), which
    /// clients trust to verify the apps' certificates.
    pub async fn local_ca_root(&self) -> Result<String, CaddyError> {
        self.keep_out_of_trust_store().await?;
        let path = "/pki/ca/local";
        let answer = self.send("GET", path, None).await?;
        answer["root_certificate"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| CaddyError::BadAnswer {
                path: path.into(),
                detail: "no root_certificate".into(),
            })
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn missing(current: &Value, hosts: &[String]) -> Vec<String> {
    let have = strings(current);
    let mut out: Vec<String> = Vec::new();
    for host in hosts {
        if !have.contains(host) && !out.contains(host) {
            out.push(host.clone());
        }
    }
    out
}

fn without(current: &Value, hosts: &[String]) -> Vec<String> {
    strings(current)
        .into_iter()
        .filter(|h| !hosts.contains(h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_hosts_are_added_and_removal_keeps_the_rest() {
        let current = json!(["a.localhost", "b.localhost"]);
        let hosts = vec!["b.localhost".to_string(), "c.localhost".to_string()];
        assert_eq!(missing(&current, &hosts), vec!["c.localhost".to_string()]);
        assert_eq!(without(&current, &hosts), vec!["a.localhost".to_string()]);
        assert_eq!(missing(&Value::Null, &hosts), hosts);
    }
}
