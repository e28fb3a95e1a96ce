//! Prompts on MCP 2026-07-28: multi round-trip requests (MRTR).
//!
//! That protocol version has no server-to-client requests, so a `prompt`
//! decision cannot send `elicitation/create`. Instead the `tools/call`
//! returns an *input-required* result carrying the elicitation and a
//! `requestState`; the client asks its user and retries the same call with
//! `inputResponses` and that `requestState`, and the retry's response is
//! the call's result (or the next input-required result).
//!
//! The command keeps running across the rounds: a call is a task of its own
//! ([`Event`]s flow from it to whichever request is driving it), and while a
//! question is open it sits in [`PausedCalls`], its approver blocked on the
//! answer and its timer paused. A client that never retries gets a denial
//! after the approval wait, and the whole call is stopped (its processes
//! killed) so nothing runs on for nobody.
//!
//! ```text
//! tools/call ──▶ spawn call ──▶ … exec needs a prompt: Asker sends Question
//!      ◀── input_required {elicitation, requestState = seal(call, question)}
//! tools/call + inputResponses + requestState ──▶ resume: answer delivered
//!      ◀── the call's result (or the next input_required)
//! ```
//!
//! **Invariant:** a `requestState` approves at most one question: the one
//! it was sealed for, of the call it was sealed for, presented with the
//! same tool arguments by the same client, before it expires. The state is
//! sealed with an HMAC key made at server start ([`RequestStateCodec`]),
//! bound (as associated data) to a digest of the client, the tool name and
//! the arguments; a question is taken out of [`PausedCalls`] by the first
//! retry that names it, so a replay finds nothing. Anything else is an
//! error and approves nothing.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender};
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResult, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
    ElicitationSchema, InputRequest, InputRequests, InputRequiredResult, InputResponses,
    RequestStateCodec, SealOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::decider::{Answer, Approver};
use crate::server::ProgressSink;

/// The key of our one input request (and of its response).
pub const APPROVAL_KEY: &str = "approval";

/// What a running call tells the request driving it.
pub enum Event {
    /// A human must answer before an exec can go on.
    Question(Question),
    /// The call ended: its result, or the protocol error to answer with.
    Done(Result<CallToolResult, McpError>),
}

/// An open question of a call.
pub struct Question {
    /// Numbered per call, from 1.
    pub id: u64,
    pub message: String,
    reply: SyncSender<Answer>,
}

/// The [`Approver`] of a call on a 2026-07-28 session: hands the question to
/// the driving request and waits (at most `wait`) for the answer.
pub struct Asker {
    pub events: UnboundedSender<Event>,
    pub wait: Duration,
    /// Stops the whole call when nobody answers.
    pub cancel: CancellationToken,
    /// Whether the client said it can fulfil elicitation input requests.
    pub can_elicit: bool,
    next: AtomicU64,
}

impl Asker {
    pub fn new(
        events: UnboundedSender<Event>,
        wait: Duration,
        cancel: CancellationToken,
        can_elicit: bool,
    ) -> Asker {
        Asker {
            events,
            wait,
            cancel,
            can_elicit,
            next: AtomicU64::new(1),
        }
    }
}

/// How often a waiting asker looks at the call's cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(100);

impl Approver for Asker {
    fn ask(&self, message: &str) -> Answer {
        if !self.can_elicit {
            return Answer::Unavailable(
                "approval was needed, but the MCP client does not support elicitation, so the user \
                 cannot be asked"
                    .into(),
            );
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let question = Question {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            message: message.to_owned(),
            reply,
        };
        tracing::info!(%message, question = question.id, "asking the user (input required)");
        if self.events.send(Event::Question(question)).is_err() {
            return Answer::Unavailable("approval was needed, but the call has ended".into());
        }
        let deadline = std::time::Instant::now() + self.wait;
        loop {
            if self.cancel.is_cancelled() {
                return Answer::Cancel;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!(%message, "nobody answered the approval request; stopping the call");
                self.cancel.cancel();
                return Answer::Unavailable(format!(
                    "approval was needed, but the client did not answer within {} s",
                    self.wait.as_secs()
                ));
            }
            match answer.recv_timeout(left.min(CANCEL_POLL)) {
                Ok(answer) => return answer,
                Err(RecvTimeoutError::Timeout) => {}
                // The question was dropped unanswered (the server is
                // shutting down, or the call was stopped).
                Err(RecvTimeoutError::Disconnected) => return Answer::Cancel,
            }
        }
    }
}

/// What a request needs to follow a running call.
pub struct Driving {
    pub events: UnboundedReceiver<Event>,
    /// Stops the call.
    pub cancel: CancellationToken,
    pub progress: ProgressSink,
}

/// A call waiting for the client's retry.
pub struct Paused {
    question: Question,
    driving: Driving,
    binding: [u8; 32],
}

/// What a retry must present: the call and the question it answers.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    call: u64,
    question: u64,
}

/// Why a retry was refused. Every variant approves nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Forged, tampered with, expired, or presented with other arguments or
    /// by another client (one message for all, as the codec asks).
    #[error(
        "invalid requestState: not issued by this server for this call and these arguments, or expired"
    )]
    Invalid,
    /// Genuine, but its question is no longer open (answered already, or
    /// the call ended).
    #[error(
        "stale requestState: the question it answers is no longer open (answered already, or the call ended)"
    )]
    Stale,
}

/// The calls of this server waiting for a retry.
pub struct PausedCalls {
    codec: RequestStateCodec,
    calls: Mutex<HashMap<u64, Paused>>,
    next_call: AtomicU64,
    /// How long a sealed state stays valid.
    ttl: Duration,
}

impl PausedCalls {
    /// A fresh key from the kernel's random source; states stay valid for
    /// `ttl`.
    pub fn new(ttl: Duration) -> std::io::Result<PausedCalls> {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        let codec = RequestStateCodec::try_new(key.to_vec()).map_err(std::io::Error::other)?;
        Ok(PausedCalls {
            codec,
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
            ttl,
        })
    }

    /// A number for a new call.
    pub fn call_id(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Paused>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `call` until a retry, and returns the input-required result to
    /// answer the current request with.
    pub fn pause(
        &self,
        call: u64,
        question: Question,
        driving: Driving,
        binding: [u8; 32],
    ) -> Result<InputRequiredResult, McpError> {
        let sealed = self
            .codec
            .seal_json_with(
                &Sealed {
                    call,
                    question: question.id,
                },
                &SealOptions::new().associated_data(&binding).ttl(self.ttl),
            )
            .map_err(|e| {
                McpError::internal_error(format!("cannot seal request state: {e}"), None)
            })?;
        let mut requests = InputRequests::new();
        requests.insert(
            APPROVAL_KEY.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(
                ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: question.message.clone(),
                    requested_schema: approval_schema(),
                },
            )),
        );
        let mut calls = self.lock();
        // Calls that ended while parked (see `forget`) go now.
        calls.retain(|_, p| !p.driving.cancel.is_cancelled());
        calls.insert(
            call,
            Paused {
                question,
                driving,
                binding,
            },
        );
        Ok(InputRequiredResult::new(Some(requests), Some(sealed)))
    }

    /// Takes the paused call `state` names, if `state` is genuine, bound to
    /// `binding`, and names the question still open.
    pub fn resume(&self, state: &str, binding: &[u8; 32]) -> Result<(u64, Paused), ResumeError> {
        let sealed: Sealed = self.codec.open_json_with(state, binding).map_err(|e| {
            tracing::warn!(error = %e, "refused a requestState");
            ResumeError::Invalid
        })?;
        let mut calls = self.lock();
        // A stopped call (nobody answered in time, the client cancelled, the
        // server is shutting down) has no open question any more.
        let open = calls.get(&sealed.call).is_some_and(|p| {
            p.question.id == sealed.question
                && &p.binding == binding
                && !p.driving.cancel.is_cancelled()
        });
        match calls.remove(&sealed.call).filter(|_| open) {
            Some(paused) => Ok((sealed.call, paused)),
            None => Err(ResumeError::Stale),
        }
    }

    /// Puts a call back after a retry that could not be used (its
    /// responses were malformed): its question stays open.
    pub fn put_back(&self, call: u64, paused: Paused) {
        self.lock().insert(call, paused);
    }

    /// Forgets a call that ended while paused (nobody retried); dropping it
    /// closes its question, so its approver stops waiting.
    pub fn forget(&self, call: u64) {
        self.lock().remove(&call);
    }

    /// Paused calls (for tests and shutdown).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Paused {
    /// The call, to be driven on after [`Paused::answer`].
    pub fn into_driving(self) -> Driving {
        self.driving
    }

    /// Delivers the client's answer to the open question, from the retry's
    /// `inputResponses`. On error the question stays unanswered.
    pub fn answer(&self, responses: Option<&InputResponses>) -> Result<(), McpError> {
        let response = responses.and_then(|r| r.get(APPROVAL_KEY)).ok_or_else(|| {
            McpError::invalid_params(
                format!("the retry carries no inputResponses[\"{APPROVAL_KEY}\"]"),
                None,
            )
        })?;
        let answer = parse_answer(response)?;
        match self.question.reply.try_send(answer) {
            Ok(()) => Ok(()),
            // The asker gave up (the wait passed, the call was stopped).
            Err(_) => Err(McpError::invalid_params(
                ResumeError::Stale.to_string(),
                None,
            )),
        }
    }
}

fn parse_answer(response: &Value) -> Result<Answer, McpError> {
    let result: ElicitResult = serde_json::from_value(response.clone()).map_err(|e| {
        McpError::invalid_params(
            format!("inputResponses[\"{APPROVAL_KEY}\"] is not an elicitation result: {e}"),
            None,
        )
    })?;
    Ok(match result.action {
        ElicitationAction::Accept => Answer::Accept,
        ElicitationAction::Decline => Answer::Decline,
        ElicitationAction::Cancel => Answer::Cancel,
        other => Answer::Unavailable(format!(
            "approval was needed, but the client answered {other:?}"
        )),
    })
}

/// What a state is bound to: the client, the tool and its arguments (keys
/// sorted, so a client may re-serialise them in another order).
pub fn binding(
    principal: &[u8],
    tool: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> [u8; 32] {
    let arguments = arguments.map(|a| canonical(&Value::Object(a.clone())));
    let mut hash = Sha256::new();
    for part in [
        principal,
        tool.as_bytes(),
        arguments.unwrap_or_default().as_bytes(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// JSON with object keys sorted at every level.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The approval form, as the reference asks it: an optional reason.
pub fn approval_schema() -> ElicitationSchema {
    let Value::Object(schema) = serde_json::json!({
        "type": "object",
        "title": "Execution Permission Request",
        "properties": {
            "reason": {"type": "string", "description": "Optional reason for allowing or denying execution"}
        }
    }) else {
        unreachable!("a JSON object literal")
    };
    ElicitationSchema::from_json_schema(schema)
        .unwrap_or_else(|_| ElicitationSchema::new(Default::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn question(id: u64) -> (Question, std::sync::mpsc::Receiver<Answer>) {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        (
            Question {
                id,
                message: "Allow?".into(),
                reply,
            },
            rx,
        )
    }

    fn args(command: &str) -> serde_json::Map<String, Value> {
        let Value::Object(map) = json!({"command": command, "workdir": "/w"}) else {
            unreachable!()
        };
        map
    }

    fn paused(calls: &PausedCalls, q: Question, binding: [u8; 32]) -> (u64, String) {
        let (_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let call = calls.call_id();
        let driving = Driving {
            events,
            cancel: CancellationToken::new(),
            progress: ProgressSink::default(),
        };
        let result = calls.pause(call, q, driving, binding).unwrap();
        let v = serde_json::to_value(&result).unwrap();
        assert_eq!(v["resultType"], "input_required", "{v}");
        assert_eq!(
            v["inputRequests"][APPROVAL_KEY]["params"]["message"], "Allow?",
            "{v}"
        );
        (call, result.request_state.unwrap())
    }

    #[test]
    fn a_state_resumes_its_question_once() {
        let calls = PausedCalls::new(Duration::from_secs(60)).unwrap();
        let b = binding(b"stdio", "shell", Some(&args("git push")));
        let (q, rx) = question(1);
        let (call, state) = paused(&calls, q, b);
        let (resumed, p) = calls.resume(&state, &b).unwrap();
        assert_eq!(resumed, call);
        let mut responses = InputResponses::new();
        responses.insert(APPROVAL_KEY.into(), json!({"action": "accept"}));
        p.answer(Some(&responses)).unwrap();
        assert_eq!(rx.recv().unwrap(), Answer::Accept);
        // Replayed: the question is no longer open.
        assert!(matches!(calls.resume(&state, &b), Err(ResumeError::Stale)));
    }

    #[test]
    fn forged_or_rebound_states_are_invalid() {
        let calls = PausedCalls::new(Duration::from_secs(60)).unwrap();
        let b = binding(b"stdio", "shell", Some(&args("git push")));
        let (q, _rx) = question(1);
        let (_, state) = paused(&calls, q, b);
        let other_args = binding(b"stdio", "shell", Some(&args("rm -rf /")));
        let other_client = binding(b"http:2", "shell", Some(&args("git push")));
        for (state, b) in [
            (state.as_str(), &other_args),
            (state.as_str(), &other_client),
            ("forged", &b),
            (&format!("{state}x"), &b),
        ] {
            assert!(
                matches!(calls.resume(state, b), Err(ResumeError::Invalid)),
                "{state}"
            );
        }
        // Another server's key.
        let other = PausedCalls::new(Duration::from_secs(60)).unwrap();
        assert!(matches!(
            other.resume(&state, &b),
            Err(ResumeError::Invalid)
        ));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn expired_states_are_invalid() {
        let calls = PausedCalls::new(Duration::from_millis(1)).unwrap();
        let b = binding(b"stdio", "shell", None);
        let (q, _rx) = question(1);
        let (_, state) = paused(&calls, q, b);
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            calls.resume(&state, &b),
            Err(ResumeError::Invalid)
        ));
    }

    #[test]
    fn bindings_ignore_key_order_only() {
        let a: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"command":"x","workdir":"/w","login":false}"#).unwrap();
        let b: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"login":false,"workdir":"/w","command":"x"}"#).unwrap();
        let c: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"login":true,"workdir":"/w","command":"x"}"#).unwrap();
        assert_eq!(
            binding(b"p", "shell", Some(&a)),
            binding(b"p", "shell", Some(&b))
        );
        assert_ne!(
            binding(b"p", "shell", Some(&a)),
            binding(b"p", "shell", Some(&c))
        );
    }

    #[test]
    fn answers_are_parsed_from_elicitation_results() {
        for (action, answer) in [
            ("accept", Answer::Accept),
            ("decline", Answer::Decline),
            ("cancel", Answer::Cancel),
        ] {
            assert_eq!(parse_answer(&json!({"action": action})).unwrap(), answer);
        }
        assert!(parse_answer(&json!({"action": "maybe"})).is_err());
        assert!(parse_answer(&json!("accept")).is_err());
    }
}
