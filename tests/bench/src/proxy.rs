//! The bare-proxy baseline: nginx (Debian's `nginx-light`) as a plain reverse proxy to the same
//! simulator, pinned to the gateway's core, one worker, upstream keep-alive, no buffering (so
//! streams pass event by event). No JSON, no routing, no accounting: the floor a gateway is
//! measured against.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts it; `FREEWAY_BENCH_NGINX` overrides.
const NGINX: &str = "/usr/sbin/nginx";

pub struct Proxy {
    child: Child,
    pub port: u16,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Proxy {
    /// nginx in front of the simulator on `upstream_port`, or why it cannot run.
    pub fn start(cores: &str, dir: &Path, upstream_port: u16) -> Result<Proxy, String> {
        let nginx = std::env::var("FREEWAY_BENCH_NGINX").unwrap_or_else(|_| NGINX.to_owned());
        if !Path::new(&nginx).exists() {
            return Err(format!(
                "{nginx} is missing (apt-get install nginx-light); the bare-proxy baseline is skipped"
            ));
        }
        let dir = dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        let port = free_port()?;
        let d = dir.display();
        let conf = format!(
            r#"worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    upstream sim {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sim;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cores)
            .arg(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().map_err(|e| format!("start nginx: {e}"))?;
        let mut proxy = Proxy { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("nginx did not listen within 10 s".into());
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(format!("nginx exited at start ({status}); see {d}/error.log"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy.port = port;
        Ok(proxy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
