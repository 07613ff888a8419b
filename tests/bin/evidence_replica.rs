//! A stand-in for one `actiongate` replica in the two-replica test: appends
//! events to a shared Postgres, reports on stdout when it becomes the
//! integrator, then keeps running (integrating) until it is killed.
//!
//! usage: evidence-replica URL KEY_PATH COUNT TASKS

use std::io::Write;
use std::time::Duration;

use actiongate::evidence::{Actor, EventKind, EvidenceConfig, EvidenceLog, NewEvent};
use actiongate::store::Store;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, count, tasks] = args.as_slice() else {
        eprintln!("usage: evidence-replica URL KEY_PATH COUNT TASKS");
        std::process::exit(2);
    };
    let count: u64 = count.parse().unwrap();
    let tasks: u64 = tasks.parse().unwrap();
    let store = Store::connect(url).await.expect("connect");
    let cfg = EvidenceConfig {
        key_path: key.into(),
        checkpoint_every_events: 100,
        checkpoint_every_seconds: 0.2,
        leader_retry_ms: 100,
        ..EvidenceConfig::default()
    };
    let log = EvidenceLog::open(store, cfg).await.expect("open log");
    let watcher = log.clone();
    tokio::spawn(async move {
        loop {
            if watcher.is_integrator() {
                say("LEADER");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut handles = Vec::new();
    for t in 0..tasks {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..count / tasks {
                let e = NewEvent {
                    kind: EventKind::Submitted,
                    action_id: Some(uuid::Uuid::now_v7()),
                    actor: Actor::system(format!("replica-{}", std::process::id())),
                    payload: serde_json::json!({"task": t, "i": i}),
                };
                seqs.push(log.append(e).await.expect("append").seq);
            }
            seqs
        }));
    }
    let mut n = 0;
    for h in handles {
        n += h.await.unwrap().len();
    }
    say(&format!("APPENDED {n}"));
    std::future::pending::<()>().await;
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
