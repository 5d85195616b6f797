//! A build that failed because the network dropped under a package
//! manager: a registry connection reset mid-download, a read that timed
//! out, a name that did not resolve for a moment (CI saw `npm ERR! code
//! ECONNRESET` fail a yarn example's build once). Nothing is wrong with the
//! app, and the next attempt builds on the cached layers, so it is retried
//! (the job's retry tiers, then its attempts run out) rather than failed.
//! A connection *refused* is not among them: nothing listens where the
//! build was told to look (a mistyped proxy), which another try does not
//! fix.

/// What npm, pip, Go, apt and cargo print when the connection dropped or
/// stalled (lowercase).
const DROPPED: &[&str] = &[
    "econnreset",
    "etimedout",
    "eai_again",
    "socket hang up",
    "connection reset by peer",
    "i/o timeout",
    "readtimeouterror",
    "temporary failure in name resolution",
    "temporary failure resolving",
    "spurious network error",
];

/// Whether a failed build's last lines show the network dropping.
pub fn dropped(tail: &str) -> bool {
    super::tail::mentions(tail, DROPPED, None)
}

#[cfg(test)]
mod tests {
    use super::dropped;

    #[test]
    fn dropped_connections_are_retried_and_refused_ones_are_not() {
        let table = [
            ("npm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET", true),
            ("npm ERR! code ETIMEDOUT", true),
            ("pip._vendor.urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='pypi.org', port=443): Read timed out.", true),
            ("go: example.com/x@v1.0.0: Get \"https://proxy.golang.org/x\": dial tcp: lookup proxy.golang.org: i/o timeout", true),
            ("W: Temporary failure resolving 'deb.debian.org'", true),
            ("go: example.com/absent@v1.0.0: dial tcp 127.0.0.1:9: connect: connection refused", false),
            ("npm ERR! missing script: build", false),
            ("ERROR: Could not find a version that satisfies the requirement flask==99", false),
        ];
        for (tail, retried) in table {
            assert_eq!(dropped(tail), retried, "{tail}");
        }
    }
}
