/// How a [`Dispatcher`](super::Dispatcher) sizes its serial lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneOptions {
    /// Lanes that partition keys hash onto. The default is the machine's parallelism:
    /// lanes mostly wait on the store, and fewer lanes fill bigger batches — on a 2-core
    /// machine, 2 lanes committed distinct keys 1.2–1.6× faster than 8 (benchmark).
    pub lanes: usize,
    /// Decisions each lane queues before a submitter waits (back-pressure).
    pub queue: usize,
    /// Most decisions committed in one store transaction.
    pub max_batch: usize,
    /// Most states a lane keeps warm; the least recently used go first.
    pub warm_states: usize,
    /// Extra lanes for hot keys: a key that takes more than a quarter of recent
    /// submissions gets a lane of its own, up to this many such lanes (0: never).
    pub hot_lanes: usize,
}

impl Default for LaneOptions {
    fn default() -> Self {
        LaneOptions {
            lanes: std::thread::available_parallelism().map_or(2, usize::from),
            queue: 1024,
            max_batch: 256,
            warm_states: 10_000,
            hot_lanes: 4,
        }
    }
}
