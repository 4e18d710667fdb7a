//! Which `jku` (JWK Set URL, RFC 7515 §4.1.2) of an A2A card signature the registry may fetch:
//! those under a configured trusted prefix, compared as URLs, not as strings. Both are parsed
//! (WHATWG rules: `.` and `..` segments resolved, `%2e%2e` counted as `..`, host lowercased,
//! default port made explicit); scheme, host and port must be equal and the prefix's path
//! segments must begin the URL's. So `https://keys.example.com/trusted` admits
//! `/trusted/jwks.json` but neither `/trusted-evil`, `/trusted/../admin-jwks`, another port, nor
//! `keys.example.com.evil.net`. What is fetched is the URL as checked, never the text given.

use url::{Host, Url};

/// A URL prefix under which key sets may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPrefix {
    scheme: String,
    host: Host<String>,
    port: u16,
    /// The prefix's path segments (a trailing `/` adds none).
    segments: Vec<String>,
}

impl std::str::FromStr for TrustedPrefix {
    type Err = String;

    /// An `http(s)` URL with a host and no credentials, query or fragment.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{text}` is not a trusted `jku` prefix: {why}");
        let url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad("it must be an https (or http) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not carry credentials, a query or a fragment"));
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(bad("it must name a host"));
        };
        let segments = segments(&url).ok_or_else(|| bad("its path must not hold encoded `/`, `\\` or `.`"))?;
        Ok(Self { scheme: url.scheme().to_owned(), host: host.to_owned(), port, segments })
    }
}

impl TrustedPrefix {
    /// Whether `url` lies under this prefix.
    fn admits(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host().is_some_and(|h| h.to_owned() == self.host)
            && url.port_or_known_default() == Some(self.port)
            && segments(url).is_some_and(|s| s.starts_with(&self.segments))
    }
}

/// The URL to fetch for `jku` when one of `trusted` admits it (credentials and fragment never
/// count and are refused or dropped); `None` when none does, or it is not a URL.
pub fn trusted_url(jku: &str, trusted: &[TrustedPrefix]) -> Option<Url> {
    let mut url = Url::parse(jku).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.set_fragment(None);
    trusted.iter().any(|prefix| prefix.admits(&url)).then_some(url)
}

/// The path's non-empty segments as the parser left them; `None` when one still holds an
/// encoded `/`, `\` or `.`, which a key server could decode into a path of its own choosing.
fn segments(url: &Url) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for segment in url.path_segments().into_iter().flatten().filter(|s| !s.is_empty()) {
        let lower = segment.to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|e| lower.contains(e)) {
            return None;
        }
        out.push(segment.to_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(list: &[&str]) -> Vec<TrustedPrefix> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn urls_under_the_prefix_are_trusted_as_parsed() {
        let trusted = prefixes(&["https://keys.example.com/trusted"]);
        for ok in [
            "https://keys.example.com/trusted/jwks.json",
            "https://keys.example.com/trusted",
            "https://KEYS.example.com:443/trusted/a/b/jwks.json",
            "https://keys.example.com/trusted/a/../jwks.json",
            "https://keys.example.com/trusted/jwks.json?v=2#frag",
        ] {
            assert!(trusted_url(ok, &trusted).is_some(), "{ok}");
        }
        let fetched = trusted_url("https://keys.example.com/trusted/a/%2E%2e/jwks.json", &trusted).unwrap();
        assert_eq!(
            fetched.as_str(),
            "https://keys.example.com/trusted/jwks.json",
            "what is fetched is what was checked"
        );
    }

    #[test]
    fn look_alike_urls_are_not_trusted() {
        let trusted = prefixes(&["https://keys.example.com/trusted", "http://127.0.0.1:4000/keys/"]);
        for bad in [
            "https://keys.example.com/trusted-evil/jwks.json",
            "https://keys.example.com/trusted/../admin-jwks",
            "https://keys.example.com/trusted/%2e%2e/admin-jwks",
            "https://keys.example.com/trusted/.%2E/admin-jwks",
            "https://keys.example.com/trusted/..%2fadmin-jwks",
            "https://keys.example.com/trusted/..%5Cadmin-jwks",
            "https://keys.example.com/trusted\\..\\admin-jwks",
            "https://keys.example.com:8443/trusted/jwks.json",
            "http://keys.example.com/trusted/jwks.json",
            "https://keys.example.com.evil.net/trusted/jwks.json",
            "https://keys.example.com@evil.net/trusted/jwks.json",
            "https://user:pw@keys.example.com/trusted/jwks.json",
            "http://127.0.0.1:40001/keys/jwks.json",
            "http://127.0.0.1:4000/keysevil/jwks.json",
            "http://127.0.0.1:4000/jwks.json",
            "not a url",
            "/trusted/jwks.json",
        ] {
            assert!(trusted_url(bad, &trusted).is_none(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_http_urls_with_a_host_and_nothing_else() {
        assert!("https://keys.example.com".parse::<TrustedPrefix>().is_ok());
        for bad in [
            "keys.example.com/trusted",
            "ftp://keys.example.com/",
            "https://u:p@keys.example.com/",
            "https://k.example/?a",
        ] {
            assert!(bad.parse::<TrustedPrefix>().is_err(), "{bad}");
        }
    }
}
