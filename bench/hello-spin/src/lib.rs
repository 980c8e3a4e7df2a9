//! The smallest spin-sdk HTTP component: `200 hello` to every request.
//! `scripts/spin-bench.sh` serves it under the same wasi:http host as the
//! components and compares sizes and per-request latency.

use spin_sdk::http::{IntoResponse, Request, Response};

#[spin_sdk::http_component]
fn handle(_request: Request) -> impl IntoResponse {
    Response::builder().status(200).header("content-type", "text/plain").body("hello").build()
}
