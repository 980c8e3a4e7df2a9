//! `orderly dlq`: look at dead letters and move them back after a fix.
//! Works on the database file directly, so it also works while the runner
//! is stopped; a running runner picks redriven messages up within its idle poll.

use orderly_adapters::sqlite::SqliteStore;
use orderly_core::events::routing::Consumer;
use orderly_core::ports::QueueAdmin;

pub async fn list(store: &SqliteStore, queue: Option<&str>, limit: usize) -> anyhow::Result<()> {
    for name in queues(queue)? {
        let stats = store.stats(name).await?;
        println!("{name}: {} dead letters, {} queued ({} in flight)", stats.dead_letters, stats.depth, stats.in_flight);
        for letter in store.dead_letters(name, limit).await? {
            println!(
                "  {}  received {}x  dead since {}  last error: {}",
                letter.message_id,
                letter.receive_count,
                letter.dead_at.to_rfc3339(),
                letter.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

pub async fn redrive(store: &SqliteStore, queue: Option<&str>, limit: usize) -> anyhow::Result<()> {
    for name in queues(queue)? {
        let moved = store.redrive(name, limit).await?;
        println!("{name}: {moved} dead letters moved back to the queue");
    }
    Ok(())
}

fn queues(queue: Option<&str>) -> anyhow::Result<Vec<&'static str>> {
    match queue {
        None => Ok(Consumer::ALL.iter().map(|c| c.queue()).collect()),
        Some(name) => Consumer::from_queue(name).map(|c| vec![c.queue()]).ok_or_else(|| {
            anyhow::anyhow!("no queue named {name}; queues: order-intake, inventory, notification, analytics")
        }),
    }
}
