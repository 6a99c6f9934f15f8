//! A small seeded generator for masking keys and handshake nonces.
//!
//! ws-proto has no access to the OS, so the caller seeds it (adapters seed from the OS's
//! randomness). xoshiro256++ is fast and its output is not a constant or a counter, which is what
//! RFC 6455 §5.3 asks of masking keys sent by non-browser clients.

/// xoshiro256++ seeded by the caller.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a 32-byte seed (an all-zero seed is remapped, since it would be stuck).
    pub fn from_seed(seed: [u8; 32]) -> Rng {
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            *w = u64::from_le_bytes(seed[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        if s == [0; 4] {
            s = [
                0x9e37_79b9_7f4a_7c15,
                0xbf58_476d_1ce4_e5b9,
                0x94d0_49bb_1331_11eb,
                1,
            ];
        }
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[0]
            .wrapping_add(self.s[3])
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A fresh masking key.
    pub fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// 16 random bytes (a handshake nonce).
    pub fn nonce(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_vary_and_depend_on_seed() {
        let mut a = Rng::from_seed([1; 32]);
        let mut b = Rng::from_seed([2; 32]);
        let ka: Vec<_> = (0..8).map(|_| a.mask_key()).collect();
        let kb: Vec<_> = (0..8).map(|_| b.mask_key()).collect();
        assert_ne!(ka, kb);
        assert!(ka.windows(2).any(|w| w[0] != w[1]));
        let mut z = Rng::from_seed([0; 32]);
        assert_ne!(z.next_u64(), z.next_u64());
    }
}
