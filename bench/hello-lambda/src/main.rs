//! The smallest Lambda function: lambda_runtime's loop answering each event
//! with its own payload. `scripts/aws-bench.sh` times its cold start beside
//! the functions' (`cargo lambda build --release`, as `sam build` runs it).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<_, Error>(event.payload) })).await
}
