//! rmcp's client as the tests drive it: it answers `elicitation/create`
//! as scripted and records the approval questions and progress messages
//! it gets.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientCapabilities, ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
    InitializeRequestParams, ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde_json::json;

/// How the client answers `elicitation/create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Accept,
    Decline,
    Cancel,
    /// Never answers.
    Never,
    /// The client does not declare the elicitation capability (a server
    /// that asks anyway is recorded and declined).
    Unsupported,
}

/// Messages a [`Client`] received (elicitations or progress).
pub type Received = Arc<Mutex<Vec<String>>>;

/// The scripted MCP client.
#[derive(Debug)]
pub struct Client {
    name: &'static str,
    reply: Reply,
    asked: Received,
    progress: Received,
}

impl Client {
    /// A client answering elicitations with `reply`, and where it records
    /// the elicitations and progress messages it gets.
    pub fn new(reply: Reply) -> (Client, Received, Received) {
        Client::named("it", reply)
    }

    /// [`Client::new`] introducing itself as `name`.
    pub fn named(name: &'static str, reply: Reply) -> (Client, Received, Received) {
        let asked = Received::default();
        let progress = Received::default();
        let client = Client {
            name,
            reply,
            asked: asked.clone(),
            progress: progress.clone(),
        };
        (client, asked, progress)
    }
}

impl ClientHandler for Client {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Err(McpError::invalid_params(
                "expected a form elicitation",
                None,
            ));
        };
        self.asked.lock().unwrap().push(message);
        let action = match self.reply {
            Reply::Accept => ElicitationAction::Accept,
            Reply::Decline | Reply::Unsupported => ElicitationAction::Decline,
            Reply::Cancel => ElicitationAction::Cancel,
            Reply::Never => std::future::pending().await,
        };
        Ok(ElicitResult::new(action))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }

    fn get_info(&self) -> InitializeRequestParams {
        let caps = if self.reply == Reply::Unsupported {
            json!({})
        } else {
            json!({"elicitation": {}})
        };
        let caps: ClientCapabilities = serde_json::from_value(caps).unwrap();
        let mut info = InitializeRequestParams::new(caps, Implementation::new(self.name, "0"));
        info.protocol_version = ProtocolVersion::V_2025_06_18;
        info
    }
}
