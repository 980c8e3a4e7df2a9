//! A function's HTTP routes and their OpenAPI description, built apart.
//!
//! utoipa describes a route when it is registered: `utoipa_axum::routes!`
//! builds the route's operation and the schemas it names right then. For
//! inventory's four routes that is ~160 µs natively, against ~6 µs for the
//! same routes in a plain axum router. A process builds its routes once; a
//! Spin instance builds them for its one request, which is almost never
//! `GET /api/v1/openapi.json` (and order-intake's component describes the
//! whole API). So [`api_routes!`] registers the handlers with axum alone, by
//! the path and methods of their `#[utoipa::path]` attributes (static
//! strings, free), and keeps a function that builds the description when the
//! document is asked for: the same `routes!` over the same handlers, so the
//! document cannot drift from what is served.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, Route};
use tower::{Layer, Service};
use utoipa::openapi::{OpenApi, OpenApiBuilder};

/// Builds a description on demand.
pub type Describe = Arc<dyn Fn() -> OpenApi + Send + Sync>;

/// Routes served now, described on demand.
pub struct ApiRoutes<S = ()> {
    router: Router<S>,
    describe: Describe,
}

impl<S> Clone for ApiRoutes<S> {
    fn clone(&self) -> Self {
        Self { router: self.router.clone(), describe: self.describe.clone() }
    }
}

impl Default for ApiRoutes {
    fn default() -> Self {
        Self::undocumented(Router::new())
    }
}

impl<S: Clone + Send + Sync + 'static> ApiRoutes<S> {
    pub fn new(router: Router<S>, describe: impl Fn() -> OpenApi + Send + Sync + 'static) -> Self {
        Self { router, describe: Arc::new(describe) }
    }

    /// Routes the document leaves out (`/metrics`, the dashboard).
    pub fn undocumented(router: Router<S>) -> Self {
        Self::new(router, || OpenApiBuilder::new().build())
    }

    /// Both sets of routes; `other`'s description merged into this one's.
    pub fn merge(self, other: Self) -> Self {
        let (mine, theirs) = (self.describe, other.describe);
        Self::new(self.router.merge(other.router), move || {
            let mut document = mine();
            document.merge(theirs());
            document
        })
    }

    /// An undocumented route beside these.
    pub fn route(self, path: &str, method_router: MethodRouter<S>) -> Self {
        Self { router: self.router.route(path, method_router), describe: self.describe }
    }

    /// [`Router::layer`] over every route.
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        Self { router: self.router.layer(layer), describe: self.describe }
    }

    /// [`Router::with_state`].
    pub fn with_state<S2>(self, state: S) -> ApiRoutes<S2> {
        ApiRoutes { router: self.router.with_state(state), describe: self.describe }
    }

    /// The router, and what builds the description.
    pub fn into_parts(self) -> (Router<S>, Describe) {
        (self.router, self.describe)
    }
}

/// [`ApiRoutes`] of `#[utoipa::path]` handlers with state `$state`, one
/// bracket per path (the handlers of one path's methods):
///
/// ```ignore
/// api_routes!(Arc<CatalogApi> => [list_products], [get_product, put_product])
/// ```
///
/// The calling crate uses axum, utoipa and utoipa-axum.
#[macro_export]
macro_rules! api_routes {
    ($state:ty => $([$($handler:ident),+ $(,)?]),+ $(,)?) => {{
        let router = ::axum::Router::<$state>::new()
            $( .route(&$crate::api_routes!(@path $($handler),+), $crate::api_routes!(@methods $state; $($handler),+)) )+;
        $crate::http::ApiRoutes::<$state>::new(router, || {
            ::utoipa_axum::router::OpenApiRouter::<$state>::new()
                $( .routes(::utoipa_axum::routes!($($handler),+)) )+
                .into_openapi()
        })
    }};
    (@path $first:ident $(, $rest:ident)*) => {
        ::utoipa_axum::paste! { <[<__path_ $first>] as ::utoipa::Path>::path() }
    };
    (@methods $state:ty; $($handler:ident),+) => {{
        let mut methods = ::axum::routing::MethodRouter::<$state>::new();
        $( ::utoipa_axum::paste! {
            for method in <[<__path_ $handler>] as ::utoipa::Path>::methods() {
                methods = methods.on(::utoipa_axum::PathItemExt::to_method_filter(&method), $handler);
            }
        } )+
        methods
    }};
}
