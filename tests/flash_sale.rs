//! The flash-sale profile of `orderly load` against the runner, at a size a
//! test can afford: one SKU, S units, N ≫ S buyers at once; exactly S
//! confirmed, the rest rejected, nothing pending, analytics equal.

use std::time::Duration;

use orderly::load::{self, LoadArgs, Profile};
use support::{Launch, RunnerProcess, SECRET, free_port};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flash_sale_on_the_runner_confirms_exactly_the_stock_and_rejects_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // A read limit per customer that one caller reading all 400 orders
    // could not get through in the settle timeout: the check must read each
    // order as its buyer, as a crowd of real customers would.
    let launch =
        Launch { env: vec![("ORDERLY_RATE_LIMIT_AUTH_READ", "2/s:10".into())], ..Launch::new(dir.path(), free_port()) };
    let runner = RunnerProcess::start(launch).await;
    let args = LoadArgs {
        profile: Profile::FlashSale,
        buyers: 400,
        url: runner.base.clone(),
        secret: Some(SECRET.to_owned()),
        tokens_file: None,
        duration: Duration::from_secs(60),
        concurrency: 32,
        customers: 0,
        skus: 1,
        initial_stock: 25,
        rate: None,
        settle_timeout: Duration::from_secs(90),
        gateway_url: None,
        json: None,
        quiet: true,
        stop: None,
    };
    let report = load::run(args).await.unwrap();
    load::print(&report);
    let sale = report.flash_sale.as_ref().expect("a flash-sale report");
    assert_eq!(sale.accepted, 400, "every buyer's order was accepted: {:?}", report.errors_by_status);
    assert_eq!((sale.confirmed, sale.rejected, sale.pending), (25, 375, 0), "{:?}", sale.problems);
    assert_eq!(sale.available_after, 0);
    assert!(report.consistency.analytics_checked);
    assert!(report.consistency.ok, "{:?} {:?}", sale.problems, report.consistency.analytics_mismatches);
}
