//! Popular products, with a fallback: the article's "static list of popular
//! items" when a non-core engine fails.
//!
//! The ranking is the read model's units per SKU (orders confirmed, shipped
//! or delivered now), named from the catalog. It is a nicety, never worth an
//! error page: if the read model (or the catalog) fails or takes longer
//! than `popular_timeout`, the route answers the last good list this
//! instance saw, else the configured static list, marked
//! `"source":"fallback"`. So the route never answers 5xx.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderly_core::domain::Sku;
use orderly_core::ports::{Counter, PriceList, ReadModelStore, StoreError, Timer, within};
use orderly_core::settings::PopularFallback;
use serde::Serialize;
use utoipa::ToSchema;

/// Most entries a ranking holds (the route's `limit` is at most this).
pub const MAX_POPULAR: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PopularItem {
    #[schema(example = "TEA-GREEN")]
    pub sku: String,
    pub name: String,
    /// Units in orders that are confirmed, shipped or delivered now.
    pub units: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from the read model just now.
    Live,
    /// The last good list, or the configured static one.
    Fallback,
}

/// `GET /api/v1/recommendations/popular`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PopularList {
    pub items: Vec<PopularItem>,
    pub source: Source,
}

pub struct Popular {
    views: Arc<dyn ReadModelStore>,
    catalog: Arc<dyn PriceList>,
    timer: Arc<dyn Timer>,
    timeout: Duration,
    fallback: Vec<PopularItem>,
    /// The last live ranking (the whole top [`MAX_POPULAR`]), per instance.
    last_good: Mutex<Option<Vec<PopularItem>>>,
}

impl Popular {
    pub fn new(
        views: Arc<dyn ReadModelStore>,
        catalog: Arc<dyn PriceList>,
        timer: Arc<dyn Timer>,
        timeout: Duration,
        fallback: &[PopularFallback],
    ) -> Self {
        let fallback =
            fallback.iter().map(|f| PopularItem { sku: f.sku.to_string(), name: f.name.clone(), units: 0 }).collect();
        Self { views, catalog, timer, timeout, fallback, last_good: Mutex::new(None) }
    }

    /// The top `limit`, live if the read model answers in time.
    pub async fn top(&self, limit: usize) -> PopularList {
        let live = match within(self.timer.as_ref(), self.timeout, self.ranking()).await {
            Some(Ok(items)) => Some(items),
            Some(Err(error)) => {
                tracing::warn!(%error, "popular: the read model failed; answering the fallback");
                None
            }
            None => {
                tracing::warn!(timeout = ?self.timeout, "popular: the read model is slow; answering the fallback");
                None
            }
        };
        let mut last_good = self.last_good.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut items, source) = match live {
            Some(items) => {
                *last_good = Some(items.clone());
                (items, Source::Live)
            }
            None => (last_good.clone().unwrap_or_else(|| self.fallback.clone()), Source::Fallback),
        };
        metrics::counter!("orderly_popular_total", "source" => if source == Source::Live { "live" } else { "fallback" })
            .increment(1);
        items.truncate(limit);
        PopularList { items, source }
    }

    async fn ranking(&self) -> Result<Vec<PopularItem>, StoreError> {
        let mut units: Vec<(Sku, i64)> = self
            .views
            .counters()
            .await?
            .into_iter()
            .filter_map(|(counter, value)| match counter {
                Counter::UnitsBySku(sku) if value > 0 => Some((sku, value)),
                _ => None,
            })
            .collect();
        // Most units first; ties by SKU, so the order is stable.
        units.sort_by(|(a_sku, a), (b_sku, b)| b.cmp(a).then_with(|| a_sku.cmp(b_sku)));
        units.truncate(MAX_POPULAR);
        let skus: Vec<Sku> = units.iter().map(|(sku, _)| sku.clone()).collect();
        let names = self.catalog.names(&skus).await?;
        Ok(units
            .into_iter()
            .map(|(sku, units)| {
                let name = names.get(&sku).cloned().unwrap_or_else(|| sku.to_string());
                PopularItem { sku: sku.to_string(), name, units }
            })
            .collect())
    }
}
