//! Integration tests, one binary: each module covers one area and runs the relay and
//! real `influxd` backends through the harness in `util`.

mod durability;
mod harness;
mod http;
mod tls;
mod udp;
mod util;
