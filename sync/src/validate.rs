//! Validation of the payloads a client sends: v1 updates and state vectors, checked without
//! applying them.
//!
//! An update is accepted only if it is well-formed for **both** sides that will read it: the
//! server's yrs document and every JavaScript Yjs client it is relayed to. Two passes:
//!
//! 1. A bounded structural scan of the v1 update grammar, written here, that walks every struct,
//!    content and delete-set range without allocating. It refuses what yrs's decoder cannot be
//!    trusted with on hostile input: declared counts larger than the bytes left (yrs reserves
//!    memory for the declared count before reading), `Any` values nested deeper than
//!    [`MAX_ANY_DEPTH`] (yrs decodes them recursively: a deep nest would overflow the stack),
//!    client ids above 2^53 − 1 and clocks whose ranges overflow 32 bits (yrs asserts or wraps),
//!    signed varints wider than lib0 writes, trailing bytes; and content that Yjs and yrs read
//!    differently (the legacy JSON content, `Y.XmlHook`) or that only one of them knows (type
//!    references other than Yjs's seven), so a relayed update can never mean two things.
//! 2. [`yrs::Update::decode_v1`], which must also succeed.
//!
//! State vectors are decoded here directly, strictly, into a [`yrs::StateVector`].

use yrs::updates::decoder::Decode;
use yrs::{ClientID, StateVector, Update};

use crate::error::ProtocolError;
use crate::wire::Reader;

/// Deepest nesting of arrays and maps inside one `Any` value of an update (the same bound
/// serde_json, and so yrs, applies to JSON content).
pub const MAX_ANY_DEPTH: usize = 128;

// Struct kinds (the low five bits of a struct's info byte).
const GC: u8 = 0;
const SKIP: u8 = 10;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;
// Info flags.
const HAS_ORIGIN: u8 = 0x80;
const HAS_RIGHT_ORIGIN: u8 = 0x40;
const HAS_PARENT_SUB: u8 = 0x20;
// Type references of `ContentType`, as Yjs numbers them.
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_XML_HOOK: u8 = 5;
const TYPE_LAST_KNOWN: u8 = 6;

/// What a validated update contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Clients with structs in the update.
    pub clients: usize,
    /// Structs (items, GC and skip ranges) in the update.
    pub structs: usize,
    /// Deleted ranges in the update's delete set.
    pub deleted_ranges: usize,
}

impl UpdateSummary {
    /// An update that changes nothing: no structs and no deletions (what Yjs sends as step 2
    /// when it has nothing the other side lacks, `[0, 0]`).
    pub fn is_empty(&self) -> bool {
        self.structs == 0 && self.deleted_ranges == 0
    }
}

/// Checks that `bytes` is a v1 update that Yjs and yrs both decode, without applying it.
pub fn validate_update_v1(bytes: &[u8]) -> Result<UpdateSummary, ProtocolError> {
    let summary = scan_update(bytes).map_err(ProtocolError::invalid_update)?;
    Update::decode_v1(bytes).map_err(ProtocolError::invalid_update)?;
    Ok(summary)
}

/// Decodes a v1 state vector: a count, then that many (client id, clock) pairs, nothing after.
pub fn decode_state_vector_v1(bytes: &[u8]) -> Result<StateVector, ProtocolError> {
    let mut reader = Reader::new(bytes);
    let parse = |reader: &mut Reader<'_>| -> Result<StateVector, ProtocolError> {
        let count = reader.read_count(2)?;
        let mut state_vector = StateVector::default();
        for _ in 0..count {
            let client = reader.read_client_id()?;
            let clock = reader.read_var_u32()?;
            state_vector.set_max(ClientID::new(client), clock);
        }
        reader.finish()?;
        Ok(state_vector)
    };
    parse(&mut reader).map_err(ProtocolError::invalid_state_vector)
}

fn scan_update(bytes: &[u8]) -> Result<UpdateSummary, ProtocolError> {
    let mut reader = Reader::new(bytes);
    // Each client section takes at least 3 bytes: struct count, client id, first clock.
    let mut summary = UpdateSummary {
        clients: reader.read_count(3)?,
        ..UpdateSummary::default()
    };
    for _ in 0..summary.clients {
        // Each struct takes at least 2 bytes: its info byte and a length or content.
        let structs = reader.read_count(2)?;
        reader.read_client_id()?;
        let mut clock = u64::from(reader.read_var_u32()?);
        for _ in 0..structs {
            clock += scan_struct(&mut reader)?;
            if clock > u64::from(u32::MAX) {
                return Err(ProtocolError::MalformedVarint);
            }
        }
        summary.structs += structs;
    }
    // The delete set: clients, each with its ranges of (clock, length).
    let delete_clients = reader.read_count(2)?;
    for _ in 0..delete_clients {
        reader.read_client_id()?;
        let ranges = reader.read_count(2)?;
        for _ in 0..ranges {
            let clock = u64::from(reader.read_var_u32()?);
            let len = u64::from(reader.read_var_u32()?);
            if clock + len > u64::from(u32::MAX) {
                return Err(ProtocolError::MalformedVarint);
            }
        }
        summary.deleted_ranges += ranges;
    }
    reader.finish()?;
    Ok(summary)
}

fn refuse(detail: &str) -> ProtocolError {
    ProtocolError::InvalidUpdate {
        detail: detail.to_owned(),
    }
}

/// Walks one struct and returns the number of clock ticks it spans (an upper bound for
/// strings: their UTF-16 length, which is what both Yjs and yrs count by default).
fn scan_struct(reader: &mut Reader<'_>) -> Result<u64, ProtocolError> {
    let info = reader.read_u8()?;
    match info {
        GC | SKIP => return non_empty(reader.read_var_u32()?),
        _ => {}
    }
    let kind = info & 0x1f;
    if kind == GC || kind == SKIP {
        // Yjs would read a GC or skip range here, yrs an item: refuse the ambiguity.
        return Err(refuse("range struct with item flags"));
    }
    if info & HAS_ORIGIN != 0 {
        read_id(reader)?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        read_id(reader)?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        // No origin to copy the parent from: the parent is written out.
        match reader.read_var_u64()? {
            1 => {
                reader.read_var_string()?;
            }
            0 => read_id(reader)?,
            _ => return Err(refuse("unknown parent kind")),
        }
        if info & HAS_PARENT_SUB != 0 {
            reader.read_var_string()?;
        }
    }
    match kind {
        CONTENT_DELETED => non_empty(reader.read_var_u32()?),
        CONTENT_JSON => Err(refuse("legacy JSON content is not supported")),
        CONTENT_BINARY => {
            reader.read_var_bytes()?;
            Ok(1)
        }
        CONTENT_STRING => {
            let text = reader.read_var_string()?;
            non_empty(text.encode_utf16().count() as u64)
        }
        CONTENT_EMBED => {
            reader.read_var_string()?;
            Ok(1)
        }
        CONTENT_FORMAT => {
            reader.read_var_string()?;
            reader.read_var_string()?;
            Ok(1)
        }
        CONTENT_TYPE => {
            let type_ref = reader.read_u8()?;
            if type_ref == TYPE_XML_HOOK {
                return Err(refuse("XmlHook types are not supported"));
            }
            if type_ref > TYPE_LAST_KNOWN {
                return Err(refuse("unknown type reference"));
            }
            if type_ref == TYPE_XML_ELEMENT {
                reader.read_var_string()?;
            }
            Ok(1)
        }
        CONTENT_ANY => {
            let count = reader.read_count(1)?;
            for _ in 0..count {
                scan_any(reader, 0)?;
            }
            non_empty(count as u64)
        }
        CONTENT_DOC => {
            reader.read_var_string()?;
            scan_any(reader, 0)?;
            Ok(1)
        }
        _ => Err(refuse("unknown content type")),
    }
}

fn non_empty(len: impl Into<u64>) -> Result<u64, ProtocolError> {
    match len.into() {
        0 => Err(refuse("empty struct")),
        len => Ok(len),
    }
}

fn read_id(reader: &mut Reader<'_>) -> Result<(), ProtocolError> {
    reader.read_client_id()?;
    reader.read_var_u32()?;
    Ok(())
}

/// Walks one lib0 `Any` value.
fn scan_any(reader: &mut Reader<'_>, depth: usize) -> Result<(), ProtocolError> {
    if depth > MAX_ANY_DEPTH {
        return Err(refuse("value nested too deeply"));
    }
    match reader.read_u8()? {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => {}
        // integer
        125 => reader.skip_var_i64()?,
        // float32
        124 => {
            reader.read_exact(4)?;
        }
        // float64, bigint
        123 | 122 => {
            reader.read_exact(8)?;
        }
        // string
        119 => {
            reader.read_var_string()?;
        }
        // object: a key and a value (at least 2 bytes) per entry
        118 => {
            let entries = reader.read_count(2)?;
            for _ in 0..entries {
                reader.read_var_string()?;
                scan_any(reader, depth + 1)?;
            }
        }
        // array
        117 => {
            let items = reader.read_count(1)?;
            for _ in 0..items {
                scan_any(reader, depth + 1)?;
            }
        }
        // binary
        116 => {
            reader.read_var_bytes()?;
        }
        _ => return Err(refuse("unknown value type")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    fn doc_update() -> Vec<u8> {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "hello world");
        text.remove_range(&mut txn, 0, 6);
        drop(txn);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        update
    }

    #[test]
    fn accepts_what_yrs_encodes() {
        let update = doc_update();
        let summary = validate_update_v1(&update).expect("valid");
        assert_eq!(summary.clients, 1);
        assert!(summary.structs >= 1);
        assert_eq!(summary.deleted_ranges, 1);
        let other = Doc::new();
        other
            .transact_mut()
            .apply_update(Update::decode_v1(&update).expect("decodes"))
            .expect("applies");
        let text = other.get_or_insert_text("t");
        assert_eq!(text.get_string(&other.transact()), "world");
    }

    #[test]
    fn empty_update_is_empty() {
        assert!(validate_update_v1(&[0, 0]).expect("valid").is_empty());
        assert!(validate_update_v1(&[0]).is_err());
        assert!(validate_update_v1(&[0, 0, 0]).is_err());
    }

    #[test]
    fn refuses_hostile_updates_yrs_would_choke_on() {
        // One client, one struct of client 1 at clock 0: an item in root "a" with `Any`
        // content nested 10 000 arrays deep.
        let mut deep = vec![1, 1, 1, 0, CONTENT_ANY, 1, 1, b'a', 1];
        deep.extend(std::iter::repeat_n([117u8, 1], 10_000).flatten());
        deep.extend([126, 0]);
        assert!(matches!(
            validate_update_v1(&deep),
            Err(ProtocolError::InvalidUpdate { .. })
        ));

        // A client id above 2^53 − 1 (yrs debug-asserts it away).
        let mut big_client = vec![1, 1];
        crate::wire::write_var_u64(&mut big_client, 1 << 60);
        big_client.extend([0, GC, 1, 0]);
        assert!(validate_update_v1(&big_client).is_err());

        // A deleted range whose end overflows 32 bits (yrs adds without checking).
        let mut overflow = vec![0, 1, 1, 1];
        crate::wire::write_var_u64(&mut overflow, u64::from(u32::MAX));
        overflow.push(2);
        assert!(validate_update_v1(&overflow).is_err());

        // A struct whose clock range passes 2^32.
        let mut clock = vec![1, 1, 1];
        crate::wire::write_var_u64(&mut clock, u64::from(u32::MAX));
        clock.extend([GC, 2, 0]);
        assert!(validate_update_v1(&clock).is_err());

        // 2^28 clients declared in five bytes.
        assert!(validate_update_v1(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
    }

    #[test]
    fn state_vectors_decode_strictly() {
        let sv = decode_state_vector_v1(&[2, 1, 5, 2, 9]).expect("valid");
        assert_eq!(sv.get(&ClientID::new(1)), 5);
        assert_eq!(sv.get(&ClientID::new(2)), 9);
        assert!(decode_state_vector_v1(&[0]).expect("valid").is_empty());
        for bad in [
            &[][..],
            &[1, 1],
            &[1, 1, 5, 0],
            &[0xff, 0xff, 0xff, 0x7a],
            &[1, 1, 0x80, 0x80, 0x80, 0x80, 0x10],
        ] {
            assert!(
                matches!(
                    decode_state_vector_v1(bad),
                    Err(ProtocolError::InvalidStateVector { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
