//! The queue runtime: topology, broker connections, the outbox relay, the
//! consumer that claims and runs jobs, retries, dead letters, the sweeper
//! and cancellation.

pub mod amqp;
pub mod batch;
pub mod cancel;
pub mod dead_letters;
pub mod relay;
pub mod retry;
pub mod runtime;
pub mod topology;
