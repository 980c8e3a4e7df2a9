//! inventory on AWS Lambda: its wiring (`inventory::aws::wire`, the same as on
//! Spin) behind the Lambda host, which serves every trigger the function has
//! (HTTP API, its SQS queue, its table's stream, the outbox sweep).

fn main() -> Result<(), shared::hosts::lambda::Error> {
    shared::hosts::lambda::run(inventory::aws::wire)
}
