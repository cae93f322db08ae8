//! Integration tests, one binary: each module covers one area and runs the relay and
//! real `influxd` backends through the harness in `util`.

mod auth;
mod durability;
mod harness;
mod hostile;
mod http;
mod udp;
mod util;
