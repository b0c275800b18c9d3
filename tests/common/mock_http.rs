//! Local HTTP receivers for connector calls, on 127.0.0.1 and a port of their own.
//! Include it with `#[path = "common/mock_http.rs"] mod mock_http;`.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A receiver that accepts, reads each request and never answers; its URL (path `/hook`) and
/// how many requests have arrived.
pub fn silent_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).is_ok_and(|n| n > 0) {
                count.fetch_add(1, Ordering::SeqCst);
            }
            // Keep the connection open so the client waits for an answer that never comes.
            held.push(s);
        }
    });
    (url, seen)
}

/// A URL on a port nothing listens on (bound, then released): connection refused.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/hook")
}
