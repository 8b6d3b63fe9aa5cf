//! Where the sessions connect: `embedded` or a `ws://`/`wss://` URL, parsed once, and the
//! redaction that keeps a URL's secrets (userinfo, query values) out of everything wsoak
//! shows. It must not resolve names or connect.

use std::fmt;

use tokio_tungstenite::tungstenite::http::Uri;

/// Where the sessions connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start the reference server in-process on a loopback ephemeral port.
    Embedded,
    /// A `ws://` or `wss://` URL.
    Url(TargetUrl),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Embedded => f.write_str("embedded"),
            Target::Url(url) => f.write_str(&url.redacted()),
        }
    }
}

impl TargetUrl {
    /// The URL as wsoak shows it anywhere (summary, reports, progress, errors): see
    /// [`redact`]. The real URL is used only to connect.
    pub fn redacted(&self) -> String {
        redact(&self.uri.to_string())
    }
}

/// A URL with its secrets hidden: the userinfo (`user:password@`) and every query value
/// become `***`, so `ws://u:p@host/ws?token=abc&v=1` shows as
/// `ws://***@host/ws?token=***&v=***`. Works on text that did not parse, too, so error
/// messages can quote what was given.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = if scheme.is_some() {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    } else {
        0
    };
    let (authority, rest) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push_str("#***");
    }
    out
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetUrl {
    /// The URL as the WebSocket handshake uses it.
    pub uri: Uri,
    /// Host name or address, without brackets.
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// True for `wss://`.
    pub tls: bool,
}

impl Target {
    /// Parses `embedded` or a WebSocket URL.
    /// Messages quote the text [`redact`]ed: it may carry a password.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text == "embedded" {
            return Ok(Target::Embedded);
        }
        let shown = redact(text);
        let uri: Uri = text.parse().map_err(|e| {
            format!("`{shown}` is not a URL ({e}): write e.g. ws://127.0.0.1:8080/ws or `embedded`")
        })?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => {
                return Err(format!(
                    "`{shown}`: the target must start with ws:// or wss:// (or be `embedded`)"
                ))
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        let host = uri
            .host()
            .filter(|h| !h.is_empty() && *h != "[]")
            .ok_or_else(|| format!("`{shown}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        // `http::Uri` reads a port it cannot fit in 16 bits as no port at all, which
        // would connect to 80: read the port text ourselves.
        let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port_text = match host_and_port.rfind(']') {
            Some(end) => host_and_port[end + 1..].strip_prefix(':'),
            None => host_and_port.split_once(':').map(|(_, p)| p),
        };
        let port = match port_text {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(format!(
                        "`{shown}`: `{p}` is not a port: write a number from 1 to 65535, or \
                         leave it out for {}",
                        if tls { "443" } else { "80" }
                    ))
                }
            },
        };
        Ok(Target::Url(TargetUrl {
            uri,
            host,
            port,
            tls,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::parse_str;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("embedded").unwrap(), Target::Embedded);
        let Target::Url(u) = Target::parse("wss://[::1]/ws").unwrap() else {
            panic!()
        };
        assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 443, true));
        assert!(Target::parse("http://127.0.0.1/").is_err());
        assert!(Target::parse("not a url").is_err());
    }
    #[test]
    fn bad_ports_schemes_and_hosts_are_refused() {
        for (text, says) in [
            ("ws://127.0.0.1:99999/", "`99999` is not a port"),
            ("ws://127.0.0.1:0/", "`0` is not a port"),
            ("ws://127.0.0.1:/", "`` is not a port"),
            ("ws://127.0.0.1:8x/", "not a"),
            ("wss://[::1]:65536/", "`65536` is not a port"),
            ("http://127.0.0.1/", "must start with ws://"),
            ("127.0.0.1:8080", "must start with ws://"),
            ("ws:///path", "not a URL"),
            ("ws://u:secret@:80/", "has no host"),
        ] {
            let e = Target::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let Target::Url(u) = Target::parse("ws://127.0.0.1:65535").unwrap() else {
            panic!()
        };
        assert_eq!(u.port, 65535);
        let text = "target: ws://127.0.0.1:99999/\nheartbeat:\n  send: x\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:1:1: target:"), "{e}");
    }
    #[test]
    fn secrets_in_target_urls_are_never_shown() {
        let text = "ws://bob:hunter2@127.0.0.1:9/ws?token=abc&v=1&flag#frag";
        let Target::Url(u) = Target::parse(text).unwrap() else {
            panic!()
        };
        // The real URL connects; what is shown hides the secrets.
        assert!(u.uri.to_string().contains("hunter2"));
        assert_eq!(u.port, 9);
        let shown = "ws://***@127.0.0.1:9/ws?token=***&v=***&***";
        assert_eq!(Target::Url(u.clone()).to_string(), shown);
        assert_eq!(u.redacted(), shown);
        assert_eq!(redact(text), format!("{shown}#***"));
        assert_eq!(redact("ws://h/p"), "ws://h/p");
        assert_eq!(redact("ws://a@b@h?"), "ws://***@h?");
        assert_eq!(redact("garbage?x=1"), "garbage?x=***");
    }
}
