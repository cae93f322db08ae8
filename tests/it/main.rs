//! Integration tests, one binary: each module covers one area and runs the relay and
//! real `influxd` backends through the harness in `util`.

mod auth;
mod browser;
mod clients;
mod consistency;
mod dropped;
mod durability;
mod ha;
mod harness;
mod hostile;
mod http;
mod observe;
mod outputs;
mod query;
mod rebuild;
mod recovery;
mod status_page;
mod tls;
mod udp;
mod util;
mod verify;
mod write_apis;
