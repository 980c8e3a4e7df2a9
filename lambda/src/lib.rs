//! # orderly-lambda
//!
//! One Lambda binary per function (`src/bin/`), each a few lines of wiring:
//! DynamoDB/SQS adapters into the function's use cases, handed to
//! `shared::hosts::lambda::run`, which serves the function's HTTP routes, its
//! queue and its outbox stream. The `api` binary answers what belongs to no
//! single function (`/health`, the OpenAPI document, unknown routes); `hello`
//! is the bare `lambda_runtime` baseline of the cold-start benchmark.

use std::sync::Arc;

use async_trait::async_trait;
use shared::adapters::dynamo::{TableKind, ping};
use shared::adapters::sqs::SqsQueues;
use shared::hosts::health::HealthProbe;
use shared::hosts::lambda::Aws;
use shared::ports::QueueAdmin;

/// `/health` on AWS: every table answers a read, and the queues' depths.
pub struct AwsHealth {
    aws: Aws,
    queues: Arc<SqsQueues>,
    provider: &'static str,
}

impl AwsHealth {
    pub fn new(aws: &Aws) -> Self {
        Self { aws: aws.clone(), queues: aws.queues(), provider: aws.notification_provider().name() }
    }
}

#[async_trait]
impl HealthProbe for AwsHealth {
    async fn store_ok(&self) -> bool {
        let pings = TableKind::ALL.map(|kind| ping(&self.aws.dynamo, self.aws.tables().table(kind)));
        futures::future::join_all(pings).await.iter().all(Result::is_ok)
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self.queues.as_ref()
    }

    fn provider(&self) -> &'static str {
        self.provider
    }
}
