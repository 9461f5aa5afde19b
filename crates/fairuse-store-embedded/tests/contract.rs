//! The store contracts of `fairuse-store-contract`, run against the in-memory reference store of
//! the domain and against the embedded SQLite store: one test per trait per backend.

use fairuse_domain::store::MemoryStore;
use fairuse_store_contract as contract;
use fairuse_store_embedded::EmbeddedStore;
use tempfile::TempDir;

/// A fresh store in its own directory; the directory lives as long as the returned guard.
async fn embedded() -> (EmbeddedStore, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = EmbeddedStore::open(dir.path()).await.expect("open the embedded store");
    (store, dir)
}

#[tokio::test]
async fn memory_meter_store_meets_the_contract() {
    contract::meter_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_meter_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::meter_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_budget_store_meets_the_contract() {
    contract::budget_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_budget_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::budget_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_lock_store_meets_the_contract() {
    contract::lock_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_lock_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::lock_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_rate_limit_store_meets_the_contract() {
    contract::rate_limit_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_rate_limit_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::rate_limit_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_enforcement_store_meets_the_contract() {
    contract::enforcement_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_enforcement_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::enforcement_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_conversation_store_meets_the_contract() {
    contract::conversation_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_conversation_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::conversation_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_stream_session_store_meets_the_contract() {
    contract::stream_session_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_stream_session_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::stream_session_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_print_index_meets_the_contract() {
    contract::print_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_print_index_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::print_contract(&store, "emb").await;
}

#[tokio::test]
async fn memory_outbox_store_meets_the_contract() {
    let store = MemoryStore::new();
    contract::outbox_contract(&store, &store, "mem").await;
}

#[tokio::test]
async fn embedded_outbox_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::outbox_contract(&store, &store, "emb").await;
}

#[tokio::test]
async fn memory_job_store_meets_the_contract() {
    contract::job_contract(&MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn embedded_job_store_meets_the_contract() {
    let (store, _dir) = embedded().await;
    contract::job_contract(&store, "emb").await;
}

/// The prefixes really isolate: contracts that share no global queue or global redaction run at
/// once on one database, two of them twice.
#[tokio::test]
async fn embedded_contracts_run_in_parallel_on_one_database() {
    let (store, _dir) = embedded().await;
    tokio::join!(
        contract::meter_contract(&store, "par-1"),
        contract::meter_contract(&store, "par-2"),
        contract::budget_contract(&store, "par-1"),
        contract::budget_contract(&store, "par-2"),
        contract::lock_contract(&store, "par-1"),
        contract::rate_limit_contract(&store, "par-1"),
        contract::enforcement_contract(&store, "par-1"),
        contract::enforcement_flagged(&store, "par-2"),
        contract::enforcement_due_timers(&store, "par-2"),
        contract::conversation_contract(&store, "par-1"),
        contract::stream_session_contract(&store, "par-1"),
        contract::stream_session_contract(&store, "par-2"),
        contract::job_contract(&store, "par-1"),
    );
}

#[tokio::test]
async fn embedded_store_meets_every_contract_in_one_run() {
    let (store, _dir) = embedded().await;
    contract::all(&contract::Stores::of(&store), "all").await;
}
