//! Groups concurrent requests into one call: a claim or an outcome waits
//! while the previous batch commits, then goes with everything that arrived
//! meanwhile. One commit (one WAL flush) per batch instead of per job is
//! what lets the runtime keep up with the broker.

use std::future::Future;
use tokio::sync::{mpsc, oneshot};

pub struct Batcher<Req, Resp> {
    tx: mpsc::Sender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the task that runs `run` on batches of at most `max` requests,
    /// at most `at_once` batches at a time; `run` answers each request, in
    /// order. Needs a Tokio runtime.
    pub fn start<F, Fut>(max: usize, at_once: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<(Req, oneshot::Sender<Resp>)>(max * 4);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Requests keep arriving while we wait for a free slot: they
                // join this batch.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (requests, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let work = run(requests);
                tokio::spawn(async move {
                    let responses = work.await;
                    for (answer, response) in answers.into_iter().zip(responses) {
                        let _ = answer.send(response);
                    }
                    drop(slot);
                });
            }
        });
        Batcher { tx }
    }

    /// `None` only if the batch task is gone.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (answer, response) = oneshot::channel();
        self.tx.send((request, answer)).await.ok()?;
        response.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counter = batches.clone();
        let doubler = Arc::new(Batcher::start(64, 2, move |requests: Vec<u32>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                requests.into_iter().map(|n| n * 2).collect()
            }
        }));
        let calls: Vec<_> = (0..100u32)
            .map(|n| {
                let doubler = doubler.clone();
                tokio::spawn(async move { (n, doubler.call(n).await) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.unwrap();
            assert_eq!(answer, Some(n * 2));
        }
        let n = batches.load(Ordering::SeqCst);
        assert!(n < 100, "calls were batched: {n} batches");
    }
}
