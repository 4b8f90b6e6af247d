//! The connection state machine: roles, rate limits, revocation, awareness ownership, and
//! documents converging through connections and an in-memory room.

use std::time::{Duration, Instant};

use potentia_sync::awareness::{AwarenessEntry, AwarenessStates, AwarenessUpdate};
use potentia_sync::close::{ACCESS_REVOKED, POLICY_VIOLATION, RATE_LIMITED};
use potentia_sync::protocol::{encode_sync_step1, encode_sync_step2, encode_sync_update};
use potentia_sync::{
    step2_frame, Action, AuthMessage, Close, Connection, ConnectionLimits, EncodedStateVector,
    Message, ProtocolLimits, RateLimit, Role, SyncMessage, READ_ONLY_REASON,
};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

fn decode(frame: &[u8]) -> Message {
    Message::decode(frame, &ProtocolLimits::default()).expect("server frames decode")
}

fn edit(doc: &Doc, at: u32, text: &str) -> Vec<u8> {
    let before = doc.transact().state_vector();
    let ytext = doc.get_or_insert_text("body");
    ytext.insert(&mut doc.transact_mut(), at, text);
    let update = doc.transact().encode_diff_v1(&before);
    update
}

fn update_frame(doc: &Doc, text: &str) -> Vec<u8> {
    encode_sync_update(&edit(doc, 0, text))
}

fn apply(doc: &Doc, update: &[u8]) {
    let update = Update::decode_v1(update).expect("update decodes");
    doc.transact_mut()
        .apply_update(update)
        .expect("update applies");
}

fn text(doc: &Doc) -> String {
    let ytext = doc.get_or_insert_text("body");
    let text = ytext.get_string(&doc.transact());
    text
}

fn awareness_frame(client_id: u64, clock: u64, state: Option<&str>) -> Vec<u8> {
    AwarenessUpdate::from_entries(vec![
        AwarenessEntry::new(client_id, clock, state).expect("valid entry")
    ])
    .to_frame()
}

#[test]
fn handshake_sends_step1_then_awareness() {
    let doc = Doc::with_client_id(1);
    edit(&doc, 0, "hello");
    let connection = Connection::new(Role::ReadOnly, ConnectionLimits::default());
    let actions = connection.handshake(&doc);
    assert_eq!(actions.len(), 2);
    let Action::Send(frame) = &actions[0] else {
        panic!("first action is not a send: {actions:?}")
    };
    let Message::Sync(SyncMessage::Step1(sv)) = decode(frame) else {
        panic!("not a step 1")
    };
    assert_eq!(sv.state_vector(), &doc.transact().state_vector());
    assert_eq!(actions[1], Action::SendAwarenessStates);
}

#[test]
fn step1_asks_for_step2_with_the_clients_state_vector() {
    let server = Doc::with_client_id(1);
    edit(&server, 0, "server text");
    let client = Doc::with_client_id(2);
    let client_sv = client.transact().state_vector();
    for role in [Role::ReadOnly, Role::ReadWrite] {
        let mut connection = Connection::new(role, ConnectionLimits::default());
        let frame = encode_sync_step1(EncodedStateVector::new(client_sv.clone()).bytes());
        let actions = connection.receive(&frame, Instant::now()).expect("valid");
        assert_eq!(
            actions,
            vec![Action::SendStep2 {
                state_vector: client_sv.clone()
            }]
        );
        let reply = step2_frame(&server, &client_sv);
        let Message::Sync(SyncMessage::Step2(update)) = decode(&reply) else {
            panic!("not a step 2")
        };
        let copy = Doc::with_client_id(3);
        apply(&copy, update.bytes());
        assert_eq!(text(&copy), "server text");
    }
}

#[test]
fn a_read_write_update_is_handed_to_the_room() {
    let client = Doc::with_client_id(2);
    let update = edit(&client, 0, "hi");
    let mut connection = Connection::new(Role::ReadWrite, ConnectionLimits::default());
    for frame in [encode_sync_update(&update), encode_sync_step2(&update)] {
        let actions = connection.receive(&frame, Instant::now()).expect("valid");
        let [Action::ApplyUpdate(applied)] = actions.as_slice() else {
            panic!("expected one ApplyUpdate, got {actions:?}")
        };
        assert_eq!(applied.bytes(), update.as_slice());
    }
    assert_eq!(connection.stats().updates_applied, 2);
}

#[test]
fn a_read_only_update_is_refused_with_an_auth_message_and_nothing_to_apply() {
    let client = Doc::with_client_id(2);
    let update = edit(&client, 0, "sneaky");
    let mut connection = Connection::new(Role::ReadOnly, ConnectionLimits::default());
    let now = Instant::now();
    for frame in [encode_sync_update(&update), encode_sync_step2(&update)] {
        let actions = connection.receive(&frame, now).expect("stays open");
        let [Action::Send(reply)] = actions.as_slice() else {
            panic!("expected one Send, got {actions:?}")
        };
        assert_eq!(
            decode(reply),
            Message::Auth(AuthMessage::PermissionDenied {
                reason: READ_ONLY_REASON.to_owned()
            })
        );
    }
    assert_eq!(connection.stats().writes_refused, 2);
    assert!(connection.closed().is_none());
    // An empty step 2 (what a read-only client with nothing new sends) is not a write.
    assert_eq!(
        connection.receive(&encode_sync_step2(&[0, 0]), now),
        Ok(vec![])
    );
    // Presence still works for viewers.
    let actions = connection
        .receive(&awareness_frame(2, 1, Some("{}")), now)
        .expect("valid");
    assert!(matches!(actions.as_slice(), [Action::ApplyAwareness(_)]));
}

#[test]
fn a_demoted_connection_stops_writing() {
    let client = Doc::with_client_id(2);
    let mut connection = Connection::new(Role::ReadWrite, ConnectionLimits::default());
    let now = Instant::now();
    let actions = connection
        .receive(&update_frame(&client, "a"), now)
        .expect("valid");
    assert!(matches!(actions.as_slice(), [Action::ApplyUpdate(_)]));
    connection.set_role(Role::ReadOnly);
    assert_eq!(connection.role(), Role::ReadOnly);
    let actions = connection
        .receive(&update_frame(&client, "b"), now)
        .expect("valid");
    assert!(matches!(actions.as_slice(), [Action::Send(_)]));
}

fn limits_with(updates: RateLimit, awareness: RateLimit, requests: RateLimit) -> ConnectionLimits {
    ConnectionLimits {
        updates,
        awareness,
        requests,
        ..ConnectionLimits::default()
    }
}

#[test]
fn the_update_rate_limit_closes_with_4029() {
    let limits = limits_with(
        RateLimit::new(5.0, 5.0),
        RateLimit::UNLIMITED,
        RateLimit::UNLIMITED,
    );
    let client = Doc::with_client_id(2);
    let start = Instant::now();
    let mut connection = Connection::new(Role::ReadWrite, limits);
    for i in 0..5 {
        connection
            .receive(&update_frame(&client, "x"), start)
            .unwrap_or_else(|close| panic!("update {i} refused: {close}"));
    }
    // A second later, five more fit.
    let later = start + Duration::from_secs(1);
    for _ in 0..5 {
        connection
            .receive(&update_frame(&client, "y"), later)
            .expect("refilled");
    }
    let close = connection
        .receive(&update_frame(&client, "z"), later)
        .expect_err("rate limited");
    assert_eq!(close.code, RATE_LIMITED);
    assert_eq!(close.reason, "rate limited: too many updates per second");
    // Closed for good.
    assert_eq!(
        connection.receive(&[3], later + Duration::from_secs(60)),
        Err(close)
    );

    // Refused read-only writes count too.
    let mut viewer = Connection::new(Role::ReadOnly, limits);
    for _ in 0..5 {
        viewer
            .receive(&update_frame(&client, "v"), start)
            .expect("refused, open");
    }
    let close = viewer
        .receive(&update_frame(&client, "v"), start)
        .expect_err("rate limited");
    assert_eq!(close.code, RATE_LIMITED);
}

#[test]
fn awareness_and_request_rate_limits_close_with_4029() {
    let now = Instant::now();
    let limits = limits_with(
        RateLimit::UNLIMITED,
        RateLimit::new(1.0, 2.0),
        RateLimit::new(1.0, 1.0),
    );
    let mut connection = Connection::new(Role::ReadWrite, limits);
    connection
        .receive(&awareness_frame(5, 1, Some("{}")), now)
        .expect("1");
    connection
        .receive(&awareness_frame(5, 2, Some("{}")), now)
        .expect("2");
    let close = connection
        .receive(&awareness_frame(5, 3, Some("{}")), now)
        .expect_err("limited");
    assert_eq!(
        close,
        Close::new(
            RATE_LIMITED,
            "rate limited: too many awareness updates per second"
        )
    );

    let mut connection = Connection::new(Role::ReadWrite, limits);
    connection.receive(&[3], now).expect("one query");
    let close = connection
        .receive(&encode_sync_step1(&[0]), now)
        .expect_err("limited");
    assert_eq!(
        close,
        Close::new(
            RATE_LIMITED,
            "rate limited: too many sync requests per second"
        )
    );
}

#[test]
fn an_auth_message_from_a_client_is_a_policy_violation() {
    let mut connection = Connection::new(Role::ReadWrite, ConnectionLimits::default());
    let frame = potentia_sync::protocol::encode_permission_denied("nope");
    let close = connection
        .receive(&frame, Instant::now())
        .expect_err("closed");
    assert_eq!(close.code, POLICY_VIOLATION);
}

#[test]
fn revoking_sends_the_reason_then_closes_with_4003() {
    let mut connection = Connection::new(Role::ReadWrite, ConnectionLimits::default());
    let (frame, close) = connection.revoke("you were removed from the workspace");
    assert_eq!(
        decode(&frame),
        Message::Auth(AuthMessage::PermissionDenied {
            reason: "you were removed from the workspace".to_owned()
        })
    );
    assert_eq!(close.code, ACCESS_REVOKED);
    let client = Doc::with_client_id(2);
    assert_eq!(
        connection.receive(&update_frame(&client, "late"), Instant::now()),
        Err(close)
    );
}

#[test]
fn an_expired_token_sends_the_reason_then_closes_with_4001() {
    let mut connection = Connection::new(Role::ReadWrite, ConnectionLimits::default());
    let (frame, close) = connection.unauthenticate("the access token expired");
    assert_eq!(
        decode(&frame),
        Message::Auth(AuthMessage::PermissionDenied {
            reason: "the access token expired".to_owned()
        })
    );
    assert_eq!(close.code, potentia_sync::close::UNAUTHENTICATED);
    let client = Doc::with_client_id(2);
    assert_eq!(
        connection.receive(&update_frame(&client, "late"), Instant::now()),
        Err(close)
    );
}

#[test]
fn a_connection_may_introduce_only_so_many_awareness_clients() {
    let limits = ConnectionLimits {
        max_awareness_clients: 2,
        ..ConnectionLimits::default()
    };
    let now = Instant::now();
    let mut room = AwarenessStates::new();
    let mut connection = Connection::new(Role::ReadWrite, limits);
    for client_id in 1..=2 {
        let actions = connection
            .receive(&awareness_frame(client_id, 1, Some("{}")), now)
            .expect("valid");
        let [Action::ApplyAwareness(update)] = actions.as_slice() else {
            panic!("expected ApplyAwareness")
        };
        connection
            .awareness_applied(&room.apply(update, now))
            .expect("within the limit");
    }
    let actions = connection
        .receive(&awareness_frame(3, 1, Some("{}")), now)
        .expect("valid");
    let [Action::ApplyAwareness(update)] = actions.as_slice() else {
        panic!("expected ApplyAwareness")
    };
    let close = connection
        .awareness_applied(&room.apply(update, now))
        .expect_err("too many");
    assert_eq!(
        close,
        Close::new(POLICY_VIOLATION, "too many awareness clients")
    );
    // The room removes all of them.
    let removal = room
        .remove(connection.introduced().iter(), now)
        .expect("a removal");
    assert_eq!(removal.entries().len(), 3);
    assert!(room.is_empty());
}

// ---------------------------------------------------------------------------------------------
// An in-memory room: one server document, connections, a durable log, awareness; clients are
// yrs documents speaking the protocol through the codec.

struct Client {
    doc: Doc,
    denied: Vec<String>,
    /// Awareness states this client has seen, by client id.
    presence: AwarenessStates,
}

struct Link {
    connection: Connection,
    /// Frames on their way to the client.
    to_client: Vec<Vec<u8>>,
    /// Frames on their way to the server.
    to_server: Vec<Vec<u8>>,
    open: bool,
}

struct Room {
    doc: Doc,
    /// The durable log: every update is appended here before it is applied or broadcast.
    log: Vec<Vec<u8>>,
    awareness: AwarenessStates,
    links: Vec<Link>,
    clients: Vec<Client>,
    now: Instant,
}

impl Room {
    fn new() -> Self {
        Self {
            doc: Doc::with_client_id(1),
            log: Vec::new(),
            awareness: AwarenessStates::new(),
            links: Vec::new(),
            clients: Vec::new(),
            now: Instant::now(),
        }
    }

    fn add_client(&mut self, client_id: u64) -> usize {
        self.clients.push(Client {
            doc: Doc::with_client_id(client_id),
            denied: Vec::new(),
            presence: AwarenessStates::new(),
        });
        self.links.push(Link {
            connection: Connection::new(Role::ReadWrite, ConnectionLimits::default()),
            to_client: Vec::new(),
            to_server: Vec::new(),
            open: false,
        });
        self.clients.len() - 1
    }

    /// Opens a fresh connection for client `i`: the server's handshake, the client's step 1.
    fn connect(&mut self, i: usize, role: Role) {
        let connection = Connection::new(role, ConnectionLimits::default());
        let actions = connection.handshake(&self.doc);
        self.links[i] = Link {
            connection,
            to_client: Vec::new(),
            to_server: Vec::new(),
            open: true,
        };
        self.perform(i, actions);
        let sv = self.clients[i].doc.transact().state_vector();
        self.links[i]
            .to_server
            .push(encode_sync_step1(EncodedStateVector::new(sv).bytes()));
    }

    fn disconnect(&mut self, i: usize) {
        self.links[i].open = false;
        self.links[i].to_client.clear();
        self.links[i].to_server.clear();
        let introduced: Vec<u64> = self.links[i].connection.introduced().iter().collect();
        if let Some(removal) = self.awareness.remove(introduced, self.now) {
            self.broadcast(i, removal.to_frame());
        }
    }

    fn broadcast(&mut self, from: usize, frame: Vec<u8>) {
        for (j, link) in self.links.iter_mut().enumerate() {
            if j != from && link.open {
                link.to_client.push(frame.clone());
            }
        }
    }

    fn perform(&mut self, i: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(frame) => self.links[i].to_client.push(frame),
                Action::SendStep2 { state_vector } => {
                    let frame = step2_frame(&self.doc, &state_vector);
                    self.links[i].to_client.push(frame);
                }
                Action::ApplyUpdate(update) => {
                    // Persist, then apply, then broadcast (ARCHITECTURE §4).
                    self.log.push(update.bytes().to_vec());
                    apply(&self.doc, update.bytes());
                    self.broadcast(i, encode_sync_update(update.bytes()));
                }
                Action::ApplyAwareness(update) => {
                    let change = self.awareness.apply(&update, self.now);
                    self.links[i]
                        .connection
                        .awareness_applied(&change)
                        .expect("within limits");
                    if let Some(applied) = change.applied {
                        self.broadcast(i, applied.to_frame());
                    }
                }
                Action::SendAwarenessStates => {
                    if let Some(all) = self.awareness.encode_all() {
                        self.links[i].to_client.push(all.to_frame());
                    }
                }
            }
        }
    }

    /// What a stock client does with a frame from the server.
    fn client_receives(&mut self, i: usize, frame: &[u8]) {
        let client = &mut self.clients[i];
        match decode(frame) {
            Message::Sync(SyncMessage::Step1(sv)) => {
                let reply = step2_frame(&client.doc, sv.state_vector());
                self.links[i].to_server.push(reply);
            }
            Message::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update)) => {
                apply(&client.doc, update.bytes());
            }
            Message::Awareness(update) => {
                client.presence.apply(&update, self.now);
            }
            Message::Auth(AuthMessage::PermissionDenied { reason }) => client.denied.push(reason),
            Message::QueryAwareness => {}
        }
    }

    /// Delivers frames both ways until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.links.len() {
                if !self.links[i].open {
                    continue;
                }
                for frame in std::mem::take(&mut self.links[i].to_server) {
                    moved = true;
                    let actions = self.links[i]
                        .connection
                        .receive(&frame, self.now)
                        .expect("a stock client's frames are accepted");
                    self.perform(i, actions);
                }
                for frame in std::mem::take(&mut self.links[i].to_client) {
                    moved = true;
                    self.client_receives(i, &frame);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// A local edit on client `i`, sent if connected (or kept for the next step 2 if not).
    fn local_edit(&mut self, i: usize, at_fraction: u64, text: &str) {
        let doc = &self.clients[i].doc;
        let len = doc.get_or_insert_text("body").len(&doc.transact());
        let at = (u64::from(len) * at_fraction / 100) as u32;
        let update = edit(doc, at, text);
        if self.links[i].open {
            self.links[i].to_server.push(encode_sync_update(&update));
        }
    }

    fn assert_converged(&self, clients: &[usize]) {
        let expected = text(&self.doc);
        let expected_sv = self.doc.transact().state_vector();
        for &i in clients {
            assert_eq!(text(&self.clients[i].doc), expected, "client {i}");
            assert_eq!(
                self.clients[i].doc.transact().state_vector(),
                expected_sv,
                "client {i}"
            );
        }
        // Replaying the durable log alone rebuilds the server's document.
        let replayed = Doc::with_client_id(99);
        for update in &self.log {
            apply(&replayed, update);
        }
        assert_eq!(text(&replayed), expected);
        assert!(!replayed.transact().has_missing_updates());
    }
}

#[test]
fn two_documents_converge_through_two_connections() {
    let mut room = Room::new();
    let a = room.add_client(1001);
    let b = room.add_client(1002);
    // Offline edits on both sides before they ever connect.
    room.local_edit(a, 0, "alpha ");
    room.local_edit(b, 0, "beta ");
    room.connect(a, Role::ReadWrite);
    room.connect(b, Role::ReadWrite);
    room.pump();
    room.assert_converged(&[a, b]);
    assert!(text(&room.doc).contains("alpha") && text(&room.doc).contains("beta"));

    // Concurrent edits while connected, delivered only afterwards.
    room.local_edit(a, 50, "[a]");
    room.local_edit(b, 50, "[b]");
    room.local_edit(a, 100, "!");
    room.pump();
    room.assert_converged(&[a, b]);
}

#[test]
fn random_edits_with_disconnects_converge() {
    // A small deterministic generator (SplitMix64).
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut room = Room::new();
    let clients: Vec<usize> = (0..5).map(|i| room.add_client(2000 + i)).collect();
    for &i in &clients {
        room.connect(i, Role::ReadWrite);
    }
    let mut edits = 0;
    for round in 0..60 {
        let i = clients[(next() % 5) as usize];
        match next() % 10 {
            0 if room.links[i].open => room.disconnect(i),
            1 if !room.links[i].open => room.connect(i, Role::ReadWrite),
            _ => {
                room.local_edit(i, next() % 101, &format!("<{round}>"));
                edits += 1;
            }
        }
        if next() % 3 == 0 {
            room.pump();
        }
    }
    for &i in &clients {
        if !room.links[i].open {
            room.connect(i, Role::ReadWrite);
        }
    }
    room.pump();
    room.assert_converged(&clients);
    // Every edit, made online or offline, is in the document once.
    assert_eq!(text(&room.doc).matches('<').count(), edits);
}

#[test]
fn a_read_only_clients_writes_never_land() {
    let mut room = Room::new();
    let writer = room.add_client(3001);
    let viewer = room.add_client(3002);
    room.local_edit(viewer, 0, "offline viewer edit ");
    room.connect(writer, Role::ReadWrite);
    room.connect(viewer, Role::ReadOnly);
    room.pump();
    room.local_edit(writer, 0, "from the writer ");
    room.local_edit(viewer, 0, "live viewer edit ");
    room.pump();

    let server_text = text(&room.doc);
    assert_eq!(server_text, "from the writer ");
    assert_eq!(text(&room.clients[writer].doc), server_text);
    // The viewer received the writer's edit, and was told twice that its own were refused.
    assert!(text(&room.clients[viewer].doc).contains("from the writer"));
    assert_eq!(room.clients[viewer].denied, [READ_ONLY_REASON; 2]);
    assert!(room.log.iter().all(|update| {
        let doc = Doc::new();
        apply(&doc, update);
        !text(&doc).contains("viewer")
    }));
}

#[test]
fn awareness_reaches_others_and_is_removed_on_disconnect() {
    let mut room = Room::new();
    let a = room.add_client(4001);
    let b = room.add_client(4002);
    room.connect(a, Role::ReadWrite);
    room.links[a]
        .to_server
        .push(awareness_frame(4001, 1, Some(r#"{"user":{"name":"Ada"}}"#)));
    room.pump();
    // B joins later and gets A's state in the handshake; B's own state reaches A.
    room.connect(b, Role::ReadOnly);
    room.links[b]
        .to_server
        .push(awareness_frame(4002, 1, Some(r#"{"user":{"name":"Bo"}}"#)));
    room.pump();
    assert!(room.clients[b].presence.state(4001).is_some());
    assert!(room.clients[a].presence.state(4002).is_some());
    // A stock client echoes what it learned: stale, ignored, not attributed to it.
    room.links[b]
        .to_server
        .push(awareness_frame(4001, 1, Some(r#"{"user":{"name":"Ada"}}"#)));
    room.pump();
    assert_eq!(
        room.links[b]
            .connection
            .introduced()
            .iter()
            .collect::<Vec<_>>(),
        [4002]
    );

    room.disconnect(a);
    room.pump();
    assert!(room.clients[b].presence.state(4001).is_none());
    assert_eq!(room.awareness.len(), 1);
}
