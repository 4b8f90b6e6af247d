//! Awareness (presence): the y-protocols awareness update, a room's table of states, and the
//! client ids a connection introduced.
//!
//! An awareness update is `varuint(n)` then `n` times `varuint(client id) varuint(clock)
//! varstring(JSON state)`, where the JSON `null` means the client is gone. States are kept as
//! the JSON text the client sent ([`RawValue`]): the server relays presence, it does not
//! interpret it.
//!
//! * [`AwarenessUpdate`] decodes and encodes the payload ([`AwarenessUpdate::removal`] builds the
//!   one a room broadcasts when a client disconnects).
//! * [`AwarenessStates`] is a room's table, applying updates with Yjs's rule (a newer clock
//!   wins; a removal at the same clock wins) and reporting what was added, updated and removed.
//! * [`IntroducedClients`] remembers which client ids one connection brought into the room, so
//!   that the room can remove exactly those when the connection closes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::error::ProtocolError;
use crate::protocol::{encode_awareness, ProtocolLimits};
use crate::wire::{write_var_string, write_var_u64, Reader, MAX_SAFE_INTEGER};

/// One client's entry in an awareness update.
#[derive(Debug, Clone)]
pub struct AwarenessEntry {
    /// The Yjs client id (at most 2^53 − 1).
    pub client_id: u64,
    /// The client's awareness clock; a higher clock replaces a lower one.
    pub clock: u64,
    /// The state as JSON text, or `None` for the JSON `null`: the client is gone.
    pub state: Option<Box<RawValue>>,
}

impl AwarenessEntry {
    /// An entry with `state` given as JSON text (`None` or `"null"` for a removal).
    pub fn new(client_id: u64, clock: u64, state: Option<&str>) -> Result<Self, ProtocolError> {
        if client_id > MAX_SAFE_INTEGER || clock > MAX_SAFE_INTEGER {
            return Err(ProtocolError::invalid_awareness(
                "client id or clock above 2^53 - 1",
            ));
        }
        let state = match state {
            None => None,
            Some(json) => parse_state(json)?,
        };
        Ok(Self {
            client_id,
            clock,
            state,
        })
    }

    /// Whether this entry removes the client.
    pub fn is_removal(&self) -> bool {
        self.state.is_none()
    }

    /// The state's JSON text, `"null"` for a removal.
    pub fn state_json(&self) -> &str {
        self.state.as_deref().map_or("null", RawValue::get)
    }
}

impl PartialEq for AwarenessEntry {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id
            && self.clock == other.clock
            && self.state_json() == other.state_json()
    }
}

impl Eq for AwarenessEntry {}

fn parse_state(json: &str) -> Result<Option<Box<RawValue>>, ProtocolError> {
    let raw: Box<RawValue> =
        serde_json::from_str(json).map_err(ProtocolError::invalid_awareness)?;
    Ok(if raw.get().trim() == "null" {
        None
    } else {
        Some(raw)
    })
}

/// A validated awareness update, with the bytes it was sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessUpdate {
    bytes: Vec<u8>,
    entries: Vec<AwarenessEntry>,
}

impl AwarenessUpdate {
    /// Decodes and validates an awareness payload (the bytes inside a type 1 frame).
    pub fn decode(bytes: &[u8], limits: &ProtocolLimits) -> Result<Self, ProtocolError> {
        if bytes.len() > limits.max_awareness_bytes {
            return Err(ProtocolError::AwarenessTooLarge {
                len: bytes.len(),
                max: limits.max_awareness_bytes,
            });
        }
        let mut reader = Reader::new(bytes);
        let count = reader
            .read_count(3)
            .map_err(ProtocolError::invalid_awareness)?;
        if count > limits.max_awareness_states {
            return Err(ProtocolError::TooManyAwarenessStates {
                count,
                max: limits.max_awareness_states,
            });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let mut read_entry = || -> Result<AwarenessEntry, ProtocolError> {
                let client_id = reader.read_client_id()?;
                let clock = reader.read_var_u64()?;
                if clock > MAX_SAFE_INTEGER {
                    return Err(ProtocolError::MalformedVarint);
                }
                let state = parse_state(reader.read_var_string()?)?;
                Ok(AwarenessEntry {
                    client_id,
                    clock,
                    state,
                })
            };
            entries.push(read_entry().map_err(|error| match error {
                ProtocolError::InvalidAwareness { .. } => error,
                other => ProtocolError::invalid_awareness(other),
            })?);
        }
        reader.finish().map_err(ProtocolError::invalid_awareness)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            entries,
        })
    }

    /// Encodes `entries`.
    pub fn from_entries(entries: Vec<AwarenessEntry>) -> Self {
        let mut bytes = Vec::new();
        write_var_u64(&mut bytes, entries.len() as u64);
        for entry in &entries {
            write_var_u64(&mut bytes, entry.client_id);
            write_var_u64(&mut bytes, entry.clock);
            write_var_string(&mut bytes, entry.state_json());
        }
        Self { bytes, entries }
    }

    /// The removal of `clients`, each given with its last known clock: receivers holding a
    /// state at that clock drop it (Yjs accepts a `null` at an equal clock).
    pub fn removal(clients: impl IntoIterator<Item = (u64, u64)>) -> Self {
        Self::from_entries(
            clients
                .into_iter()
                .map(|(client_id, clock)| AwarenessEntry {
                    client_id,
                    clock,
                    state: None,
                })
                .collect(),
        )
    }

    /// The encoded payload.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entries, in the order they were encoded.
    pub fn entries(&self) -> &[AwarenessEntry] {
        &self.entries
    }

    /// Whether the update has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// This update as a type 1 frame.
    pub fn to_frame(&self) -> Vec<u8> {
        encode_awareness(&self.bytes)
    }
}

/// What applying an awareness update changed in an [`AwarenessStates`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwarenessChange {
    /// Clients that had no state and now have one.
    pub added: Vec<u64>,
    /// Clients whose state was replaced (a newer clock; the state may be equal: a renewal).
    pub updated: Vec<u64>,
    /// Clients whose state was removed.
    pub removed: Vec<u64>,
    /// The entries that took effect, to broadcast to the rest of the room; `None` when the
    /// update was entirely stale (e.g. a client echoing states it learned from the server).
    pub applied: Option<AwarenessUpdate>,
}

#[derive(Debug, Clone)]
struct ClientState {
    clock: u64,
    state: Option<Box<RawValue>>,
    updated_at: Instant,
}

/// A room's awareness table: the last clock of every client seen, and the present states.
#[derive(Debug, Clone, Default)]
pub struct AwarenessStates {
    clients: BTreeMap<u64, ClientState>,
}

impl AwarenessStates {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `update` with Yjs's rule: an entry takes effect if its clock is newer than the
    /// one known for its client, or equal with a `null` state while a state is present.
    pub fn apply(&mut self, update: &AwarenessUpdate, now: Instant) -> AwarenessChange {
        let mut change = AwarenessChange::default();
        let mut applied = Vec::new();
        for entry in update.entries() {
            let known = self.clients.get(&entry.client_id);
            let known_clock = known.map_or(0, |client| client.clock);
            let present = known.is_some_and(|client| client.state.is_some());
            let newer = entry.clock > known_clock;
            let removal_at_same_clock = entry.clock == known_clock && entry.is_removal() && present;
            if !(newer || removal_at_same_clock) {
                continue;
            }
            match (present, entry.is_removal()) {
                (false, false) => change.added.push(entry.client_id),
                (true, false) => change.updated.push(entry.client_id),
                (true, true) => change.removed.push(entry.client_id),
                (false, true) => {}
            }
            self.clients.insert(
                entry.client_id,
                ClientState {
                    clock: entry.clock,
                    state: entry.state.clone(),
                    updated_at: now,
                },
            );
            applied.push(entry.clone());
        }
        if !applied.is_empty() {
            change.applied = Some(AwarenessUpdate::from_entries(applied));
        }
        change
    }

    /// Every present state, for a client that joins or queries; `None` when there is none.
    pub fn encode_all(&self) -> Option<AwarenessUpdate> {
        let entries: Vec<AwarenessEntry> = self
            .clients
            .iter()
            .filter_map(|(&client_id, client)| {
                client.state.as_ref().map(|state| AwarenessEntry {
                    client_id,
                    clock: client.clock,
                    state: Some(state.clone()),
                })
            })
            .collect();
        (!entries.is_empty()).then(|| AwarenessUpdate::from_entries(entries))
    }

    /// Removes the states of `clients` (e.g. a closed connection's [`IntroducedClients`]) and
    /// returns the removal to broadcast, `None` if none of them had a state.
    pub fn remove(
        &mut self,
        clients: impl IntoIterator<Item = u64>,
        now: Instant,
    ) -> Option<AwarenessUpdate> {
        let mut removed = Vec::new();
        for client_id in clients {
            if let Some(client) = self.clients.get_mut(&client_id) {
                if client.state.take().is_some() {
                    client.updated_at = now;
                    removed.push((client_id, client.clock));
                }
            }
        }
        (!removed.is_empty()).then(|| AwarenessUpdate::removal(removed))
    }

    /// Removes every state not renewed within `timeout` (Yjs clients renew every 15 s and
    /// drop others' states after 30 s) and returns the removal to broadcast.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Option<AwarenessUpdate> {
        let stale: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, client)| {
                client.state.is_some()
                    && now.saturating_duration_since(client.updated_at) >= timeout
            })
            .map(|(&client_id, _)| client_id)
            .collect();
        self.remove(stale, now)
    }

    /// The present state of `client_id`, as JSON text.
    pub fn state(&self, client_id: u64) -> Option<&RawValue> {
        self.clients
            .get(&client_id)
            .and_then(|client| client.state.as_deref())
    }

    /// The last clock seen for `client_id`, present or removed.
    pub fn clock(&self, client_id: u64) -> Option<u64> {
        self.clients.get(&client_id).map(|client| client.clock)
    }

    /// How many clients have a present state.
    pub fn len(&self) -> usize {
        self.clients
            .values()
            .filter(|client| client.state.is_some())
            .count()
    }

    /// Whether no client has a present state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The awareness client ids one connection brought into its room.
///
/// Fed with the [`AwarenessChange`] of each awareness update the connection sent: ids it
/// added or renewed are its own (a stock client only ever sends a newer clock for its own id;
/// the states it echoes back are stale and change nothing), ids it removed are no longer.
/// When the connection closes, the room removes these ids ([`AwarenessStates::remove`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntroducedClients {
    clients: BTreeSet<u64>,
}

impl IntroducedClients {
    /// No client ids.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what one of this connection's awareness updates changed in the room.
    pub fn record(&mut self, change: &AwarenessChange) {
        self.clients
            .extend(change.added.iter().chain(&change.updated).copied());
        for client_id in &change.removed {
            self.clients.remove(client_id);
        }
    }

    /// Forgets `client_id` (e.g. another connection took it over).
    pub fn forget(&mut self, client_id: u64) {
        self.clients.remove(&client_id);
    }

    /// Whether `client_id` is one of this connection's.
    pub fn contains(&self, client_id: u64) -> bool {
        self.clients.contains(&client_id)
    }

    /// The client ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.clients.iter().copied()
    }

    /// How many client ids.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client_id: u64, clock: u64, state: Option<&str>) -> AwarenessEntry {
        AwarenessEntry::new(client_id, clock, state).expect("valid entry")
    }

    fn update(entries: Vec<AwarenessEntry>) -> AwarenessUpdate {
        AwarenessUpdate::from_entries(entries)
    }

    #[test]
    fn decodes_what_it_encodes() {
        let original = update(vec![
            entry(1, 1, Some(r#"{"name":"Ada","cursor":null}"#)),
            entry(1 << 52, 7, Some("[1,2,3]")),
            entry(3, 2, None),
        ]);
        let decoded =
            AwarenessUpdate::decode(original.bytes(), &ProtocolLimits::default()).expect("valid");
        assert_eq!(decoded, original);
        assert_eq!(decoded.entries()[2].state_json(), "null");
        assert!(decoded.entries()[2].is_removal());
    }

    #[test]
    fn refuses_bad_payloads() {
        let limits = ProtocolLimits::default();
        let mut not_json = Vec::new();
        write_var_u64(&mut not_json, 1);
        write_var_u64(&mut not_json, 1);
        write_var_u64(&mut not_json, 1);
        write_var_string(&mut not_json, "{nope");
        for bad in [
            &[][..],
            &[1, 1, 1],
            &[1, 1, 1, 4, b'n', b'u', b'l'],
            &not_json,
        ] {
            assert!(
                matches!(
                    AwarenessUpdate::decode(bad, &limits),
                    Err(ProtocolError::InvalidAwareness { .. })
                ),
                "{bad:?}"
            );
        }
        let many = update((0..5).map(|i| entry(i + 1, 1, Some("{}"))).collect());
        let tight = ProtocolLimits {
            max_awareness_states: 4,
            ..limits
        };
        assert!(matches!(
            AwarenessUpdate::decode(many.bytes(), &tight),
            Err(ProtocolError::TooManyAwarenessStates { count: 5, max: 4 })
        ));
        let small = ProtocolLimits {
            max_awareness_bytes: 4,
            ..limits
        };
        assert!(matches!(
            AwarenessUpdate::decode(many.bytes(), &small),
            Err(ProtocolError::AwarenessTooLarge { .. })
        ));
    }

    #[test]
    fn applies_with_the_yjs_rule() {
        let now = Instant::now();
        let mut states = AwarenessStates::new();
        let change = states.apply(&update(vec![entry(1, 1, Some(r#"{"a":1}"#))]), now);
        assert_eq!(change.added, [1]);
        assert!(change.applied.is_some());
        // An echo at the same clock changes nothing.
        let echo = states.apply(&update(vec![entry(1, 1, Some(r#"{"a":1}"#))]), now);
        assert_eq!(echo, AwarenessChange::default());
        // A clock-0 state of an unknown client is stale, as in Yjs.
        assert_eq!(
            states.apply(&update(vec![entry(2, 0, Some("{}"))]), now),
            AwarenessChange::default()
        );
        // A newer clock updates.
        let change = states.apply(&update(vec![entry(1, 2, Some(r#"{"a":2}"#))]), now);
        assert_eq!(change.updated, [1]);
        assert_eq!(states.state(1).map(RawValue::get), Some(r#"{"a":2}"#));
        // A removal at the same clock removes.
        let change = states.apply(&update(vec![entry(1, 2, None)]), now);
        assert_eq!(change.removed, [1]);
        assert!(states.is_empty());
        assert_eq!(states.clock(1), Some(2));
        // Older clocks are ignored after a removal too.
        assert_eq!(
            states.apply(&update(vec![entry(1, 1, Some("{}"))]), now),
            AwarenessChange::default()
        );
    }

    #[test]
    fn removes_and_expires() {
        let start = Instant::now();
        let mut states = AwarenessStates::new();
        states.apply(
            &update(vec![entry(1, 3, Some("{}")), entry(2, 5, Some("{}"))]),
            start,
        );
        let all = states.encode_all().expect("two states");
        assert_eq!(all.entries().len(), 2);

        let removal = states.remove([1, 99], start).expect("one removed");
        assert_eq!(removal.entries(), &[entry(1, 3, None)]);
        assert_eq!(states.remove([1], start), None);

        let later = start + Duration::from_secs(31);
        let expired = states
            .expire(later, Duration::from_secs(30))
            .expect("one expired");
        assert_eq!(expired.entries(), &[entry(2, 5, None)]);
        assert_eq!(states.encode_all(), None);

        // The removal a room broadcasts makes a Yjs-rule peer drop the state.
        let mut peer = AwarenessStates::new();
        peer.apply(&update(vec![entry(1, 3, Some("{}"))]), start);
        let change = peer.apply(&removal, start);
        assert_eq!(change.removed, [1]);
    }

    #[test]
    fn tracks_introduced_clients() {
        let now = Instant::now();
        let mut room = AwarenessStates::new();
        let mut mine = IntroducedClients::new();
        mine.record(&room.apply(&update(vec![entry(10, 1, Some("{}"))]), now));
        // Another connection's client arrives; this connection echoes it: stale, not ours.
        room.apply(&update(vec![entry(20, 1, Some("{}"))]), now);
        mine.record(&room.apply(
            &update(vec![entry(10, 1, Some("{}")), entry(20, 1, Some("{}"))]),
            now,
        ));
        assert_eq!(mine.iter().collect::<Vec<_>>(), [10]);
        mine.record(&room.apply(&update(vec![entry(10, 1, None)]), now));
        assert!(mine.is_empty());
    }

    #[test]
    fn accepts_what_json_stringify_writes_for_a_lone_surrogate() {
        // JavaScript escapes a lone surrogate (e.g. a name cut in the middle of an emoji) as
        // `\ud800`; refusing it would close the connection, and the stock client would
        // reconnect and send it again, forever. The state is relayed as the text it is.
        let entry = entry(1, 1, Some(r#"{"name":"\ud83d"}"#));
        assert_eq!(entry.state_json(), r#"{"name":"\ud83d"}"#);
        assert!(AwarenessEntry::new(1, 1, Some(" null "))
            .expect("json")
            .is_removal());
    }
}
