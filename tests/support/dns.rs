//! A DNS server for tests on 127.0.0.1 (a free UDP port; nothing leaves the machine): a small
//! hand-written UDP responder that parses the question (name, type) and answers from a table
//! given by the test, counting queries per name and the most held unanswered at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use routewatch::dns::EnricherSettings;
use tokio::net::UdpSocket;

pub const TYPE_PTR: u16 = 12;
pub const TYPE_TXT: u16 = 16;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

/// The question name of the Team Cymru AS description of `asn` (as the server sees it).
pub fn cymru(asn: u32) -> String {
    format!("as{asn}.asn.cymru.com")
}

/// The AS number of a Team Cymru question name (`as15169.asn.cymru.com`), if it is one.
pub fn cymru_asn(name: &str) -> Option<u32> {
    name.strip_prefix("as")
        .and_then(|n| n.strip_suffix(".asn.cymru.com"))
        .and_then(|n| n.parse::<u32>().ok())
}

/// How the test server answers one name.
pub enum Answer {
    /// NOERROR with these TXT records (each a list of character-strings) and TTL.
    Txt(Vec<Vec<&'static [u8]>>, u32),
    /// NOERROR with one TXT record built at run time, after a delay.
    SlowTxt(String, Duration),
    /// NOERROR with one PTR record.
    Ptr(&'static str, u32),
    /// NOERROR without records (no data).
    Empty,
    /// An error response code.
    Rcode(u8),
    /// No response at all.
    Silent,
}

#[derive(Default)]
pub struct ServerStats {
    per_name: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    current: AtomicUsize,
    /// The most queries the server held unanswered at once.
    pub max_concurrent: AtomicUsize,
}

/// The server: answers from its table until dropped.
pub struct TestDns {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// What it was asked.
    pub stats: Arc<ServerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestDns {
    /// Starts a server answering from `table` (question name in lower case without the
    /// trailing dot, question type) on a free UDP port of 127.0.0.1, on the current runtime.
    pub async fn start(table: impl Fn(&str, u16) -> Answer + Send + Sync + 'static) -> TestDns {
        let table = Arc::new(table);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(ServerStats::default());
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let Some(q) = parse_query(&buf[..n]) else {
                    continue;
                };
                st.total.fetch_add(1, Ordering::SeqCst);
                *st.per_name
                    .lock()
                    .unwrap()
                    .entry(q.name.clone())
                    .or_default() += 1;
                let now = st.current.fetch_add(1, Ordering::SeqCst) + 1;
                st.max_concurrent.fetch_max(now, Ordering::SeqCst);
                let (sock, st, table) = (Arc::clone(&sock), Arc::clone(&st), Arc::clone(&table));
                tokio::spawn(async move {
                    let reply = match table(&q.name, q.qtype) {
                        Answer::Silent => None,
                        Answer::SlowTxt(text, delay) => {
                            tokio::time::sleep(delay).await;
                            Some(response(&q, 0, &txt_records(&[vec![text.as_bytes()]], 60)))
                        }
                        Answer::Txt(records, ttl) => {
                            Some(response(&q, 0, &txt_records(&records, ttl)))
                        }
                        Answer::Ptr(target, ttl) => {
                            Some(response(&q, 0, &[ptr_record(target, ttl)]))
                        }
                        Answer::Empty => Some(response(&q, 0, &[])),
                        Answer::Rcode(rcode) => Some(response(&q, rcode, &[])),
                    };
                    // A silent name stays "in flight" at the server: it never answers.
                    if let Some(reply) = reply {
                        st.current.fetch_sub(1, Ordering::SeqCst);
                        let _ = sock.send_to(&reply, from).await;
                    }
                });
            }
        });
        TestDns { addr, stats, task }
    }

    /// Queries received for `name`.
    pub fn queries(&self, name: &str) -> usize {
        self.stats
            .per_name
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Queries received.
    pub fn total(&self) -> usize {
        self.stats.total.load(Ordering::SeqCst)
    }

    /// Settings pointing at this server, with a short timeout and a single attempt.
    pub fn settings(&self) -> EnricherSettings {
        EnricherSettings {
            enabled: true,
            servers: Some(vec![self.addr]),
            timeout: Duration::from_millis(400),
            attempts: 1,
            ..EnricherSettings::default()
        }
    }
}

struct Query {
    id: [u8; 2],
    rd: bool,
    /// The question section as received (echoed in the response).
    question: Vec<u8>,
    /// Lower case, without the trailing dot.
    name: String,
    qtype: u16,
}

fn parse_query(b: &[u8]) -> Option<Query> {
    if b.len() < 12 || b[2] & 0x80 != 0 || u16::from_be_bytes([b[4], b[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // no compression in questions
        }
        labels.push(String::from_utf8_lossy(b.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]);
    b.get(i + 3)?;
    Some(Query {
        id: [b[0], b[1]],
        rd: b[2] & 0x01 != 0,
        question: b[12..i + 4].to_vec(),
        name: labels.join("."),
        qtype,
    })
}

/// One answer record: owner is the question name (compression pointer to offset 12).
fn record(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xC0, 0x0C];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes()); // IN
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn txt_records(records: &[Vec<&[u8]>], ttl: u32) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|strings| {
            let mut rdata = Vec::new();
            for s in strings {
                rdata.push(s.len() as u8);
                rdata.extend_from_slice(s);
            }
            record(TYPE_TXT, ttl, &rdata)
        })
        .collect()
}

fn ptr_record(target: &str, ttl: u32) -> Vec<u8> {
    let mut rdata = Vec::new();
    for label in target.split('.') {
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label.as_bytes());
    }
    rdata.push(0);
    record(TYPE_PTR, ttl, &rdata)
}

fn response(q: &Query, rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&q.id);
    m.push(0x80 | u8::from(q.rd)); // QR, opcode 0, RD echoed
    m.push(0x80 | rcode); // RA
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&q.question);
    for a in answers {
        m.extend_from_slice(a);
    }
    m
}
