//! A TCP proxy for one direction of one link between members: member A's raft traffic to
//! member B goes through the proxy of (A, B), so cutting it stops A's messages to B (and
//! their answers) while B's messages to A, on their own proxy, still flow. `tc netem` and
//! iptables are not available here; this needs nothing but loopback.
//!
//! A cut closes the connections in flight and holds new ones open without forwarding a
//! byte until the heal (a blackhole: the sender sees timeouts, as across a real
//! partition, not a quick refusal).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy.
pub struct Proxy {
    listen: SocketAddr,
    cut: watch::Sender<bool>,
    /// Bumped on every cut: connections of an older generation close.
    generation: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let generation = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept(listener, upstream, cut_rx, Arc::clone(&generation)));
        Ok(Proxy { listen, cut, generation, task })
    }

    /// Where the member that sends through this link connects.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Stops forwarding: open connections are closed, new ones are held silent.
    pub fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    cut: watch::Receiver<bool>,
    generation: Arc<AtomicU64>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        let (cut, generation) = (cut.clone(), Arc::clone(&generation));
        tokio::spawn(async move { forward(inbound, upstream, cut, generation).await });
    }
}

/// Forwards one connection until either side closes or the link is cut.
async fn forward(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    mut cut: watch::Receiver<bool>,
    generation: Arc<AtomicU64>,
) {
    // A connection made while cut waits, silent, for the heal.
    while *cut.borrow_and_update() {
        if cut.changed().await.is_err() {
            return;
        }
    }
    let born = generation.load(Ordering::SeqCst);
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    inbound.set_nodelay(true).ok();
    outbound.set_nodelay(true).ok();
    let pump = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
    tokio::pin!(pump);
    loop {
        tokio::select! {
            _ = &mut pump => return,
            changed = cut.changed() => {
                if changed.is_err() || generation.load(Ordering::SeqCst) != born {
                    break;
                }
            }
        }
    }
    // Both streams are dropped here: the cut closes the connection.
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> Option<Vec<u8>> {
        let attempt = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(b"ping").await.ok()?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf.to_vec())
        };
        tokio::time::timeout(Duration::from_millis(300), attempt).await.ok().flatten()
    }

    #[tokio::test]
    async fn forwards_and_a_cut_silences_until_the_heal() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        assert_eq!(round_trip(proxy.addr()).await.as_deref(), Some(&b"ping"[..]));

        // An open connection is closed by the cut.
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        open.write_all(b"a").await.unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).await.unwrap();
        proxy.cut();
        assert!(proxy.is_cut());
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed by the cut: {read:?}");

        // New connections get nothing while cut.
        assert_eq!(round_trip(proxy.addr()).await, None);
        proxy.heal();
        assert_eq!(round_trip(proxy.addr()).await.as_deref(), Some(&b"ping"[..]));
    }

    #[tokio::test]
    async fn a_connection_held_during_a_cut_flows_after_the_heal() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        proxy.cut();
        let addr = proxy.addr();
        let held = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"late").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!held.is_finished(), "answered while cut");
        proxy.heal();
        let answer = tokio::time::timeout(Duration::from_secs(2), held).await.unwrap().unwrap();
        assert_eq!(&answer, b"late");
    }
}
