//! Devices on other machines through burn's remote backend (WebSocket transport): the client
//! side of `saad train --remote` and the credential `saad serve` checks.
//!
//! A client presents `saad <version>` (and the server's token, if it has one) as its burn
//! credential, so a server of another saad version refuses the session instead of running
//! operations it may implement differently.

use anyhow::{Result, bail};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::remote::{ConnectError, RemoteHost};

/// This build's version, as clients and servers compare it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The credential a client of this build presents: `saad VERSION`, then the token if any.
pub fn credential(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("saad {VERSION} {t}"),
        None => format!("saad {VERSION}"),
    }
}

/// Why a server refuses `credential`, or `None` to serve it (see [`credential`]).
pub fn refusal(credential: &str, token: Option<&str>) -> Option<String> {
    let mut words = credential.splitn(3, ' ');
    let (name, version, theirs) = (words.next(), words.next(), words.next());
    if name != Some("saad") || version.is_none() {
        return Some("the client is not a saad command (no `saad VERSION` credential)".into());
    }
    let version = version.unwrap_or_default();
    if version != VERSION {
        return Some(format!(
            "the client runs saad {version} and this server saad {VERSION}: run the same version on both"
        ));
    }
    if theirs != token {
        return Some(match token {
            Some(_) => "the client gave a wrong or no --remote-token".into(),
            None => "the client gave a --remote-token, and this server has none".into(),
        });
    }
    None
}

/// One server of `--remote`: its address and the devices it hosts.
pub struct RemoteServer {
    /// As given: `ws://host:port`.
    pub url: String,
    /// Its devices, in the order the server lists them.
    pub devices: Vec<Device>,
}

/// Checks one `--remote` address: `ws://host:port`.
pub fn parse_url(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| {
        format!("bad --remote address {url:?}: expected ws://HOST:PORT (a `saad serve` server)")
    })?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("bad --remote address {url:?}: no port (ws://HOST:PORT)"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("bad --remote address {url:?}: expected ws://HOST:PORT"));
    }
    Ok(url.to_string())
}

/// Connects every device of the servers at `urls`, in order.
pub fn connect(urls: &[String], token: Option<&str>) -> Result<Vec<RemoteServer>> {
    let mut servers = Vec::new();
    for url in urls {
        let host = RemoteHost::websocket(url).with_credential(credential(token));
        let devices = host.devices().map_err(|e| connect_error(url, e))?;
        let devices: Vec<Device> = devices.into_iter().collect();
        // A device's session opens on first use: open them now, so that a refusal is reported
        // here rather than in the middle of a step.
        for i in 1..devices.len() {
            Device::remote_options(&host)
                .device_index(i)
                .init()
                .map_err(|e| connect_error(url, e))?;
        }
        servers.push(RemoteServer { url: url.clone(), devices });
    }
    Ok(servers)
}

fn connect_error(url: &str, e: ConnectError) -> anyhow::Error {
    let what = match &e {
        ConnectError::Unreachable { .. } => format!(
            "nothing answers at {url}: start `saad serve --port PORT` on that machine (and check the host, the port and the firewall)"
        ),
        ConnectError::Unauthorized => format!(
            "the server at {url} refused this client: it runs another saad version than {VERSION}, or expects another --remote-token (the server's log says which)"
        ),
        ConnectError::IncompatibleProtocol { .. } => format!(
            "the server at {url} runs another burn release ({e}): install the same saad version on both machines"
        ),
        _ => format!("cannot connect to {url}: {e}"),
    };
    anyhow::anyhow!(what)
}

/// Which of `servers` no longer answers (each is asked for one small result, `timeout` at
/// most), to name it in an error.
pub fn unreachable(servers: &[RemoteServer], timeout: std::time::Duration) -> Vec<String> {
    let mut down = Vec::new();
    for s in servers {
        let device = s.devices[0].clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ok = std::panic::catch_unwind(move || {
                (Tensor::<1>::ones([1], &device) * 2.0).try_into_data().is_ok()
            })
            .unwrap_or(false);
            let _ = tx.send(ok);
        });
        if !rx.recv_timeout(timeout).unwrap_or(false) {
            down.push(s.url.clone());
        }
    }
    down
}

/// The devices of `servers` in order, checked to be distinct.
pub fn all_devices(servers: &[RemoteServer]) -> Result<Vec<Device>> {
    let mut out: Vec<Device> = Vec::new();
    for s in servers {
        for d in &s.devices {
            if out.contains(d) {
                bail!("{} is given twice in --remote", s.url);
            }
            out.push(d.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_refuses_other_versions_and_tokens() {
        assert_eq!(refusal(&credential(None), None), None);
        assert_eq!(refusal(&credential(Some("k")), Some("k")), None);
        assert!(refusal("saad 0.0.0-other", None).unwrap().contains("saad 0.0.0-other"));
        assert!(refusal(&credential(Some("x")), Some("k")).unwrap().contains("token"));
        assert!(refusal(&credential(None), Some("k")).unwrap().contains("token"));
        assert!(refusal("", None).unwrap().contains("not a saad"));
    }

    #[test]
    fn remote_addresses_are_checked() {
        assert!(parse_url("ws://127.0.0.1:4000").is_ok());
        for bad in
            ["127.0.0.1:4000", "ws://host", "ws://:4000", "ws://h:0", "ws://h:99999", "http://h:1"]
        {
            assert!(parse_url(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
