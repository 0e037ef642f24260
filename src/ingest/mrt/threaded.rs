//! Decompression on its own thread: a `BufRead` whose bytes are produced by another thread, so
//! gzip/bzip2 inflation overlaps with parsing (the two largest costs of reading an MRT dump).
//!
//! Chunks travel over a bounded channel (a slow parser stalls the decompressor, memory stays
//! bounded at `DEPTH` chunks) and are recycled back to the producer. A read error on the producer
//! side is delivered to the consumer after the bytes that preceded it.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 4;

enum Msg {
    Data(Vec<u8>),
    Error(io::Error),
}

/// A reader fed by a decompression thread.
pub struct ThreadedReader {
    rx: Receiver<Msg>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ThreadedReader {
    /// Moves `inner` to a new thread that reads it in 1 MiB chunks.
    pub fn spawn(mut inner: Box<dyn Read + Send>) -> io::Result<ThreadedReader> {
        let (tx, rx) = sync_channel::<Msg>(DEPTH);
        let (recycle, spare) = sync_channel::<Vec<u8>>(DEPTH + 2);
        thread::Builder::new()
            .name("mrt-decompress".into())
            .spawn(move || loop {
                let mut buf = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                buf.resize(CHUNK, 0);
                let mut filled = 0;
                let mut error = None;
                while filled < CHUNK {
                    match inner.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                buf.truncate(filled);
                let eof = filled < CHUNK;
                if filled > 0 && tx.send(Msg::Data(buf)).is_err() {
                    return; // consumer gone
                }
                if let Some(e) = error {
                    let _ = tx.send(Msg::Error(e));
                    return;
                }
                if eof {
                    return;
                }
            })?;
        Ok(ThreadedReader {
            rx,
            recycle,
            current: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl Read for ThreadedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ThreadedReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.current.len() && !self.done {
            match self.rx.recv() {
                Ok(Msg::Data(buf)) => {
                    let old = std::mem::replace(&mut self.current, buf);
                    let _ = self.recycle.try_send(old);
                    self.pos = 0;
                }
                Ok(Msg::Error(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.current.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailingAfter {
        data: Vec<u8>,
        pos: usize,
    }

    impl Read for FailingAfter {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return Err(io::Error::other("corrupt stream"));
            }
            let n = (self.data.len() - self.pos).min(out.len()).min(1000);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn delivers_every_byte_in_order_across_chunks() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = ThreadedReader::spawn(Box::new(io::Cursor::new(data.clone()))).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn an_error_arrives_after_the_bytes_before_it() {
        let data = vec![42u8; 5000];
        let mut r = ThreadedReader::spawn(Box::new(FailingAfter { data, pos: 0 })).unwrap();
        let mut out = vec![0u8; 5000];
        r.read_exact(&mut out).unwrap();
        assert!(out.iter().all(|&b| b == 42));
        let err = r.read(&mut [0u8; 10]).unwrap_err();
        assert_eq!(err.to_string(), "corrupt stream");
    }
}
