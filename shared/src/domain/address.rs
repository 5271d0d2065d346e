//! Recipient addresses: checked at ingest and again at send, and masked whenever they are shown.

use email_address::{EmailAddress, Options};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

const MAX_EMAIL_LENGTH: usize = 254;

/// An email address must be a bare addr-spec: no display name, no domain literal, no CR/LF (header
/// injection), and a domain with a dot.
pub fn check_email(address: &str) -> Result<(), &'static str> {
    if address.contains(['\r', '\n']) {
        return Err("must not contain line breaks");
    }
    if address.len() > MAX_EMAIL_LENGTH {
        return Err("must be at most 254 characters");
    }
    let options = Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_required_tld();
    EmailAddress::parse_with_options(address, options)
        .map(|_| ())
        .map_err(|_| "must be an email address such as ada@example.com")
}

/// A phone number in E.164 syntax: `+`, a non-zero digit, then 1 to 14 digits.
pub fn check_phone(number: &str) -> Result<(), &'static str> {
    let digits = number.strip_prefix('+').unwrap_or("");
    let valid = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(())
    } else {
        Err("must be an E.164 number such as +15555550100")
    }
}

/// The country (ISO 3166-1 alpha-2, upper case) an E.164 number is in, by libphonenumber's metadata. A
/// number its patterns do not place (an unassigned range) counts as the main country of its calling
/// code (`+1` is the US), which keeps it inside the allow-list decision; `None` for an unknown code.
pub fn phone_country(number: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, number).ok()?;
    if let Some(id) = parsed.country().id() {
        return Some(id.as_ref().to_owned());
    }
    let regions = phonenumber::metadata::DATABASE.by_code(&parsed.country().code())?;
    regions.first().map(|region| region.id().to_owned())
}

/// The destination countries SMS may go to: `*` for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountryAllowList {
    All,
    Only(std::collections::BTreeSet<String>),
}

impl CountryAllowList {
    /// Parses `US,CA,GB` (ISO 3166-1 alpha-2 codes libphonenumber knows) or `*`.
    pub fn parse(list: &str) -> Result<Self, String> {
        if list.trim() == "*" {
            return Ok(Self::All);
        }
        let mut countries = std::collections::BTreeSet::new();
        for code in list.split(',').map(str::trim).filter(|code| !code.is_empty()) {
            let code = code.to_ascii_uppercase();
            if code.parse::<phonenumber::country::Id>().is_err() {
                return Err(format!("{code} is not an ISO 3166-1 alpha-2 country code"));
            }
            countries.insert(code);
        }
        if countries.is_empty() {
            return Err("name at least one country, or * for all".into());
        }
        Ok(Self::Only(countries))
    }

    /// `Err` with why, when `number` is not in an allowed country.
    pub fn check(&self, number: &str) -> Result<(), String> {
        let Self::Only(countries) = self else {
            return Ok(());
        };
        match phone_country(number) {
            Some(country) if countries.contains(&country) => Ok(()),
            Some(country) => Err(format!(
                "SMS to {country} is not allowed; allowed countries: {}",
                countries
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Err("the number's country is unknown, so it is not in the allowed countries".into()),
        }
    }
}

impl std::fmt::Display for CountryAllowList {
    /// As [`CountryAllowList::parse`] reads it: `*`, or the codes in order, comma-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(countries) => {
                f.write_str(&countries.iter().map(String::as_str).collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// Where webhooks may point. Slack's allow `https://` to the allow-listed hosts only; a tenant's own
/// endpoints any public host (the address a name resolves to is checked again when connecting). The local
/// stack also allows loopback so its capture sink can stand in for Slack and for a tenant's endpoint.
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    allowed_hosts: Vec<String>,
    any_public_host: bool,
    allow_loopback: bool,
}

impl WebhookPolicy {
    pub fn new(allowed_hosts: impl IntoIterator<Item = String>, allow_loopback: bool) -> Self {
        let allowed_hosts = allowed_hosts
            .into_iter()
            .map(|host| host.to_ascii_lowercase())
            .collect();
        Self {
            allowed_hosts,
            any_public_host: false,
            allow_loopback,
        }
    }

    /// Any host that is not internal: for endpoints a tenant registers.
    pub fn any_public_host(allow_loopback: bool) -> Self {
        Self {
            allowed_hosts: Vec::new(),
            any_public_host: true,
            allow_loopback,
        }
    }

    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// The parsed URL, or why it is refused.
    pub fn check(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|_| "must be an absolute https:// URL".to_owned())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let scheme_ok = |allow_http: bool| url.scheme() == "https" || (allow_http && url.scheme() == "http");
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip), scheme_ok(self.allow_loopback))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip), scheme_ok(self.allow_loopback))?,
            Some(Host::Domain(domain)) if domain.eq_ignore_ascii_case("localhost") && self.allow_loopback => {
                if !scheme_ok(true) {
                    return Err("must use http:// or https://".into());
                }
            }
            // Names that resolve to loopback by definition (RFC 6761), refused before any lookup.
            Some(Host::Domain(domain)) if is_loopback_name(domain) && !self.allow_loopback => {
                return Err(
                    "must not point at a loopback, private, link-local or unspecified address".into(),
                );
            }
            Some(Host::Domain(domain)) => {
                if !scheme_ok(false) {
                    return Err("must use https://".into());
                }
                if !self.any_public_host && !self.allowed_hosts.iter().any(|allowed| allowed == domain) {
                    return Err(format!(
                        "host {domain} is not allowed; allowed hosts: {}",
                        self.allowed_hosts.join(", ")
                    ));
                }
            }
            None => return Err("must name a host".into()),
        }
        Ok(url)
    }

    fn check_ip(&self, ip: IpAddr, scheme_ok: bool) -> Result<(), String> {
        if let IpAddr::V6(v6) = ip {
            if v6.to_ipv4_mapped().is_some() {
                return Err("must not be an IPv4-mapped address".into());
            }
        }
        if ip.is_loopback() && self.allow_loopback {
            return if scheme_ok {
                Ok(())
            } else {
                Err("must use http:// or https://".into())
            };
        }
        if is_internal(ip) {
            return Err("must not point at a loopback, private, link-local or unspecified address".into());
        }
        if self.any_public_host {
            return if scheme_ok {
                Ok(())
            } else {
                Err("must use https://".into())
            };
        }
        Err(format!(
            "host {ip} is not allowed; allowed hosts: {}",
            self.allowed_hosts.join(", ")
        ))
    }
}

/// `localhost`, `*.localhost`, with or without the root's trailing dot.
fn is_loopback_name(domain: &str) -> bool {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Loopback, private, link-local (the instance metadata service among them), shared or unspecified: never
/// a webhook's destination outside the local stack.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || is_shared_v4(v4)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || is_unique_local_v6(v6) || is_link_local_v6(v6)
        }
    }
}

fn is_shared_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..128).contains(&b)
}

fn is_unique_local_v6(ip: Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xfe00) == 0xfc00
}

fn is_link_local_v6(ip: Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// `a***@example.com`: enough to recognise, not enough to harvest.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// `+1555*****23`: the country code and area, then the last two digits.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// The webhook's scheme and host; its path is the secret.
pub fn mask_webhook(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => format!("{}://{}/***", url.scheme(), url.host_str().unwrap_or("")),
        Err(_) => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> WebhookPolicy {
        WebhookPolicy::new(["hooks.slack.com".to_owned()], false)
    }

    #[test]
    fn emails() {
        for good in ["ada@example.com", "a.b+tag@sub.example.co.uk"] {
            assert_eq!(check_email(good), Ok(()), "{good}");
        }
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "ada@example.com\r\nBcc: eve@example.com",
            "ada@[127.0.0.1]",
            "ada@localhost",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for good in ["+15555550100", "+447700900123", "+12"] {
            assert_eq!(check_phone(good), Ok(()), "{good}");
        }
        for bad in [
            "15555550100",
            "+0123",
            "+1",
            "+1555555010012345",
            "+1 555 555",
            "+1555-5550",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slack_webhooks_in_production() {
        assert!(
            production()
                .check("https://hooks.slack.com/services/T0/B0/X")
                .is_ok()
        );
        for bad in [
            "http://hooks.slack.com/services/T0/B0/X",
            "https://evil.example.com/services/T0/B0/X",
            "https://user:pw@hooks.slack.com/services/T0/B0/X",
            "https://127.0.0.1/hook",
            "http://localhost:9000/hook",
            "https://10.0.0.1/hook",
            "https://192.168.1.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[fe80::1]/hook",
            "not a url",
        ] {
            assert!(production().check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tenants_endpoint_may_be_any_public_host_but_never_a_loopback_name() {
        let endpoints = WebhookPolicy::any_public_host(false);
        assert!(endpoints.check("https://hooks.example.com/in").is_ok());
        for bad in [
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://api.localhost/x",
            "http://hooks.example.com/in",
        ] {
            assert!(endpoints.check(bad).is_err(), "{bad}");
        }
        assert!(
            WebhookPolicy::any_public_host(true)
                .check("http://localhost:4000/x")
                .is_ok()
        );
    }

    #[test]
    fn the_local_stack_also_allows_loopback() {
        let local = WebhookPolicy::new(["hooks.slack.com".to_owned()], true);
        for good in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:4000/x",
            "http://[::1]:80/x",
        ] {
            assert!(local.check(good).is_ok(), "{good}");
        }
        for bad in [
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/",
            "http://10.1.2.3/",
        ] {
            assert!(local.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_countries() {
        assert_eq!(phone_country("+447700900123").as_deref(), Some("GB"));
        assert_eq!(phone_country("+61406823897").as_deref(), Some("AU"));
        assert_eq!(
            phone_country("+18765550100").as_deref(),
            Some("JM"),
            "NANP, but Jamaica"
        );
        assert_eq!(
            phone_country("+15555550100").as_deref(),
            Some("US"),
            "unassigned: the code's main country"
        );
        let allowed = CountryAllowList::parse("us, CA").unwrap();
        assert_eq!(allowed.check("+15555550100"), Ok(()));
        assert_eq!(allowed.check("+14165550100"), Ok(()), "Toronto");
        let refused = allowed.check("+18765550100").unwrap_err();
        assert!(refused.contains("JM") && refused.contains("CA, US"), "{refused}");
        assert!(allowed.check("+447700900123").is_err());
        assert_eq!(
            CountryAllowList::parse("*").unwrap().check("+447700900123"),
            Ok(())
        );
        assert!(CountryAllowList::parse("XX").is_err());
        for written in ["*", "CA,US", "GB"] {
            let parsed = CountryAllowList::parse(written).unwrap();
            assert_eq!(parsed.to_string(), written);
            assert_eq!(CountryAllowList::parse(&parsed.to_string()).unwrap(), parsed);
        }
        assert!(CountryAllowList::parse(" , ").is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_phone("+15555550123"), "+1555*****23");
        assert_eq!(
            mask_webhook("https://hooks.slack.com/services/T0/B0/X"),
            "https://hooks.slack.com/***"
        );
    }
}
