//! Start-up and shutdown: backends first (so loops have somewhere to send), then one
//! event loop per thread, each with its own sockets. Shutdown runs the other way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::{Backend, LoopNotifier};
use crate::config::Config;
use crate::event_loop::EventLoop;
use crate::http::write::WriteSettings;
use crate::metrics::ListenerStats;
use crate::state::{HttpListener, Shared};

/// A running relay.
pub struct Relay {
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
    notifiers: Vec<Arc<LoopNotifier>>,
    backends: Vec<Backend>,
    udp: crate::udp::Service,
}

impl Relay {
    pub fn start(config: &Config) -> std::io::Result<Relay> {
        let threads = config.threads.max(1);
        // Before anything starts (backends open their spools): a relay started twice on
        // the same addresses stops here, saying which one is taken.
        let mut config = config.clone();
        for l in &mut config.http {
            l.bind_addr = crate::net::claim_tcp(l.bind_addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.bind_addr))
            })?;
        }
        for u in &mut config.udp {
            u.bind_addr = crate::net::claim_udp(u.bind_addr).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on udp {}: {e}", u.bind_addr),
                )
            })?;
        }
        let config = &config;
        let mut http = Vec::new();
        let mut backends = Vec::new();
        // One rebuild mark per server: outputs of different listeners that name the
        // same host and port write to one server, and a rebuild concerns all of them.
        let mut marks: Vec<((String, u16), Arc<crate::rebuild::Mark>)> = Vec::new();
        for l in &config.http {
            // Before this listener's backend threads start: a bad PEM stops the start.
            let tls = l
                .ssl_combined_pem
                .as_ref()
                .map(|pem| crate::tls::server_config(pem, l.ssl_min_version))
                .transpose()
                .map_err(|e| std::io::Error::other(format!("listener {:?}: {e}", l.name)))?;
            let mut handles = Vec::new();
            for output in &l.outputs {
                let server = (
                    output.location.host.to_ascii_lowercase(),
                    output.location.port,
                );
                let mark = match marks.iter().find(|(s, _)| *s == server) {
                    Some((_, mark)) => mark.clone(),
                    None => {
                        let mark = Arc::new(crate::rebuild::Mark::default());
                        marks.push((server, mark.clone()));
                        mark
                    }
                };
                let (handle, backend) = Backend::start(&l.name, output, &config.spool_dir, mark)?;
                handles.push(handle);
                backends.push(backend);
            }
            http.push(HttpListener {
                config: l.clone(),
                tls,
                write: WriteSettings {
                    default_retention_policy: l.default_retention_policy.clone(),
                },
                backends: handles,
                answer_timeout: l
                    .outputs
                    .iter()
                    .map(|o| o.timeout)
                    .max()
                    .unwrap_or(Duration::from_secs(10)),
                query_targets: l.outputs.iter().map(query_target).collect(),
                server_unapplied: Vec::new(),
                open_connections: AtomicUsize::new(0),
                stats: (0..threads)
                    .map(|_| Arc::new(ListenerStats::default()))
                    .collect(),
            });
        }
        link_same_servers(&mut http);
        let (udp, udp_service) = crate::udp::start(&config.udp, threads)?;
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            shutdown_timeout: config.shutdown_timeout,
            http,
            udp,
            started: Instant::now(),
            changes: Default::default(),
            rebuilds: crate::rebuild::Registry::new(&config.spool_dir),
        });
        let mut loops = Vec::new();
        let mut notifiers = Vec::new();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for id in 0..threads {
            let (event_loop, notifier) = EventLoop::new(id, shared.clone())?;
            notifiers.push(notifier);
            let pin = config.pin_threads.then_some(id % cores);
            let handle = std::thread::Builder::new()
                .name(format!("loop-{id}"))
                .spawn(move || {
                    if let Some(core) = pin {
                        pin_to_core(core);
                    }
                    event_loop.run();
                })?;
            loops.push(handle);
        }
        for l in &shared.http {
            crate::info!(
                "listening",
                listener = l.config.name,
                addr = l.config.bind_addr,
                tls = l.tls.is_some(),
                ack = format!("{:?}", l.config.ack).to_lowercase(),
                outputs = l.backends.len(),
                threads = threads,
            );
            for o in &l.config.outputs {
                crate::info!(
                    "output",
                    listener = l.config.name,
                    backend = o.name,
                    location = o.location.url,
                    timeout = format!("{:?}", o.timeout),
                    concurrency = o.concurrency,
                    buffer_mb = o.buffer_size >> 20,
                    spool_mb = o.spool_size >> 20,
                );
            }
        }
        for l in &shared.udp {
            let granted = l.read_buffer_granted();
            crate::info!(
                "listening",
                listener = l.config.name,
                addr = format!("udp://{}", l.config.bind_addr),
                read_buffer = granted,
                outputs = l.outputs.len(),
                threads = threads,
            );
            // The kernel caps SO_RCVBUF without an error: only this line tells that the
            // socket will overflow sooner than the config promised.
            if granted < l.config.read_buffer {
                crate::warn!(
                    "udp read-buffer capped by the kernel",
                    listener = l.config.name,
                    asked = l.config.read_buffer,
                    got = granted,
                    fix = "raise net.core.rmem_max, or run with CAP_NET_ADMIN",
                );
            }
            for o in &l.outputs {
                crate::info!(
                    "output",
                    listener = l.config.name,
                    backend = o.config.name,
                    location = format!("udp://{}", o.config.location),
                    mtu = o.config.mtu,
                );
            }
        }
        // Once the loops run: a rebuild's copies go through the same queues as writes.
        shared.rebuilds.resume_all(&shared);
        Ok(Relay {
            shared,
            loops,
            notifiers,
            backends,
            udp: udp_service,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stop accepting, answer what is in flight (bounded by `shutdown-timeout`), then
    /// let the backends finish the writes they hold.
    pub fn shutdown(self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for n in &self.notifiers {
            n.wake();
        }
        for l in self.loops {
            let _ = l.join();
        }
        self.udp.shutdown();
        // Before the backends close: a rebuild's last copies are still handed to them.
        self.shared.rebuilds.stop_all();
        let deadline = Instant::now() + self.shared.shutdown_timeout;
        for l in &self.shared.http {
            for b in &l.backends {
                b.close(deadline);
            }
        }
        for b in self.backends {
            b.join();
        }
    }
}

/// Fill `server_unapplied`: outputs of different listeners that name the same host
/// and port write to one server, so a read there must wait for all of them.
fn link_same_servers(http: &mut [HttpListener]) {
    let server = |l: &HttpListener, i: usize| {
        let loc = &l.config.outputs[i].location;
        (loc.host.to_ascii_lowercase(), loc.port)
    };
    let mut all = Vec::new();
    for l in http.iter() {
        for (i, b) in l.backends.iter().enumerate() {
            all.push((server(l, i), b.unapplied.clone()));
        }
    }
    for l in http.iter_mut() {
        l.server_unapplied = (0..l.backends.len())
            .map(|i| {
                let me = server(l, i);
                all.iter()
                    .filter(|(s, _)| *s == me)
                    .map(|(_, u)| u.clone())
                    .collect()
            })
            .collect();
    }
}

/// Resolve where an output's reads go, once, at start-up.
fn query_target(output: &crate::config::HttpOutput) -> crate::http::upstream::QueryTarget {
    let loc = &output.location;
    let addr = if !output.reads {
        // Write-only: no read is ever sent there.
        None
    } else if loc.https {
        crate::warn!(
            "reads are not proxied to https backends",
            backend = output.name
        );
        None
    } else {
        loc.addresses().ok().and_then(|a| a.first().copied())
    };
    let host = if loc.host.contains(':') {
        format!("[{}]", loc.host)
    } else {
        loc.host.clone()
    };
    crate::http::upstream::QueryTarget {
        name: output.name.clone(),
        addr,
        host_header: format!("{host}:{}", loc.port),
        path: crate::backend::api::query_path(output),
        authorization: output.own_authorization(),
    }
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside the set we own, and
    // sched_setaffinity(0, …) only affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            crate::warn!(
                "cannot pin thread",
                core = core,
                error = std::io::Error::last_os_error()
            );
        }
    }
}
