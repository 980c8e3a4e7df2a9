//! order-intake on AWS Lambda: its one wiring serving the whole API
//! (`order_intake::front_door`, the same the runner serves) over the AWS
//! backend, behind the Lambda host, which serves every trigger the function
//! has (HTTP API, its SQS queue, its table's stream, the outbox sweep).

fn main() -> Result<(), orderly_hosts::lambda::Error> {
    orderly_hosts::lambda::run(order_intake::front_door)
}
