//! The port contract suites against the SQLite adapter.

use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_contract::MAX_RECEIVES;

/// A store on a fresh database; the directory goes when the test ends.
struct Fresh {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(
        &dir.path().join("contract.db"),
        DbOptions::default(),
        QueueSettings { max_receives: MAX_RECEIVES },
    )
    .expect("open store");
    Fresh { store, _dir: dir }
}

mod order_store {
    orderly_contract::order_store_contract!(super::fresh());
}

mod inventory_store {
    orderly_contract::inventory_store_contract!(super::fresh());
}

mod notification_log {
    orderly_contract::notification_log_contract!(super::fresh());
}

mod read_model {
    orderly_contract::read_model_contract!(super::fresh());
}

mod queues {
    orderly_contract::queue_contract!(super::fresh());
}

mod breaker_store {
    orderly_contract::breaker_store_contract!(super::fresh());
}

mod rate_limiter {
    orderly_contract::rate_limiter_contract!(super::fresh());
}
