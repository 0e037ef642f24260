//! DNS enrichment in the daemon: AS names in events and in the API, router names in the status.
//!
//! The lookups themselves live in [`crate::dns::resolver`]; this module decides *where* names
//! are waited for, so that the engine task and the HTTP handlers never wait for DNS:
//!
//! - **Events.** [`event_sink`] wraps the daemon's event sink (the store writer). The engine
//!   task only starts background lookups of the batch's AS numbers ([`Enricher::prefetch`]) and
//!   queues the batch; one naming task takes the batches in order, waits for missing names until
//!   the batch's *deadline* (its arrival plus the resolver timeout), fills in
//!   [`Event::origin_as_name`] and [`Event::peer_as_name`] and hands the batch on. A name not
//!   known by then is left out: an event is never dropped, never reordered and never delayed by
//!   more than the timeout, however many batches queue up (their lookups run concurrently).
//! - **API.** The answers read the name cache only ([`Enricher::cached_as_name`]) and start
//!   background lookups of what is missing, so a later request shows the names
//!   (`crate::http::names`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::metrics::DnsMetrics;
use super::Enricher;
use crate::config::DnsConfig;
use crate::events::Event;

/// Events waiting for names beyond which a batch waits for no name (takes only cached ones).
const NAMING_QUEUE: usize = 10_000;

/// How much longer than the resolver timeout the daemon waits, at shutdown, for the naming task
/// to hand its last batches to the store.
const FINISH_SLACK: Duration = Duration::from_secs(2);

/// The daemon's enricher for `[dns]`, with its metrics registered on `registry`. Disabled when
/// `[dns]` is off (the default) or when the resolver cannot be built (logged; the daemon runs
/// without names).
pub fn start(config: &DnsConfig, registry: &prometheus::Registry) -> Enricher {
    if !config.enabled {
        return Enricher::disabled();
    }
    let enricher = match Enricher::from_config(config) {
        Ok(e) => e,
        Err(e) => {
            error!(error = %e, "DNS enrichment disabled: the resolver cannot be built");
            return Enricher::disabled();
        }
    };
    let registered = DnsMetrics::new(enricher.clone()).and_then(|m| registry.register(Box::new(m)));
    if let Err(e) = registered {
        error!(error = %e, "DNS enrichment metrics could not be registered");
    }
    info!(
        servers = ?config.servers,
        timeout_ms = config.timeout_ms,
        "DNS enrichment on: AS names (Team Cymru) and router reverse DNS"
    );
    enricher
}

/// The AS numbers an event can be named by: its origin and its peer's AS.
fn event_asns(e: &Event) -> impl Iterator<Item = u32> {
    e.origin.into_iter().chain(e.peer.as_ref().map(|p| p.asn))
}

/// An event sink, as [`Pipeline::set_event_sink`](crate::pipeline::Pipeline::set_event_sink)
/// takes it.
pub type EventSink = Box<dyn FnMut(Vec<Event>) + Send>;

/// The naming task behind an [`event_sink`]; see [`EventNaming::finish`].
#[derive(Debug)]
pub struct EventNaming {
    task: tokio::task::JoinHandle<()>,
    wait: Duration,
}

impl EventNaming {
    /// Waits until every batch queued so far has been handed on (the sink must have been dropped
    /// first, or this waits for the bound): at most the resolver timeout plus a little. False
    /// if the task did not finish in that time.
    pub async fn finish(self) -> bool {
        let within = self.wait + FINISH_SLACK;
        match tokio::time::timeout(within, self.task).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                error!(error = %e, "the event naming task failed");
                false
            }
            Err(_) => {
                warn!(
                    ?within,
                    "the event naming task did not finish; its last events may be lost"
                );
                false
            }
        }
    }
}

/// Wraps `forward` (where named events go: the store writer) in a sink for
/// [`Pipeline::set_event_sink`](crate::pipeline::Pipeline::set_event_sink) that names events
/// without making its caller wait. With a disabled enricher, `forward` itself is returned and
/// no task is started; otherwise the naming task is spawned on the current tokio runtime (so
/// this must be called inside one) and runs until the returned sink is dropped.
pub fn event_sink(
    dns: Enricher,
    mut forward: impl FnMut(Vec<Event>) + Send + 'static,
) -> (EventSink, Option<EventNaming>) {
    if !dns.is_enabled() {
        return (Box::new(forward), None);
    }
    let wait = dns.timeout();
    // Unbounded, yet bounded in time and size: the task hands each batch on at most `wait`
    // after it arrived, and past NAMING_QUEUE events waiting a batch waits for no name at all
    // (cache only), so a flood drains at once instead of growing the queue. Never dropped.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<Event>)>();
    let queued = Arc::new(AtomicUsize::new(0));
    let task_queued = queued.clone();
    let task_dns = dns.clone();
    let task = tokio::spawn(async move {
        while let Some((deadline, mut events)) = rx.recv().await {
            task_queued.fetch_sub(events.len(), Ordering::Relaxed);
            name_events(&task_dns, &mut events, deadline).await;
            forward(events);
        }
    });
    let sink = move |events: Vec<Event>| {
        // Start the lookups now, so that a batch queued behind others gets its full wait.
        dns.prefetch(events.iter().flat_map(event_asns));
        let waiting = queued.fetch_add(events.len(), Ordering::Relaxed);
        let deadline = if waiting > NAMING_QUEUE {
            Instant::now()
        } else {
            Instant::now() + wait
        };
        if let Err(e) = tx.send((deadline, events)) {
            error!(
                events = e.0 .1.len(),
                "the event naming task has stopped; events lost"
            );
        }
    };
    (Box::new(sink), Some(EventNaming { task, wait }))
}

/// Fills in the AS names of `events`: from the cache, else waiting for the lookup until
/// `deadline` at the latest (names not known by then stay `None`).
pub async fn name_events(dns: &Enricher, events: &mut [Event], deadline: Instant) {
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    for e in events.iter() {
        for asn in event_asns(e) {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(asn) {
                // A cached answer comes back at once, even after the deadline.
                let name = tokio::time::timeout_at(deadline, dns.as_name(asn))
                    .await
                    .ok()
                    .flatten();
                slot.insert(name);
            }
        }
    }
    let name_of = |asn: u32| names.get(&asn).cloned().flatten();
    for e in events.iter_mut() {
        e.origin_as_name = e.origin.and_then(name_of);
        e.peer_as_name = e.peer.as_ref().and_then(|p| name_of(p.asn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, EventPeer, Severity};

    fn event(n: u32, origin: u32) -> Event {
        Event {
            id: 0,
            time: f64::from(n),
            received: 0.0,
            kind: EventKind::PathChange,
            anomaly: None,
            severity: Severity::Information,
            location: "l".into(),
            prefix: "203.0.113.0/24".parse().unwrap(),
            announced: "203.0.113.0/24".parse().unwrap(),
            peer: Some(EventPeer {
                feed: "mrt".into(),
                source: "mrt".into(),
                address: "192.0.2.1".into(),
                asn: 3356,
            }),
            peer_as_name: None,
            origin: Some(origin),
            origin_as_name: None,
            as_path: None,
            previous_path: None,
            description: format!("event {n}"),
            rpki: None,
        }
    }

    #[tokio::test]
    async fn disabled_forwards_directly_and_starts_nothing() {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        let (mut sink, naming) = event_sink(Enricher::disabled(), move |v| {
            g.lock().unwrap().extend(v);
        });
        assert!(naming.is_none());
        sink(vec![event(1, 15169), event(2, 3356)]);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|e| e.origin_as_name.is_none()));
    }

    #[tokio::test]
    async fn unanswered_names_cost_at_most_the_timeout_per_batch_and_keep_the_order() {
        // A name server that never answers: a bound UDP socket nobody reads.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns = Enricher::new(crate::dns::EnricherSettings {
            enabled: true,
            servers: Some(vec![silent.local_addr().unwrap()]),
            timeout: Duration::from_millis(200),
            attempts: 1,
            ..crate::dns::EnricherSettings::default()
        })
        .unwrap();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (mut sink, naming) = event_sink(dns, move |v: Vec<Event>| {
            let _ = out_tx.send((std::time::Instant::now(), v));
        });
        let t0 = std::time::Instant::now();
        // Ten batches at once, each with other ASes: queued behind each other, yet every one
        // leaves within about one timeout of its arrival.
        for b in 0..10u32 {
            sink(vec![event(2 * b, 1000 + b), event(2 * b + 1, 2000 + b)]);
        }
        drop(sink);
        assert!(naming.unwrap().finish().await);
        let mut seen = Vec::new();
        while let Some((at, batch)) = out_rx.recv().await {
            assert!(
                at.duration_since(t0) < Duration::from_millis(600),
                "batch handed on after {:?}",
                at.duration_since(t0)
            );
            seen.extend(batch);
        }
        let order: Vec<f64> = seen.iter().map(|e| e.time).collect();
        assert_eq!(order, (0..20).map(f64::from).collect::<Vec<_>>());
        assert!(seen
            .iter()
            .all(|e| e.origin_as_name.is_none() && e.peer_as_name.is_none()));
    }
}
