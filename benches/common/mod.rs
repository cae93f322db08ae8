//! Request bodies shared by the benches: telegraf-like line protocol, so every bench
//! measures the same shape of input the relay sees in production.

/// A body shaped like telegraf's output: mostly cpu/mem/disk/net lines of about 200
/// bytes, a few with a string field, tags sorted, every line timestamped (or none).
pub fn telegraf_body(lines: usize, with_timestamps: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..lines {
        let host = format!("server{:03}.eu-west-1.example.com", i % 37);
        let line = match i % 4 {
            0 => format!(
                "cpu,cpu=cpu{},host={host} usage_guest=0,usage_guest_nice=0,usage_idle={}.{:014},\
                 usage_iowait=0.0500250125062531,usage_irq=0,usage_nice=0,usage_softirq=0.1000500250125,\
                 usage_steal=0,usage_system=1.{:016},usage_user=3.{:016}",
                i % 16,
                90 + i % 10,
                i * 7919,
                i * 104_729,
                i * 1_299_709
            ),
            1 => format!(
                "mem,host={host} active={}i,available={}i,available_percent=72.{:013},buffered=123456i,\
                 cached={}i,free={}i,total=16777216000i,used={}i,used_percent=27.{:013}",
                4_000_000_000u64 + i as u64 * 4096,
                12_000_000_000u64 + i as u64 * 8192,
                i * 31,
                5_000_000_000u64 + i as u64,
                3_000_000_000u64 + i as u64,
                4_500_000_000u64 + i as u64,
                i * 37
            ),
            2 => format!(
                "disk,device=nvme0n1p{},fstype=ext4,host={host},mode=rw,path=/var/lib/data{} \
                 free={}i,inodes_free=1234567i,inodes_total=2621440i,inodes_used=1386873i,\
                 total=42004086784i,used={}i,used_percent=54.{:014}",
                i % 4,
                i % 8,
                19_000_000_000u64 + i as u64,
                23_000_000_000u64 + i as u64,
                i * 13
            ),
            _ => format!(
                "net,host={host},interface=eth{} bytes_recv={}i,bytes_sent={}i,drop_in=0i,\
                 drop_out=0i,err_in=0i,err_out=0i,packets_recv={}i,packets_sent={}i,up=true,\
                 status=\"ok, link {} Mb/s\"",
                i % 2,
                987_654_321u64 + i as u64 * 1500,
                123_456_789u64 + i as u64 * 900,
                7_654_321u64 + i as u64,
                1_234_567u64 + i as u64,
                1000 * (1 + i % 10)
            ),
        };
        body.extend_from_slice(line.as_bytes());
        if with_timestamps {
            body.extend_from_slice(
                format!(
                    " {}",
                    1_700_000_000_000_000_000u64 + i as u64 * 10_000_000_000
                )
                .as_bytes(),
            );
        }
        body.push(b'\n');
    }
    body
}

/// `body` in `Transfer-Encoding: chunked` framing with chunks of `chunk` bytes, as a
/// client streaming its buffer would send it (hex sizes, an extension-free last chunk).
#[allow(dead_code)] // Not every bench target frames bodies.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 8 + 16);
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
