//! The egress policy: which addresses the gateway may call. Registered addresses are chosen by
//! whoever registers an agent, so the gateway must not become a way into the registry's own
//! network: the host is resolved first and every address it resolves to is checked; the call
//! then goes to the checked address (no second lookup an attacker's DNS could answer
//! differently). Link-local and cloud-metadata addresses are refused unless allowed.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use agent_registry_core::task::InvokeError;
use ipnet::IpNet;

/// Refused unless `--gateway-allow` names them: link-local (where cloud metadata services
/// answer: 169.254.169.254), AWS's IPv6 metadata address, Alibaba's metadata address, and the
/// unspecified addresses (which reach this host).
const DEFAULT_DENY: &[&str] =
    &["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128"];

/// One entry of `--gateway-allow` / `--gateway-deny`: a CIDR block, an address, or a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Net(IpNet),
    Host(String),
}

impl FromStr for Rule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(ip)));
        }
        let host = text.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(format!("`{text}` is neither a CIDR block, an IP address nor a host name"));
        }
        Ok(Self::Host(host))
    }
}

impl Rule {
    fn matches(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Self::Net(net) => net.contains(&ip),
            Self::Host(name) => host.eq_ignore_ascii_case(name),
        }
    }
}

/// Which addresses outbound calls may reach: `deny` first, then `allow`, then the default deny.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
}

impl EgressPolicy {
    /// Whether `ip` (which `host` resolved to) may be called; the refusal names the address.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), InvokeError> {
        // An IPv4 address written as IPv6 (::ffff:169.254.169.254) is the same address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let refused = |why: &str| InvokeError::Refused { detail: format!("{host} resolves to {ip}, {why}") };
        if self.deny.iter().any(|r| r.matches(host, ip)) {
            return Err(refused("which --gateway-deny refuses"));
        }
        if self.allow.iter().any(|r| r.matches(host, ip)) {
            return Ok(());
        }
        let default_denied = DEFAULT_DENY.iter().filter_map(|n| n.parse::<IpNet>().ok()).any(|n| n.contains(&ip));
        if default_denied {
            return Err(refused("a link-local or cloud-metadata address the gateway never calls unless allowed"));
        }
        Ok(())
    }

    /// Resolves `host` and checks every address it resolves to; returns the one to connect to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, InvokeError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((bare, port)))
                .await
                .map_err(|_| unreachable(format!("resolving {bare} took too long")))?
                .map_err(|e| unreachable(format!("cannot resolve {bare}: {e}")))?
                .collect(),
        };
        for address in &addresses {
            self.check(bare, address.ip())?;
        }
        addresses.first().copied().ok_or_else(|| unreachable(format!("{bare} resolves to no address")))
    }
}

fn unreachable(detail: String) -> InvokeError {
    InvokeError::NotAccepted { code: agent_registry_core::error::catalogue::AGENT_UNREACHABLE, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_unless_allowed() {
        let policy = EgressPolicy::default();
        assert!(policy.check("x", ip("169.254.169.254")).is_err());
        assert!(policy.check("x", ip("::ffff:169.254.169.254")).is_err());
        assert!(policy.check("x", ip("fd00:ec2::254")).is_err());
        assert!(policy.check("x", ip("127.0.0.1")).is_ok());
        let allowed =
            EgressPolicy { allow: vec!["169.254.0.0/16".parse().unwrap_or(Rule::Host("-".into()))], ..policy };
        assert!(allowed.check("x", ip("169.254.169.254")).is_ok());
    }

    #[test]
    fn deny_wins_over_allow_and_hosts_match_by_name() {
        let rule = |t: &str| t.parse::<Rule>().unwrap_or(Rule::Host("-".into()));
        let policy =
            EgressPolicy { allow: vec![rule("10.0.0.0/8")], deny: vec![rule("10.1.0.0/16"), rule("Evil.example")] };
        assert!(policy.check("a", ip("10.2.0.1")).is_ok());
        assert!(policy.check("a", ip("10.1.0.1")).is_err());
        assert!(policy.check("evil.example", ip("8.8.8.8")).is_err());
        assert!("not a host!".parse::<Rule>().is_err());
    }
}
