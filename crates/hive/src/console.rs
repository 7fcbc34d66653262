//! The line console (SURFACES §8).
//!
//! TODO-correctness: placeholder until the console server lands; it accepts
//! and closes connections.

use crate::Shared;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            a = listener.accept() => drop(a),
            _ = shutdown.changed() => return,
        }
    }
}
