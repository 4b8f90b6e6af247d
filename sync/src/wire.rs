//! lib0 primitives, strictly: the unsigned and signed variable-length integers, length-prefixed
//! byte arrays and strings that y-protocols frames and v1 updates are made of.
//!
//! The [`Reader`] never reads past its buffer and never allocates on a declared length: every
//! length is checked against the bytes actually left before it is used. Unsigned varints must
//! be canonical (no redundant trailing zero group, as lib0 and yrs always write them) and fit
//! in 64 bits, so that decoding is injective and re-encoding a decoded frame gives back the same
//! bytes.

use crate::error::ProtocolError;

/// Largest integer a JavaScript peer can represent exactly (2^53 − 1); Yjs client ids and the
/// yrs `ClientID` are limited to it.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A cursor over one frame or payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`ProtocolError::TrailingBytes`] unless every byte has been read.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ProtocolError::TrailingBytes { count }),
        }
    }

    /// One byte.
    pub fn read_u8(&mut self) -> Result<u8, ProtocolError> {
        let byte = *self.buf.get(self.pos).ok_or(ProtocolError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    /// Exactly `len` bytes.
    pub fn read_exact(&mut self, len: usize) -> Result<&'a [u8], ProtocolError> {
        if len > self.remaining() {
            return Err(ProtocolError::LengthPastEnd {
                declared: len as u64,
                remaining: self.remaining(),
            });
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// A canonical unsigned varint (lib0 `readVarUint`) of at most 64 bits.
    pub fn read_var_u64(&mut self) -> Result<u64, ProtocolError> {
        let mut value: u64 = 0;
        let mut shift: u32 = 0;
        loop {
            let byte = match self.read_u8() {
                Ok(byte) => byte,
                Err(_) => return Err(ProtocolError::TruncatedVarint),
            };
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(ProtocolError::MalformedVarint);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                // A last group of zero after at least one group is an overlong encoding.
                if byte == 0 && shift > 0 {
                    return Err(ProtocolError::MalformedVarint);
                }
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(ProtocolError::MalformedVarint);
            }
        }
    }

    /// A canonical unsigned varint that fits in 32 bits (clocks and lengths in updates).
    pub fn read_var_u32(&mut self) -> Result<u32, ProtocolError> {
        u32::try_from(self.read_var_u64()?).map_err(|_| ProtocolError::MalformedVarint)
    }

    /// A client id: a canonical unsigned varint no larger than 2^53 − 1.
    pub fn read_client_id(&mut self) -> Result<u64, ProtocolError> {
        let id = self.read_var_u64()?;
        if id > MAX_SAFE_INTEGER {
            return Err(ProtocolError::MalformedVarint);
        }
        Ok(id)
    }

    /// A length or count that cannot be larger than the bytes left divided by the fewest bytes
    /// one element takes (`min_element_len`, at least 1): a declared length never causes an
    /// allocation or a loop larger than the input.
    pub fn read_count(&mut self, min_element_len: usize) -> Result<usize, ProtocolError> {
        let declared = self.read_var_u64()?;
        let remaining = self.remaining();
        let fits = remaining / min_element_len.max(1);
        match usize::try_from(declared) {
            Ok(count) if count <= fits => Ok(count),
            _ => Err(ProtocolError::LengthPastEnd {
                declared,
                remaining,
            }),
        }
    }

    /// A varint length followed by that many bytes (lib0 `readVarUint8Array`).
    pub fn read_var_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.read_count(1)?;
        self.read_exact(len)
    }

    /// A varint length followed by that many bytes of UTF-8 (lib0 `readVarString`).
    pub fn read_var_string(&mut self) -> Result<&'a str, ProtocolError> {
        std::str::from_utf8(self.read_var_bytes()?).map_err(|_| ProtocolError::InvalidUtf8)
    }

    /// Skips a signed varint (lib0 `readVarInt`): a first byte with six value bits, a sign bit
    /// and a continuation bit, then seven value bits a byte. At most 8 bytes (55 value bits),
    /// which covers every integer lib0 writes (it refuses more than 53 bits) and keeps yrs's
    /// reader from shifting past 64 bits.
    pub fn skip_var_i64(&mut self) -> Result<(), ProtocolError> {
        const MAX_LEN: usize = 8;
        for _ in 0..MAX_LEN {
            let byte = match self.read_u8() {
                Ok(byte) => byte,
                Err(_) => return Err(ProtocolError::TruncatedVarint),
            };
            if byte & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(ProtocolError::MalformedVarint)
    }
}

/// Appends `value` as an unsigned varint (lib0 `writeVarUint`).
pub fn write_var_u64(out: &mut Vec<u8>, mut value: u64) {
    while value > 0x7f {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `bytes` with a varint length prefix (lib0 `writeVarUint8Array`).
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `text` as UTF-8 with a varint length prefix (lib0 `writeVarString`).
pub fn write_var_string(out: &mut Vec<u8>, text: &str) {
    write_var_bytes(out, text.as_bytes());
}

/// The number of bytes `value` takes as an unsigned varint.
pub fn var_u64_len(value: u64) -> usize {
    let bits = 64 - value.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_var_u64(&mut out, value);
        out
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        let mut values = vec![
            0,
            1,
            127,
            128,
            255,
            300,
            16_383,
            16_384,
            u64::MAX,
            u64::MAX - 1,
        ];
        values.extend((0..64).map(|shift| 1u64 << shift));
        values.extend((1..64).map(|shift| (1u64 << shift) - 1));
        for value in values {
            let bytes = encode(value);
            assert_eq!(bytes.len(), var_u64_len(value), "{value}");
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.read_var_u64().ok(), Some(value));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn matches_lib0_on_known_values() {
        assert_eq!(encode(0), [0x00]);
        assert_eq!(encode(127), [0x7f]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(2_000_001), [0x81, 0x89, 0x7a]);
    }

    #[test]
    fn refuses_truncated_overlong_and_overflowing_varints() {
        let cases: [(&[u8], ProtocolError); 6] = [
            (&[], ProtocolError::TruncatedVarint),
            (&[0x80], ProtocolError::TruncatedVarint),
            (&[0xff, 0xff], ProtocolError::TruncatedVarint),
            (&[0x80, 0x00], ProtocolError::MalformedVarint),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                ProtocolError::MalformedVarint,
            ),
            (&[0xff; 11], ProtocolError::MalformedVarint),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                Reader::new(bytes).read_var_u64(),
                Err(expected),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn counts_cannot_exceed_the_bytes_left() {
        let mut reader = Reader::new(&[0x03, 1, 2, 3]);
        assert_eq!(reader.read_count(1), Ok(3));
        let mut reader = Reader::new(&[0x03, 1, 2, 3]);
        assert!(matches!(
            reader.read_count(2),
            Err(ProtocolError::LengthPastEnd {
                declared: 3,
                remaining: 3
            })
        ));
        let mut reader = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            reader.read_var_bytes(),
            Err(ProtocolError::LengthPastEnd { .. })
        ));
    }

    #[test]
    fn signed_varints_are_bounded() {
        assert_eq!(Reader::new(&[0x7f]).skip_var_i64(), Ok(()));
        assert_eq!(Reader::new(&[0x40]).skip_var_i64(), Ok(())); // lib0's -0
        assert_eq!(
            Reader::new(&[0xff; 7]).skip_var_i64(),
            Err(ProtocolError::TruncatedVarint)
        );
        assert_eq!(
            Reader::new(&[0xff; 9]).skip_var_i64(),
            Err(ProtocolError::MalformedVarint)
        );
    }
}
