//! The address to listen on, as people write it: `127.0.0.1:8000`, `[::1]:8000`, `0.0.0.0:8000`,
//! `localhost:8000`, or a bare port (`8000`: this machine only). Host names other than
//! `localhost` are refused rather than resolved: which interface a name means is the operator's
//! call, not DNS's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer};

pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = t.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(format!("`{text}` is not an address to listen on: write 127.0.0.1:8000, localhost:8000 or 8000"));
    };
    let port: u16 = port.parse().map_err(|_| format!("`{text}`: `{port}` is not a port (0-65535)"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(_) => Err(format!(
            "`{text}`: listen on an IP address (127.0.0.1, 0.0.0.0, ::1), `localhost` or a bare port; host names are not resolved"
        )),
    }
}

/// `[server] listen`, read like `--listen`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = super::interp::Interpolated::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_people_write_them() {
        let ok = |t: &str| parse_listen(t).unwrap().to_string();
        assert_eq!(ok("127.0.0.1:8000"), "127.0.0.1:8000");
        assert_eq!(ok("0.0.0.0:9000"), "0.0.0.0:9000");
        assert_eq!(ok("[::1]:8000"), "[::1]:8000");
        assert_eq!(ok("localhost:8080"), "127.0.0.1:8080");
        assert_eq!(ok("LocalHost:1"), "127.0.0.1:1");
        assert_eq!(ok("8000"), "127.0.0.1:8000", "a bare port is this machine only");
        assert_eq!(ok(" 0 "), "127.0.0.1:0");
        for bad in ["", "example.com:80", "localhost:http", "localhost:70000", "1.2.3.4", "::1"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
        assert!(parse_listen("example.com:80").unwrap_err().contains("not resolved"));
    }
}
