//! `Transfer-Encoding: chunked` bodies: `ChunkedDecoder::decode`.
//!
//! Oracles: nothing panics; decoding never produces more than the limit; and the result
//! does not depend on how the bytes were split between reads (the split point and the
//! limit come from the first two input bytes).

#![no_main]

use influx_relay::http::request::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

struct Outcome {
    result: Result<usize, u16>,
    out: Vec<u8>,
    done: bool,
}

fn once(data: &[u8], max: usize) -> Outcome {
    let mut d = ChunkedDecoder::default();
    let mut out = Vec::new();
    let result = d.decode(data, &mut out, max).map_err(|r| r.status);
    Outcome {
        result,
        out,
        done: d.is_done(),
    }
}

fn twice(data: &[u8], cut: usize, max: usize) -> Outcome {
    let mut d = ChunkedDecoder::default();
    let mut out = Vec::new();
    let result = match d.decode(&data[..cut], &mut out, max) {
        Ok(n) if d.is_done() => Ok(n),
        Ok(n) => {
            assert_eq!(n, cut, "an unfinished body consumes all it is given");
            d.decode(&data[cut..], &mut out, max).map(|m| n + m)
        }
        Err(r) => Err(r),
    }
    .map_err(|r| r.status);
    Outcome {
        result,
        out,
        done: d.is_done(),
    }
}

fuzz_target!(|input: &[u8]| {
    let [cut, max, data @ ..] = input else {
        return;
    };
    let max = *max as usize * 4;
    let cut = (*cut as usize * data.len()) / 255;

    let a = once(data, max);
    let b = twice(data, cut, max);
    assert!(a.out.len() <= max && b.out.len() <= max);
    assert_eq!(a.result, b.result, "split at {cut}");
    if a.result.is_ok() {
        assert_eq!(a.out, b.out, "split at {cut}");
        assert_eq!(a.done, b.done);
    }
    if let Ok(used) = a.result {
        assert!(used <= data.len());
        assert!(
            a.done || used == data.len(),
            "stops early only at the end of the body"
        );
    }
});
