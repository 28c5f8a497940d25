//! `saad serve`: hosts this machine's devices for `saad train --remote` on another machine
//! (burn's remote backend over WebSocket).

use crate::device::{DeviceChoice, select, wgpu_adapters};
use crate::remote::{VERSION, refusal};
use anyhow::{Context, Result, bail};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::server::{AuthorizationRequest, RemoteServer, WebSocketTransport};
use std::net::{IpAddr, SocketAddr, TcpListener};

#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on. WebSocket is unencrypted: listen beyond this machine (e.g. 0.0.0.0)
    /// only on a trusted network, with --token.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The backend of the hosted device when --devices is not given.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Host these wgpu adapters (indices as `saad devices` lists them), e.g. 0,1.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<usize>,
    /// Serve only clients that give this token (`saad train --remote-token`); from the
    /// environment, it stays out of the process list.
    #[arg(long, env = "SAAD_REMOTE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The wgpu adapters at `indices` (as `saad devices` numbers them), with their names.
pub fn adapters_at(indices: &[usize], flag: &str) -> Result<Vec<(Device, String)>> {
    let adapters = wgpu_adapters();
    let mut out: Vec<(Device, String)> = Vec::new();
    for &i in indices {
        let Some(a) = adapters.get(i) else {
            let have = match adapters.len() {
                0 => "no wgpu adapter".to_string(),
                n => format!("{n} wgpu adapter(s), numbered 0 to {}", n - 1),
            };
            bail!("{flag} {i}: this machine has {have}; `saad devices` lists them");
        };
        if out.iter().any(|(d, _)| *d == a.device) {
            bail!("{flag}: adapter {i} is given twice");
        }
        out.push((a.device.clone(), format!("wgpu {i} {:?}: {}", a.kind, a.name)));
    }
    Ok(out)
}

pub fn run(args: ServeArgs) -> Result<()> {
    let devices = if args.devices.is_empty() {
        vec![select(args.device)?]
    } else {
        adapters_at(&args.devices, "--devices")?
    };
    let address = SocketAddr::new(args.bind, args.port);
    let listener = TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address} (is another server on that port?)"))?;
    let address = listener.local_addr().unwrap_or(address);
    let names: Vec<String> = devices.iter().map(|(_, n)| n.clone()).collect();
    let token = args.token.clone().filter(|t| !t.is_empty());
    println!(
        "saad {VERSION} serving {} device(s) on ws://{address}: {}{}",
        names.len(),
        names.join("; "),
        if token.is_some() { " (token required)" } else { "" }
    );
    let server = RemoteServer::new(devices.into_iter().map(|(d, _)| d)).with_authorizer(
        move |request: AuthorizationRequest<'_>| {
            let credential = String::from_utf8_lossy(request.credential.as_bytes());
            match refusal(&credential, token.as_deref()) {
                Some(why) => {
                    eprintln!("refused {}: {why}", request.client);
                    Err(why)
                }
                None => Ok(()),
            }
        },
    );
    server
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| anyhow::anyhow!("the server on {address} stopped: {e}"))
}
