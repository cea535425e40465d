//! The in-memory store's checkpoints, dead letters and commit signal.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;

use super::listening::{DeadLetter, ListenerStore, NewDeadLetter};
use super::{MemoryStore, StoreError};
use crate::model::Position;

/// What a [`MemoryStore`] keeps for listeners.
pub(crate) struct MemoryListening {
    state: Mutex<State>,
    head: watch::Sender<Option<Position>>,
}

#[derive(Default)]
struct State {
    checkpoints: HashMap<String, Position>,
    dead_letters: Vec<DeadLetter>,
    next_id: u64,
}

impl Default for MemoryListening {
    fn default() -> Self {
        MemoryListening {
            state: Mutex::default(),
            head: watch::channel(None).0,
        }
    }
}

impl MemoryListening {
    /// Signals a commit that wrote up to `position`.
    pub(crate) fn committed(&self, position: Option<Position>) {
        if let Some(position) = position {
            self.head.send_if_modified(|head| {
                let newer = head.is_none_or(|h| h < position);
                if newer {
                    *head = Some(position);
                }
                newer
            });
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ListenerStore for MemoryStore {
    async fn load_checkpoint(&self, listener: &str) -> Result<Option<Position>, StoreError> {
        Ok(self.listening.state().checkpoints.get(listener).copied())
    }

    async fn save_checkpoint(&self, listener: &str, position: Position) -> Result<(), StoreError> {
        self.listening
            .state()
            .checkpoints
            .insert(listener.to_owned(), position);
        Ok(())
    }

    async fn record_dead_letter(&self, letter: NewDeadLetter) -> Result<u64, StoreError> {
        let mut state = self.listening.state();
        if let Some(known) = state
            .dead_letters
            .iter_mut()
            .find(|l| l.listener == letter.listener && l.position == letter.position)
        {
            known.event_type = letter.event_type;
            known.error = letter.error;
            known.attempts = letter.attempts;
            known.recorded_at = SystemTime::now();
            return Ok(known.id);
        }
        state.next_id += 1;
        let id = state.next_id;
        state.dead_letters.push(DeadLetter {
            id,
            listener: letter.listener,
            position: letter.position,
            event_type: letter.event_type,
            error: letter.error,
            attempts: letter.attempts,
            recorded_at: SystemTime::now(),
        });
        Ok(id)
    }

    async fn dead_letters(&self, listener: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .listening
            .state()
            .dead_letters
            .iter()
            .filter(|l| listener.is_none_or(|name| l.listener == name))
            .cloned()
            .collect())
    }

    async fn remove_dead_letter(&self, id: u64) -> Result<bool, StoreError> {
        let mut state = self.listening.state();
        let before = state.dead_letters.len();
        state.dead_letters.retain(|l| l.id != id);
        Ok(state.dead_letters.len() < before)
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        self.listening.head.subscribe()
    }
}
