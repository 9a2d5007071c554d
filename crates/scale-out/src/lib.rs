//! The resource server scaled out on one machine: several instances sharing their
//! session state through Redis (`--redis-url`), behind nginx balancing round-robin over
//! them without affinity, as in the `scale` profile of docker-compose.yml.
//!
//! One configuration serves the demo's `--instances`, the resource server's cluster
//! tests and the scale-out benchmark, so what is tested and measured is what the demo
//! runs.
//!
//! ```
//! let conf = scale_out::nginx_conf(3001, &[4001, 4002], std::path::Path::new("/tmp/nginx"));
//! assert!(conf.contains("server 127.0.0.1:4002 max_fails=0;"));
//! ```

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// `program` on PATH, or in the sbin directories where Debian puts nginx.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/local/sbin"),
            PathBuf::from("/sbin"),
        ])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// nginx's configuration: `listen` on loopback, round-robin over `upstreams` without
/// affinity, event streams unbuffered, files under `dir`, errors to stderr.
pub fn nginx_conf(listen: u16, upstreams: &[u16], dir: &Path) -> String {
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=0;\n"))
        .collect();
    let dir = dir.display();
    format!(
        "daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream mcp {{
{servers}        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_balances_over_every_instance_without_affinity() {
        let conf = nginx_conf(3001, &[4001, 4002, 4003], Path::new("/tmp/demo"));
        assert_eq!(conf.matches("server 127.0.0.1:").count(), 3, "{conf}");
        for port in [4001, 4002, 4003] {
            assert!(
                conf.contains(&format!("server 127.0.0.1:{port} max_fails=0;")),
                "{conf}"
            );
        }
        assert!(conf.contains("listen 127.0.0.1:3001;"));
        assert!(!conf.contains("ip_hash") && !conf.contains("sticky") && !conf.contains("hash "));
        assert!(conf.contains("proxy_buffering off;"));
    }

    #[test]
    fn nginx_files_stay_under_the_directory() {
        let conf = nginx_conf(3001, &[4001], Path::new("/tmp/demo"));
        for line in conf
            .lines()
            .filter(|l| l.contains("_path ") || l.starts_with("pid "))
        {
            assert!(line.contains("/tmp/demo/"), "{line}");
        }
    }

    #[test]
    fn a_missing_program_is_none() {
        assert_eq!(find_program("no-such-program-here"), None);
    }
}
