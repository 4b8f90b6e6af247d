//! A server with a fake OpenAI-compatible provider for chat and embeddings, a clock the test
//! moves, and a fake model whose three roles — judge, specialist, assessor — answer by a
//! [`Script`] the test controls. The fake records every request, so tests read what each call
//! was shown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use potentia_ai::assistant::ManualClock;
use potentia_ai::settings::{ChatProviderSettings, EmbeddingProviderSettings, RemoteEndpoint};
use potentia_tests::fake_ai::{FakeOpenAi, RecordedRequest, Reply};
use potentia_tests::{Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// 2 December 2026, 09:00 UTC.
pub fn start_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_202_000, 0).unwrap_or_default()
}

/// How the fake judge answers.
#[derive(Debug, Clone, PartialEq)]
pub enum JudgeMode {
    /// Answers what the test says is right ([`Script::expect`]).
    Correct,
    /// Always `continue`.
    Adversarial,
    /// HTTP 500.
    Failing,
    /// 200 with text that is not JSON.
    Garbage,
}

/// What the judge should answer for the next turn, in [`JudgeMode::Correct`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Continue,
    New,
    /// Back to the topic whose summary holds this word.
    Switch(&'static str),
}

/// The fake model's behaviour, changed by the test between turns.
pub struct Script {
    pub judge: JudgeMode,
    pub expected: Expected,
    /// Memories the assessor extracts from the next user message, as `(kind, text)`.
    pub extract: Vec<(String, String)>,
    /// The reconciliation answer: `(action, id)` (`UPDATE`, 1).
    pub reconcile: Option<(String, Option<u32>)>,
    /// Tool calls the specialist makes, in order, before answering.
    pub tool_calls: Vec<(String, Value)>,
    /// What the specialist answers.
    pub answer: String,
    /// When set, every specialist request gets this reply instead of the scripted tool calls
    /// and answer (`Reply::Endless`, `Reply::Delayed`, a `Reply::Status` failure, …).
    pub specialist_reply: Option<Reply>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            judge: JudgeMode::Correct,
            expected: Expected::Continue,
            extract: Vec::new(),
            reconcile: None,
            tool_calls: Vec::new(),
            answer: "Here is what I think.".into(),
            specialist_reply: None,
        }
    }
}

pub struct Chat {
    pub app: TestApp,
    pub fake: FakeOpenAi,
    pub clock: ManualClock,
    pub script: Arc<Mutex<Script>>,
    pub user: Session,
}

/// The text of a request's system prompt and messages.
pub fn prompt_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn schema_name(body: &Value) -> Option<&str> {
    body["response_format"]["json_schema"]["name"].as_str()
}

/// Which of the pipeline's calls a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Judge,
    Specialist,
    Extraction,
    Reconciliation,
    Title,
}

pub fn call_of(body: &Value) -> Call {
    match schema_name(body) {
        Some("context_decision") => Call::Judge,
        Some("memory_extraction") => Call::Extraction,
        Some("memory_reconciliation") => Call::Reconciliation,
        _ if prompt_text(body).contains("short title") => Call::Title,
        _ => Call::Specialist,
    }
}

/// The last user line of the extraction prompt (`User: …`).
fn exchange_question(prompt: &str) -> String {
    prompt
        .lines()
        .find_map(|l| l.strip_prefix("User: "))
        .unwrap_or_default()
        .to_owned()
}

/// The number of the listed topic whose line holds `word`.
fn topic_number(prompt: &str, word: &str) -> Option<u32> {
    prompt.lines().find_map(|line| {
        let (n, rest) = line.split_once(". ")?;
        let n: u32 = n.trim().parse().ok()?;
        rest.to_lowercase()
            .contains(&word.to_lowercase())
            .then_some(n)
    })
}

fn answer(script: &Script, body: &Value) -> Option<Reply> {
    let prompt = prompt_text(body);
    match call_of(body) {
        Call::Judge => Some(match script.judge {
            JudgeMode::Adversarial => Reply::Text(
                json!({"decision": "continue", "reason": "always continue"}).to_string(),
            ),
            JudgeMode::Failing => Reply::Status {
                status: 500,
                retry_after: None,
                message: "judge down".into(),
            },
            JudgeMode::Garbage => Reply::Text("I think you should continue, probably.".into()),
            JudgeMode::Correct => Reply::Text(
                match &script.expected {
                    Expected::Continue => json!({"decision": "continue", "reason": "same topic"}),
                    Expected::New => json!({"decision": "new", "reason": "a new topic"}),
                    Expected::Switch(word) => json!({
                        "decision": "switch",
                        "context": topic_number(&prompt, word).unwrap_or(99),
                        "reason": format!("back to {word}"),
                    }),
                }
                .to_string(),
            ),
        }),
        Call::Extraction => {
            let question = exchange_question(&prompt);
            // A rolling summary, as a model would keep it: what came before and the new question.
            let so_far = prompt
                .lines()
                .find_map(|l| l.strip_prefix("Topic summary so far: "))
                .filter(|s| *s != "(none)")
                .map(|s| format!("{s} / "))
                .unwrap_or_default();
            let memories: Vec<Value> = script
                .extract
                .iter()
                .map(|(kind, text)| json!({"kind": kind, "text": text}))
                .collect();
            Some(Reply::Text(json!({"memories": memories, "summary": format!("{so_far}{question}").chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect::<String>()}).to_string()))
        }
        Call::Reconciliation => {
            let (action, id) = script.reconcile.clone().unwrap_or(("ADD".into(), None));
            Some(Reply::Text(
                json!({"action": action, "id": id, "reason": "as scripted"}).to_string(),
            ))
        }
        Call::Title => Some(Reply::Text("Pour-over coffee".into())),
        Call::Specialist if script.specialist_reply.is_some() => script.specialist_reply.clone(),
        Call::Specialist => {
            // One tool call per round while the script has them; then the answer.
            let rounds = body["messages"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count());
            match script.tool_calls.get(rounds) {
                Some((name, arguments)) if !body["tools"].is_null() => Some(Reply::ToolCall {
                    name: name.clone(),
                    arguments: arguments.clone(),
                }),
                _ => Some(Reply::Text(script.answer.clone())),
            }
        }
    }
}

impl Chat {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut potentia_server::Settings)) -> Self {
        let fake = FakeOpenAi::start().await;
        let clock = ManualClock::starting_at(start_time());
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        fake.set_responder(move |body| {
            let script = shared.lock().unwrap_or_else(|p| p.into_inner());
            answer(&script, body)
        });
        let base_url = fake.base_url();
        let manual = clock.clone();
        let app = TestApp::spawn_with(|s| {
            let endpoint = |model: &str| RemoteEndpoint {
                base_url: base_url.clone(),
                api_key: None,
                model: model.into(),
            };
            s.ai.ai.chat = Some(ChatProviderSettings::OpenAi(endpoint("fake-chat")));
            s.ai.ai.embeddings = Some(EmbeddingProviderSettings::OpenAi {
                endpoint: endpoint("fake-embedding"),
                dimensions: None,
            });
            s.ai.ai.worker.poll_interval = Duration::from_millis(20);
            s.ai.ai.resilience.max_attempts = 1;
            s.ai.ai.resilience.breaker_failures = 100_000;
            s.ai.turns_per_minute = 100_000;
            s.ai.clock = Some(manual);
            configure(s);
        })
        .await;
        let user = app
            .sign_up(&format!("chat-{}@example.com", Uuid::now_v7()))
            .await;
        Self {
            app,
            fake,
            clock,
            script,
            user,
        }
    }

    pub fn token(&self) -> &str {
        self.user.access_token()
    }

    pub fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    pub async fn conversation(&self) -> Uuid {
        let (status, body) = self
            .app
            .call(
                Method::POST,
                "/api/v1/conversations",
                Some(self.token()),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("a conversation id")
    }

    /// Sends a message (JSON) and returns status and body; then waits until the jobs that
    /// follow (assessment, title, embeddings) are done, so the next turn sees their results.
    pub async fn say(&self, conversation: Uuid, text: &str) -> (u16, Value) {
        let answered = self
            .say_only(conversation, text, &Uuid::now_v7().to_string())
            .await;
        self.settle().await;
        answered
    }

    pub async fn say_only(&self, conversation: Uuid, text: &str, client_id: &str) -> (u16, Value) {
        self.app
            .call(
                Method::POST,
                &format!("/api/v1/conversations/{conversation}/messages"),
                Some(self.token()),
                Some(json!({"text": text, "client_message_id": client_id})),
            )
            .await
    }

    /// Waits until no chat job and no embedding job is waiting.
    pub async fn settle(&self) {
        for _ in 0..500 {
            let (chat, embeddings): (i64, i64) = sqlx::query_as(
                "select (select count(*) from chat_jobs where dead_at is null),
                        (select count(*) from embedding_queue where dead_at is null)",
            )
            .fetch_one(&self.app.db)
            .await
            .expect("job counts");
            if chat == 0 && embeddings == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waiting: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "select 'chat ' || kind, next_attempt_at::text, attempts, last_error from chat_jobs
             where dead_at is null
             union all
             select 'embedding ' || source_kind, next_attempt_at::text, attempts, last_error
             from embedding_queue where dead_at is null",
        )
        .fetch_all(&self.app.db)
        .await
        .expect("waiting jobs");
        panic!("the chat and embedding jobs did not finish: {waiting:?}");
    }

    /// The requests of one kind the fake received, oldest first.
    pub fn calls(&self, kind: Call) -> Vec<RecordedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions") && call_of(&r.body) == kind)
            .collect()
    }

    pub fn last_call(&self, kind: Call) -> Option<RecordedRequest> {
        self.calls(kind).pop()
    }
}

impl Chat {
    /// Posts a turn and hands back the response unread: `stream` asks for Server-Sent Events.
    pub async fn post_turn(
        &self,
        conversation: Uuid,
        text: &str,
        client_id: &str,
        stream: bool,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .authed(
                Method::POST,
                &format!("/api/v1/conversations/{conversation}/messages"),
                self.token(),
            )
            .json(&json!({"text": text, "client_message_id": client_id}));
        if stream {
            request = request.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        request.send().await.expect("the turn request")
    }

    /// Every stored message of the conversation, oldest first.
    pub async fn messages(&self, conversation: Uuid) -> Vec<Value> {
        let (status, body) = self
            .app
            .call(
                Method::GET,
                &format!("/api/v1/conversations/{conversation}/messages?limit=100"),
                Some(self.token()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the conversation's messages until `done` holds for them; returns them.
    pub async fn messages_when(
        &self,
        conversation: Uuid,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let mut last = Vec::new();
        for _ in 0..500 {
            last = self.messages(conversation).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}; the messages: {last:#?}");
    }
}
