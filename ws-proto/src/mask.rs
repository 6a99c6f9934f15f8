//! Payload masking (RFC 6455 §5.3), word at a time.
//!
//! The loop is safe code that the compiler vectorises. On x86-64 CPUs with AVX2 the same loop,
//! compiled for AVX2, is chosen at run time: the one `unsafe` of ws-proto is that call, right
//! after the check that makes it sound. It halves the loads and stores of the default SSE2
//! build: 2.0x the bandwidth unmasking 16 KiB in cache (criterion, `mask/unmask_in_place`), and
//! 1.5% less server CPU per message on the 16 KiB echo (scripts/bench-ab.sh, side by side).

/// XORs `buf` with the masking `key`, where `buf` starts at byte `offset` of the payload.
///
/// Masking and unmasking are the same operation. The loop works on 8-byte words so that the
/// compiler turns it into vector instructions (AVX2 where the CPU has it: see the module).
///
/// ```
/// let mut data = *b"Hello";
/// ws_proto::mask::apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    mask(buf, 0, key, offset, true);
}

/// Unmasks the payload bytes that start at `buf[from]` and moves them to the front of `buf`, in
/// one pass: afterwards `buf[i]` is `buf[from + i]` XOR the key, for every `i` below
/// `buf.len() - from` (what lies past that is left as it was), `offset` being the payload
/// offset of `buf[from]` as in [`apply_mask`]. `key` `None` only moves them.
///
/// A frame read whole into one buffer, header first, becomes its message this way at the cost
/// of the unmask alone: the move rides on the loads and stores the unmask makes anyway.
///
/// ```
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut data = *b"..Hello";
/// ws_proto::mask::apply_mask(&mut data[2..], key, 0);
/// ws_proto::mask::unmask_to_front(&mut data, 2, Some(key), 0);
/// assert_eq!(&data[..5], b"Hello");
/// ```
pub fn unmask_to_front(buf: &mut [u8], from: usize, key: Option<[u8; 4]>, offset: usize) {
    assert!(from <= buf.len(), "the payload starts inside the buffer");
    match key {
        Some(key) => mask(buf, from, key, offset, true),
        None if from > 0 => buf.copy_within(from.., 0),
        None => {}
    }
}

/// [`apply_mask`] in safe code only: the loop as built for the target (SSE2 on x86-64), never
/// the AVX2 one. What CPUs without AVX2 run; public for the benchmarks.
///
/// ```
/// let mut data = *b"Hello";
/// ws_proto::mask::apply_mask_portable(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
pub fn apply_mask_portable(buf: &mut [u8], key: [u8; 4], offset: usize) {
    mask(buf, 0, key, offset, false);
}

/// [`unmask_to_front`] with a key (in place when `from` is 0, as [`apply_mask`]), with the AVX2
/// loop where the CPU has it if `avx2`.
#[inline(always)]
fn mask(buf: &mut [u8], from: usize, key: [u8; 4], offset: usize, avx2: bool) {
    // The key as it lines up with `buf[from]`: rotated by the payload offset, in one
    // instruction.
    let key = (u32::from_le_bytes(key).rotate_right(8 * (offset & 3) as u32)).to_le_bytes();
    // Short payloads in place have loops of their own; one to move as well takes the word
    // loop, which moves at any length.
    if from == 0 && buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        return;
    }
    if from == 0 && buf.len() < 128 {
        // One 16-byte vector at a time: the word loop below is only vectorised from 128 bytes.
        let mut key16 = [0u8; 16];
        for (i, k) in key16.iter_mut().enumerate() {
            *k = key[i & 3];
        }
        let mut chunks = buf.chunks_exact_mut(16);
        for chunk in &mut chunks {
            for (b, k) in chunk.iter_mut().zip(key16) {
                *b ^= k;
            }
        }
        // The tail is shorter than 16 bytes and starts at a multiple of 4: key phase 0.
        for (b, k) in chunks.into_remainder().iter_mut().zip(key16) {
            *b ^= k;
        }
        return;
    }
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    xor_words(buf, from, word, avx2);
}

/// [`words`], with the AVX2 loop where the CPU has it if `avx2`.
#[inline(always)]
fn xor_words(buf: &mut [u8], from: usize, word: u64, avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `words_avx2` requires only that the CPU support AVX2, which it was just seen
        // to (the detection is cached: one load and a test).
        #[allow(unsafe_code)]
        unsafe {
            words_avx2(buf, from, word)
        };
        return;
    }
    let _ = avx2;
    words(buf, from, word);
}

/// [`words`] compiled for AVX2: 32-byte vectors, half the loads and stores of SSE2's. Safe code
/// throughout; only calling it is unsafe, where the CPU might lack AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn words_avx2(buf: &mut [u8], from: usize, word: u64) {
    words(buf, from, word);
}

/// XORs `buf[from..]`, whose key phase is 0, with `word` (the key twice), 32 bytes at a time,
/// and stores it from `buf[0]` on. In place when `from` is 0, the common case, which has a loop
/// of its own: with the load and the store at one address there is nothing to keep apart.
#[inline(always)]
fn words(buf: &mut [u8], from: usize, word: u64) {
    if from == 0 {
        let mut chunks = buf.chunks_exact_mut(32);
        for chunk in &mut chunks {
            for lane in chunk.chunks_exact_mut(8) {
                let v = u64::from_ne_bytes(lane.try_into().expect("8-byte lane")) ^ word;
                lane.copy_from_slice(&v.to_ne_bytes());
            }
        }
        // The tail is shorter than 32 bytes and starts at a multiple of 4: key phase 0.
        let key = word.to_ne_bytes();
        for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        return;
    }
    match from {
        // The header of every masked frame of 126 to 65,535 bytes: inlined with the distance a
        // constant, the loop is vectorised as the one in place is. With the distance a
        // variable the compiler guards its vector loop with a check that a vector's store
        // cannot land on a load still to come, which holds from a few vectors' distance on (the
        // large frames' reads use 256 bytes or more) and sends a shift by a few bytes to a loop
        // a lane at a time, 3.4 times as slow.
        8 => words_shifted(buf, 8, word),
        _ => words_shifted(buf, from, word),
    }
}

/// [`words`] for a payload that starts `from` bytes in, moved to the front as it is unmasked:
/// each lane is loaded before the store that may overwrite it.
#[inline(always)]
fn words_shifted(buf: &mut [u8], from: usize, word: u64) {
    let len = buf.len() - from;
    let whole = len - len % 8;
    for at in (0..whole).step_by(8) {
        let lane: [u8; 8] = buf[from + at..from + at + 8]
            .try_into()
            .expect("8-byte lane");
        let v = u64::from_ne_bytes(lane) ^ word;
        buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    let key = word.to_ne_bytes();
    for i in whole..len {
        buf[i] = buf[from + i] ^ key[i & 3];
    }
}

/// Byte-at-a-time reference implementation, for tests and benchmarks.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..300),
                             key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut a = data.clone();
            let mut b = data.clone();
            let mut c = data;
            apply_mask(&mut a, key, offset);
            apply_mask_naive(&mut b, key, offset);
            apply_mask_portable(&mut c, key, offset);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(c, b);
        }

        #[test]
        fn avx2_equals_default(data in proptest::collection::vec(any::<u8>(), 0..1100),
                               key in any::<[u8; 4]>(), from in prop_oneof![Just(0usize), Just(8), 1usize..12]) {
            // Only where the CPU has AVX2; elsewhere apply_mask never takes that path.
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let word = u64::from_ne_bytes([
                    key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
                ]);
                let from = from.min(data.len());
                let mut a = data.clone();
                let mut b = data.clone();
                // SAFETY: the CPU supports AVX2 (checked above).
                #[allow(unsafe_code)]
                unsafe { words_avx2(&mut a, from, word) };
                words(&mut b, from, word);
                prop_assert_eq!(&a, &b);
                let mut expected = data.clone();
                expected.copy_within(from.., 0);
                apply_mask_naive(&mut expected[..data.len() - from], key, 0);
                prop_assert_eq!(&a, &expected);
                apply_mask_naive(&mut b, key, 0);
                apply_mask(&mut a, key, 0);
                prop_assert_eq!(a, b);
            }
            let _ = (data, key, from);
        }

        #[test]
        fn unmask_to_front_equals_move_then_unmask(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            key in any::<[u8; 4]>(),
            from in prop_oneof![0usize..40, Just(8), 200usize..700],
            offset in 0usize..8,
            masked in any::<bool>(),
        ) {
            let from = from.min(data.len());
            let len = data.len() - from;
            let mut expected = data.clone();
            expected.copy_within(from.., 0);
            if masked {
                apply_mask_naive(&mut expected[..len], key, offset);
            }
            let mut got = data;
            unmask_to_front(&mut got, from, masked.then_some(key), offset);
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn split_masking_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..300),
                                      key in any::<[u8; 4]>(), cut in 0usize..300) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data;
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, parts);
        }
    }
}
