//! # orderly-adapters
//!
//! Implementations of the core's ports, one module per technology, each
//! behind a feature, and the two backends the hosts wire functions from:
//! [`sqlite::SqliteBackend`] (the runner's embedded default) and
//! [`aws_backend::AwsBackend`] (Lambda and Spin). Every adapter passes its
//! port's contract suite (`orderly-contract`).
//!
//! The webhook sender and the payment gateway's HTTP client are in every
//! build; only their native transport (and the shared native HTTP client,
//! [`http_client`]) needs `webhook`.

#[cfg(feature = "aws")]
pub mod aws_backend;
#[cfg(any(feature = "sqlite", feature = "aws"))]
mod codec;
pub mod deferred;
#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "webhook")]
pub mod http_client;
pub mod log_provider;
#[cfg(feature = "memory-cache")]
pub mod memory_cache;
pub mod payment_gateway;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(any(feature = "sqlite", feature = "aws"))]
mod stored_order;
pub mod webhook;

/// Waiting on tokio, for the native hosts.
#[cfg(any(feature = "sqlite", feature = "webhook"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioTimer;

#[cfg(any(feature = "sqlite", feature = "webhook"))]
#[async_trait::async_trait]
impl orderly_core::ports::Timer for TokioTimer {
    async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// An AWS SDK failure on one line, for logs: the operation and the whole
/// error chain, e.g. `TransactWriteItems: service error:
/// IdempotentParameterMismatchException: Request token already in use ...`.
/// The top level of an SDK error says little more than "service error", and
/// without the operation a log line cannot say which call failed.
#[cfg(feature = "aws")]
pub(crate) fn sdk_error_detail<E: std::error::Error>(error: &E) -> String {
    format!("{}: {}", sdk_operation::<E>(), error_chain(error))
}

/// The SDK operation an error type belongs to: every operation has its own
/// error type named after it (`PutItemError`, `SendMessageBatchError`), on
/// its own or inside `SdkError<…>`.
#[cfg(feature = "aws")]
fn sdk_operation<E>() -> &'static str {
    std::any::type_name::<E>()
        .split(['<', '>', ',', ' '])
        .filter_map(|path| path.rsplit("::").next())
        .filter(|name| *name != "SdkError")
        .find_map(|name| name.strip_suffix("Error"))
        .filter(|operation| !operation.is_empty())
        .unwrap_or("AWS call")
}

/// An error and its causes on one line.
#[cfg(feature = "aws")]
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::error::IdempotentParameterMismatchException;

    use super::*;

    #[test]
    fn sdk_error_details_name_the_operation_the_code_and_the_message() {
        let error = TransactWriteItemsError::IdempotentParameterMismatchException(
            IdempotentParameterMismatchException::builder()
                .message("Request token already in use for another request with a different payload")
                .build(),
        );
        let detail = sdk_error_detail(&error);
        assert!(detail.starts_with("TransactWriteItems: "), "{detail}");
        assert!(detail.contains("IdempotentParameterMismatchException"), "{detail}");
        assert!(detail.contains("Request token already in use"), "{detail}");

        let wrapped: SdkError<TransactWriteItemsError, ()> = SdkError::timeout_error("took too long");
        assert!(sdk_error_detail(&wrapped).starts_with("TransactWriteItems: "), "{}", sdk_error_detail(&wrapped));
    }
}
