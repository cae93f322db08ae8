//! HTTP framing cost per request: finding and parsing a write's request head, and
//! decoding a chunked body in the 64 KiB reads the event loop makes. Every bench asserts
//! the answer it expects, so a fast-but-wrong change never looks like a win.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::http::request::{parse_head, BodyKind, ChunkedDecoder, HeadScanner, Method};

mod common;
use common::{chunked, telegraf_body};

/// What the event loop asks of the kernel per read; the decoder sees input in pieces
/// of this size.
const READ: usize = 64 * 1024;
const MAX_BODY: usize = 25 << 20;

/// A telegraf write's head, followed (as in the loop's read buffer) by the start of
/// its body.
fn write_request(body: &[u8]) -> (Vec<u8>, usize) {
    let head = format!(
        "POST /write?db=telegraf&rp=autogen&precision=ns HTTP/1.1\r\n\
         Host: 127.0.0.1:9096\r\n\
         User-Agent: Telegraf/1.28.2 Go/1.21.3\r\n\
         Content-Length: {}\r\n\
         Authorization: Basic dGVsZWdyYWY6c2VjcmV0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Accept-Encoding: gzip\r\n\r\n",
        body.len()
    );
    let mut buf = head.clone().into_bytes();
    buf.extend_from_slice(&body[..body.len().min(READ - head.len())]);
    (buf, head.len())
}

fn head(c: &mut Criterion) {
    let body = telegraf_body(100, true);
    let (buf, head_len) = write_request(&body);

    let mut group = c.benchmark_group("http/head");
    group.throughput(Throughput::Elements(1));
    group.bench_function("find_end", |b| {
        b.iter(|| {
            let mut scanner = HeadScanner::default();
            let end = scanner.find_end(black_box(&buf)).expect("head fits");
            assert_eq!(end, Some(head_len));
        })
    });
    group.bench_function("parse_head", |b| {
        b.iter(|| {
            let head = parse_head(black_box(&buf[..head_len]), MAX_BODY).expect("valid head");
            assert_eq!(head.method, Method::Post);
            assert_eq!(head.path, "/write");
            assert_eq!(head.query, "db=telegraf&rp=autogen&precision=ns");
            assert_eq!(head.body, BodyKind::Length(body.len()));
            assert!(head.keep_alive && !head.gzip && !head.expect_continue);
            assert_eq!(
                head.authorization.as_deref(),
                Some(&b"Basic dGVsZWdyYWY6c2VjcmV0"[..])
            );
        })
    });
    group.finish();
}

fn chunked_body(c: &mut Criterion) {
    let body = telegraf_body(1000, true);
    let mut group = c.benchmark_group("http/chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    // 4 KiB: a client streaming through a buffered writer; 100 B: a pathological
    // client, where the per-byte size-line state machine dominates.
    for chunk in [4096, 100] {
        let wire = chunked(&body, chunk);
        let mut out = Vec::with_capacity(body.len());
        group.bench_function(format!("decode/{chunk}B-chunks"), |b| {
            b.iter(|| {
                out.clear();
                let mut decoder = ChunkedDecoder::default();
                let mut used = 0;
                for read in black_box(&wire).chunks(READ) {
                    used += decoder.decode(read, &mut out, MAX_BODY).expect("valid");
                }
                assert!(decoder.is_done());
                assert_eq!(used, wire.len());
                assert_eq!(out, body);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, head, chunked_body);
criterion_main!(benches);
