//! The two small contexts a tool gets: [`PlanEnv`] while it plans a call on the connection's
//! reader, and [`ToolCtx`] while the planned work runs in the call's own task.
//!
//! Why two: planning must be quick and refuse a bad call before anything is queued, so it
//! sees only what deciding needs (providers to resolve a model, conversation memory to check
//! a `continuation_id`, the clock, the settings). The work runs after admission, under the
//! call's deadline, and reaches a provider only through the [`ProviderHandle`] it was
//! admitted for.

use std::sync::Arc;

use crate::conversation::ConversationStore;
use crate::error::CallError;
use crate::provider::{Providers, Resolved};
use crate::retry::handle::{Caller, ProviderHandle};
use crate::rt::{Instant, Rt};
use crate::tools::host::{Host, ToolSettings};

/// Bytes of randomness in a conversation id (hex: twice as many characters).
const CONVERSATION_ID_BYTES: usize = 16;

/// What a tool may read while it plans a call.
pub struct PlanEnv<'a> {
    /// The daemon, as tools see it.
    host: &'a dyn Host,
    /// The settings, read once per call.
    settings: ToolSettings,
}

impl<'a> PlanEnv<'a> {
    /// The planning context of one call.
    pub fn new(host: &'a dyn Host) -> PlanEnv<'a> {
        PlanEnv {
            host,
            settings: host.tool_settings(),
        }
    }

    /// The clock, now.
    pub fn now(&self) -> Instant {
        self.host.now()
    }

    /// Providers, to resolve a model.
    pub fn providers(&self) -> &'a Providers {
        self.host.providers()
    }

    /// Conversation memory, to check a `continuation_id`.
    pub fn conversations(&self) -> &'a ConversationStore {
        self.host.conversations()
    }

    /// The settings tools read.
    pub fn settings(&self) -> &ToolSettings {
        &self.settings
    }

    /// The daemon, for the tools that report on it (`version`, `listmodels`).
    pub fn daemon(&self) -> &'a dyn Host {
        self.host
    }
}

/// What a tool's work may use while it runs, in the call's task.
pub struct ToolCtx {
    /// The daemon, as tools see it.
    host: Arc<dyn Host>,
    /// The call: runtime, request id, deadline, and where consultations are admitted.
    caller: Arc<Caller>,
    /// The provider the call was admitted for; `None` when its plan named none.
    provider: Option<ProviderHandle>,
}

impl ToolCtx {
    /// The context of a call admitted for `provider` (or for none).
    pub fn new(
        host: Arc<dyn Host>,
        caller: Arc<Caller>,
        provider: Option<ProviderHandle>,
    ) -> ToolCtx {
        assert_eq!(
            caller.handles.live(),
            u32::from(provider.is_some()),
            "the call's only provider handle is the one in its context"
        );
        ToolCtx {
            host,
            caller,
            provider,
        }
    }

    /// The runtime.
    pub fn rt(&self) -> &Rt {
        &self.caller.rt
    }

    /// The clock, now.
    pub fn now(&self) -> Instant {
        self.caller.rt.now()
    }

    /// The call's request id, for logs.
    pub fn request_id(&self) -> &str {
        &self.caller.request_id
    }

    /// The call's one deadline.
    pub fn deadline(&self) -> Instant {
        self.caller.deadline
    }

    /// Conversation memory.
    pub fn conversations(&self) -> &ConversationStore {
        self.host.conversations()
    }

    /// A fresh conversation id, from the daemon's seeded generator.
    pub fn new_conversation_id(&self) -> String {
        self.host.random_hex(CONVERSATION_ID_BYTES)
    }

    /// The daemon, for the tools that report on it (`status`).
    pub fn daemon(&self) -> &dyn Host {
        &*self.host
    }

    /// The provider the call was admitted for. Only a tool whose plan named a provider asks.
    pub fn provider(&self) -> &ProviderHandle {
        self.provider
            .as_ref()
            .expect("only a call planned with a provider asks for its handle")
    }

    /// Give back the provider the call holds and admit `next` instead (an `auto` call failing
    /// over, `tools::route`): the old permits go back before the new are taken, so the call
    /// never holds two provider permits.
    pub async fn switch_to(&mut self, next: &Resolved) -> Result<(), CallError> {
        assert!(
            self.provider.is_some(),
            "only a call holding a provider switches"
        );
        drop(self.provider.take());
        assert_eq!(self.caller.handles.live(), 0, "the old permits are back");
        let caller = &self.caller;
        let give_up_at = caller.deadline.min(caller.rt.now() + caller.queue_timeout);
        let handle = ProviderHandle::admit(caller, next.clone(), give_up_at).await?;
        self.provider = Some(handle);
        Ok(())
    }

    /// Say what the call is doing now (the next progress frame shows it).
    pub fn say(&self, activity: String) {
        self.caller
            .phase
            .set(crate::phase::Phase::Running { activity });
    }

    /// Admit one consultation of `resolved`'s model, for a call whose plan named no provider
    /// (`consensus`, which asks several models): the session, provider and global permits in
    /// that fixed order, waiting at most the queue timeout and never past the deadline. The
    /// permits go back when the handle is dropped, so asking five models one after the
    /// other never holds two provider permits.
    pub async fn consult(&self, resolved: &Resolved) -> Result<ProviderHandle, CallError> {
        assert!(
            self.provider.is_none(),
            "a call admitted for a provider consults no other"
        );
        let caller = &self.caller;
        let give_up_at = caller.deadline.min(caller.rt.now() + caller.queue_timeout);
        ProviderHandle::admit(caller, resolved.clone(), give_up_at).await
    }
}
