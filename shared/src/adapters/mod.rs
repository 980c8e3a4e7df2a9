//! Port implementations, one module per technology, each behind a feature so
//! that the core builds without them (and for `wasm32-wasip2`).

#[cfg(feature = "aws")]
pub mod dynamo;
pub mod log_provider;
#[cfg(feature = "memory-cache")]
pub mod memory_cache;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(feature = "webhook")]
pub mod webhook;

/// An error and its causes on one line (the top level of an AWS SDK error
/// says little more than "service error").
#[cfg(feature = "aws")]
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
