use super::DecisionMeta;

/// How a decision runs against the store. Every strategy keeps the DCB guarantee: no
/// decision commits on a stale view of what its validation query covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Read, decide, conditional append; on conflict, back off and retry per the
    /// decision's retry policy.
    Optimistic,
    /// Route by partition key to an in-process lane that decides one after another on
    /// warm states and commits what queued up behind each other in one transaction.
    /// Exclusions do not apply (see [the lanes module](crate::lanes)).
    SerialLanes,
    /// Hold the store's lock on the partition key around read, decide and append, so
    /// processes sharing the store take turns instead of retrying.
    StoreLock,
}

impl Strategy {
    /// The strategy a decision runs under unless the application says otherwise: serial
    /// lanes when it declares a partition key, optimistic otherwise.
    pub fn for_meta(meta: &DecisionMeta) -> Strategy {
        if meta.partition.is_some() {
            Strategy::SerialLanes
        } else {
            Strategy::Optimistic
        }
    }

    /// Its name, as the demo and benchmarks print it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Optimistic => "optimistic",
            Strategy::SerialLanes => "serial lanes",
            Strategy::StoreLock => "store lock",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
