//! inventory on AWS Lambda: its one wiring (`inventory::wire`, the same on every host)
//! over the AWS backend, behind the Lambda host, which serves every trigger
//! the function has (HTTP API, its SQS queue, its table's stream, the outbox
//! sweep).

fn main() -> Result<(), orderly_hosts::lambda::Error> {
    orderly_hosts::lambda::run(inventory::wire)
}
