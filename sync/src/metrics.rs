//! The sync layer's Prometheus metrics; the server registers them beside its own.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Counters and gauges of every room on this node. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct SyncMetrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Documents loaded in memory.
    pub rooms: Gauge,
    /// Updates committed to the log by this node (`rate()` gives updates/s).
    pub updates: Counter,
    /// Updates applied from other nodes.
    pub remote_updates: Counter,
    /// Group commits (one transaction each).
    pub commits: Counter,
    /// Seconds from the start of a group commit to its durable end.
    pub persist_seconds: Histogram,
    /// Compactions that wrote a snapshot.
    pub compactions: Counter,
    /// Catch-ups from Postgres after a gap in the sequence numbers.
    pub catch_ups: Counter,
    /// Bytes received in WebSocket frames and HTTP update pushes.
    pub bytes_in: Counter,
    /// Bytes sent in WebSocket frames.
    pub bytes_out: Counter,
    /// Connections closed for falling behind.
    pub slow_disconnects: Counter,
    /// Documents that failed to load.
    pub load_failures: Counter,
    /// Seconds from planning a materialization to its commit.
    pub materialize_seconds: Histogram,
    /// Block rows written or deleted by materializations.
    pub materialized_rows: Counter,
    /// Blocks left out of a materialization because Postgres refused their row.
    pub skipped_blocks: Counter,
    /// Sibling lists given short order keys again.
    pub rebalances: Counter,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self {
            connections: Gauge::default(),
            rooms: Gauge::default(),
            updates: Counter::default(),
            remote_updates: Counter::default(),
            commits: Counter::default(),
            // 0.25 ms … ~4 s
            persist_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            compactions: Counter::default(),
            catch_ups: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            slow_disconnects: Counter::default(),
            load_failures: Counter::default(),
            materialize_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            materialized_rows: Counter::default(),
            skipped_blocks: Counter::default(),
            rebalances: Counter::default(),
        }
    }
}

impl SyncMetrics {
    /// Registers every metric under `sync_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let sync = registry.sub_registry_with_prefix("sync");
        sync.register(
            "connections",
            "Open WebSocket connections",
            self.connections.clone(),
        );
        sync.register(
            "rooms",
            "Canvas documents loaded in memory",
            self.rooms.clone(),
        );
        sync.register(
            "updates",
            "Updates committed to the log by this node",
            self.updates.clone(),
        );
        sync.register(
            "remote_updates",
            "Updates applied from other nodes",
            self.remote_updates.clone(),
        );
        sync.register(
            "commits",
            "Group commits of the update log",
            self.commits.clone(),
        );
        sync.register(
            "persist_seconds",
            "Latency of a group commit of the update log",
            self.persist_seconds.clone(),
        );
        sync.register(
            "compactions",
            "Snapshots written by compaction",
            self.compactions.clone(),
        );
        sync.register(
            "catch_ups",
            "Catch-ups from Postgres after a gap in sequence numbers",
            self.catch_ups.clone(),
        );
        sync.register(
            "bytes_in",
            "Bytes received from clients",
            self.bytes_in.clone(),
        );
        sync.register("bytes_out", "Bytes sent to clients", self.bytes_out.clone());
        sync.register(
            "slow_disconnects",
            "Connections closed for falling behind",
            self.slow_disconnects.clone(),
        );
        sync.register(
            "materialize_seconds",
            "Latency of writing changed blocks to their rows",
            self.materialize_seconds.clone(),
        );
        sync.register(
            "materialized_rows",
            "Block rows written or deleted by materializations",
            self.materialized_rows.clone(),
        );
        sync.register(
            "materialize_skipped_blocks",
            "Blocks left out of a materialization because Postgres refused their row",
            self.skipped_blocks.clone(),
        );
        sync.register(
            "rebalances",
            "Rebalances of order keys grown too long",
            self.rebalances.clone(),
        );
        sync.register(
            "load_failures",
            "Documents that failed to load",
            self.load_failures.clone(),
        );
    }
}
