//! Byte classification, 64 bytes at a time: AVX2 where the CPU has it, else SSE2 (part
//! of every x86_64), else plain code.

/// What 64 consecutive bytes are, bit `k` for byte `k`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits {
    /// `,` ` ` `=` `\` `\n`: where the grammar can change state outside a string.
    pub stops: u64,
    /// Anything but `0`..=`9`.
    pub non_digits: u64,
    /// `\n` alone: where a line may end, found without walking the other stops.
    pub newlines: u64,
}

impl Bits {
    fn shr(self, n: u32) -> Bits {
        Bits {
            stops: self.stops >> n,
            non_digits: self.non_digits >> n,
            newlines: self.newlines >> n,
        }
    }

    fn and(self, mask: u64) -> Bits {
        Bits {
            stops: self.stops & mask,
            non_digits: self.non_digits & mask,
            newlines: self.newlines & mask,
        }
    }
}

/// Fill `out[w]` with the bits of `buf[at + 64 * w..][..64]`; bits past the end of
/// `buf` are clear.
pub fn classify(buf: &[u8], at: usize, out: &mut [Bits]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been seen to support AVX2.
            unsafe { x86::classify_avx2(buf, at, out) }
        } else {
            // SAFETY: SSE2 is part of the x86_64 baseline.
            unsafe { x86::classify_sse2(buf, at, out) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    fill(buf, at, out, portable)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable(block: &[u8; 64]) -> Bits {
    let mut bits = Bits::default();
    for (k, &b) in block.iter().enumerate() {
        let stop = matches!(b, b',' | b' ' | b'=' | b'\\' | b'\n');
        bits.stops |= u64::from(stop) << k;
        bits.non_digits |= u64::from(!b.is_ascii_digit()) << k;
        bits.newlines |= u64::from(b == b'\n') << k;
    }
    bits
}

/// `classify`, with `block` classifying 64 bytes.
#[inline(always)]
fn fill(buf: &[u8], at: usize, out: &mut [Bits], block: impl Fn(&[u8; 64]) -> Bits) {
    let len = buf.len();
    for (w, bits) in out.iter_mut().enumerate() {
        let start = at + 64 * w;
        *bits = if let Some(b) = buf.get(start..).and_then(<[u8]>::first_chunk::<64>) {
            block(b)
        } else if start >= len {
            Bits::default()
        } else if let Some(b) = buf.last_chunk::<64>() {
            // The tail: classify the buffer's last 64 bytes, which reach back before
            // `start`, and shift those earlier bytes out.
            block(b).shr((start - (len - 64)) as u32)
        } else {
            // A buffer under 64 bytes: pad it, and clear the padding's bits.
            let mut b = [0u8; 64];
            b[..len - start].copy_from_slice(&buf[start..]);
            block(&b).and(u64::MAX >> (64 - (len - start)))
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Bits;
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_broadcastsi128_si256,
        _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
        _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16, _mm_and_si128,
        _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_setr_epi8,
    };

    #[target_feature(enable = "avx2")]
    pub fn classify_avx2(buf: &[u8], at: usize, out: &mut [Bits]) {
        super::fill(buf, at, out, |block| {
            let (s0, d0, n0) = half_avx2(block, 0);
            let (s1, d1, n1) = half_avx2(block, 32);
            Bits {
                stops: s0 | s1 << 32,
                non_digits: d0 | d1 << 32,
                newlines: n0 | n1 << 32,
            }
        })
    }

    /// (stops, non-digits, newlines) of `block[k..k + 32]`, each byte classified by
    /// looking its two nibbles up in 16-byte tables and ANDing the answers: bits 0-2
    /// and 6 mark the stops (bit 6 `\n` alone), bit 7 the digits. Five vector
    /// operations classify 32 bytes, where a compare per stop byte and two for the
    /// digits (and ORs and an AND) took twelve.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn half_avx2(block: &[u8; 64], k: usize) -> (u64, u64, u64) {
        // The classes: stops by high nibble (`\n` alone in its own), and the digits.
        const NL: i8 = 0x40; // `\n`
        const S2: i8 = 0x01; // ` ` `,`
        const S3: i8 = 0x02; // `=`
        const S5: i8 = 0x04; // `\`
        const DIGIT: i8 = i8::MIN;
        // By low nibble, then by high; a byte >= 0x80 finds 0 in `lo` (its high bit
        // is set) and its high nibble none in `hi`.
        #[rustfmt::skip]
        let lo = _mm256_broadcastsi128_si256(_mm_setr_epi8(
            DIGIT | S2, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT,
            DIGIT, DIGIT, NL, 0, S2 | S5, S3, 0, 0,
        ));
        #[rustfmt::skip]
        let hi = _mm256_broadcastsi128_si256(_mm_setr_epi8(
            NL, 0, S2, DIGIT | S3, 0, S5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ));
        // SAFETY: `k` is 0 or 32, so the unaligned 32-byte load stays inside `block`.
        let v: __m256i = unsafe { _mm256_loadu_si256(block[k..].as_ptr().cast()) };
        // A byte >= 0x80 looks up 0 in `lo` (its high bit is set).
        let high_nibbles = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
        let class = _mm256_and_si256(
            _mm256_shuffle_epi8(lo, v),
            _mm256_shuffle_epi8(hi, high_nibbles),
        );
        let mask = |m: __m256i| u64::from(_mm256_movemask_epi8(m) as u32);
        // A stop's class is positive, a digit's negative; doubling moves bit 6 to 7.
        let stops = _mm256_cmpgt_epi8(class, _mm256_setzero_si256());
        let newlines = _mm256_add_epi8(class, class);
        (mask(stops), !mask(class) & 0xffff_ffff, mask(newlines))
    }

    #[target_feature(enable = "sse2")]
    pub fn classify_sse2(buf: &[u8], at: usize, out: &mut [Bits]) {
        super::fill(buf, at, out, |block| {
            let mut bits = Bits::default();
            for k in 0..4 {
                let (s, d, n) = quarter_sse2(block, 16 * k);
                bits.stops |= s << (16 * k);
                bits.non_digits |= d << (16 * k);
                bits.newlines |= n << (16 * k);
            }
            bits
        })
    }

    /// (stops, non-digits, newlines) of `block[k..k + 16]`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn quarter_sse2(block: &[u8; 64], k: usize) -> (u64, u64, u64) {
        // SAFETY: `k` is at most 48, so the unaligned 16-byte load stays inside `block`.
        let v: __m128i = unsafe { _mm_loadu_si128(block[k..].as_ptr().cast()) };
        let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let newlines = is(b'\n');
        let stops = _mm_or_si128(
            _mm_or_si128(is(b','), is(b' ')),
            _mm_or_si128(_mm_or_si128(is(b'='), is(b'\\')), newlines),
        );
        let digits = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let mask = |m: __m128i| u64::from(_mm_movemask_epi8(m) as u16);
        (mask(stops), !mask(digits) & 0xffff, mask(newlines))
    }
}

#[cfg(test)]
mod tests {
    use super::Bits;
    use proptest::prelude::*;

    /// One byte at a time, as the contract of `classify` says.
    fn reference(buf: &[u8], at: usize, words: usize) -> Vec<Bits> {
        let mut out = vec![Bits::default(); words];
        for k in 0..64 * words {
            let Some(&b) = buf.get(at + k) else { break };
            let bits = &mut out[k / 64];
            let bit = 1 << (k % 64);
            if matches!(b, b',' | b' ' | b'=' | b'\\' | b'\n') {
                bits.stops |= bit;
            }
            if !b.is_ascii_digit() {
                bits.non_digits |= bit;
            }
            if b == b'\n' {
                bits.newlines |= bit;
            }
        }
        out
    }

    type Fill = fn(&[u8], usize, &mut [Bits]);

    fn run(fill: Fill, buf: &[u8], at: usize, words: usize) -> Vec<Bits> {
        // Start dirty: `classify` must write every word it is given.
        let dirty = Bits {
            stops: !0,
            non_digits: !0,
            newlines: !0,
        };
        let mut out = vec![dirty; words];
        fill(buf, at, &mut out);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_classifier_agrees_with_the_reference(
            buf in prop::collection::vec(
                prop::sample::select(b", =\\\n\"09/:az\x80\xff".to_vec()),
                1..300,
            ),
            at in any::<prop::sample::Index>(),
            words in 1usize..6,
        ) {
            let at = at.index(buf.len());
            let want = reference(&buf, at, words);
            prop_assert_eq!(run(super::classify, &buf, at, words), want.clone());
            prop_assert_eq!(
                run(|b, a, o| super::fill(b, a, o, super::portable), &buf, at, words),
                want.clone()
            );
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: SSE2 is part of the x86_64 baseline.
                let sse2: Fill = |b, a, o| unsafe { super::x86::classify_sse2(b, a, o) };
                prop_assert_eq!(run(sse2, &buf, at, words), want.clone());
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has just been seen to support AVX2.
                    let avx2: Fill = |b, a, o| unsafe { super::x86::classify_avx2(b, a, o) };
                    prop_assert_eq!(run(avx2, &buf, at, words), want);
                }
            }
        }
    }
}
