//! # orderly-hosts
//!
//! How AWS Lambda's and Spin's triggers reach a function. Each host builds
//! the AWS backend (`orderly_adapters::aws_backend`) its own way, calls the
//! function crate's one `wire` (`orderly_core::composition`), and maps its
//! triggers onto the resulting `Function`: no use case is constructed and no
//! policy is decided here. The local runner is the third host (the root
//! package, `src/`). Each host's glue is a module behind its feature; what
//! all three wrap around the served router is [`edge`].

pub mod edge;

#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "spin")]
pub mod spin;
