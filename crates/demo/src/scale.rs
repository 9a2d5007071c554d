//! `--instances N` (N > 1): the resource servers scaled out as in the `scale` profile of
//! docker-compose.yml, without Docker. A `redis-server` of the demo's own (no
//! persistence) holds the shared session state, N resource servers listen on free
//! loopback ports with `--redis-url`, and `nginx` balances round-robin over them, with
//! no affinity, on the resource server's usual port.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use scale_out::{find_program, nginx_conf};

use crate::children::Children;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `redis-server` and `nginx`, or a sentence naming the packages that provide them.
///
/// # Errors
/// When one of them is not installed.
pub fn find_tools() -> anyhow::Result<(PathBuf, PathBuf)> {
    match (find_program("redis-server"), find_program("nginx")) {
        (Some(redis), Some(nginx)) => Ok((redis, nginx)),
        (redis, nginx) => {
            let missing: Vec<&str> = [
                (redis.is_none(), "redis-server"),
                (nginx.is_none(), "nginx"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect();
            bail!(
                "--instances needs {} on PATH; on Debian or Ubuntu: sudo apt-get install {} \
                 (or run the scale profile of docker-compose.yml)",
                missing.join(" and "),
                missing.join(" ")
            )
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts Redis, `instances` resource servers (`rs_args` with their own `--listen`) and
/// nginx on `public_port`; returns when all of them listen.
///
/// # Errors
/// A missing tool, or a child that does not start.
pub async fn start(
    children: &mut Children,
    exe: &Path,
    rs_args: &[String],
    instances: u16,
    public_port: u16,
    work: &Path,
) -> anyhow::Result<()> {
    let (redis, nginx) = find_tools()?;
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let redis_port = free_port()?;
    let redis_dir = work.join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let redis_args: Vec<String> = vec![
        "--port".into(),
        redis_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        redis_dir.display().to_string(),
    ];
    children.spawn("redis", &redis, &redis_args)?;
    children
        .wait_listening("redis-server", loopback(redis_port), READY_TIMEOUT)
        .await?;
    let mut ports = Vec::new();
    for i in 1..=instances {
        let port = free_port()?;
        let mut args = rs_args.to_vec();
        let listen = args
            .iter()
            .position(|a| a == "--listen")
            .context("the resource server's arguments name --listen")?;
        args[listen + 1] = format!("127.0.0.1:{port}");
        args.extend([
            "--redis-url".into(),
            format!("redis://127.0.0.1:{redis_port}"),
        ]);
        children.spawn(&format!("rs{i}"), exe, &args)?;
        ports.push(port);
    }
    for (i, port) in ports.iter().enumerate() {
        children
            .wait_ready(
                &format!("resource server {}", i + 1),
                loopback(*port),
                READY_TIMEOUT,
            )
            .await?;
    }
    let nginx_dir = work.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let conf = nginx_dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(public_port, &ports, &nginx_dir))?;
    let nginx_args: Vec<String> = vec![
        "-e".into(),
        "stderr".into(),
        "-p".into(),
        nginx_dir.display().to_string(),
        "-c".into(),
        conf.display().to_string(),
    ];
    children.spawn("nginx", &nginx, &nginx_args)?;
    children
        .wait_ready("nginx", loopback(public_port), READY_TIMEOUT)
        .await?;
    eprintln!(
        "== {instances} resource servers (ports {}) share redis-server on {redis_port}, behind nginx on {public_port}",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
