//! Popular products (docs/contract.md §7): analytics' units per SKU, named
//! from the catalog, and a fallback list (the last good one, else the
//! configured one) whenever the ranking cannot be read in time. Never a 5xx.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, problem, spawn_local_app, token};

#[tokio::test]
async fn popular_products_are_ranked_live_and_fall_back_when_the_read_model_fails() {
    let Some(app) = spawn_local_app("it breaks the runner's read model").await else { return };
    app.put_product("TEA", "1.00", 100).await;
    app.put_product("MUG", "5.00", 100).await;
    let alice = token("alice", false);
    let mug = app.accepted_order(&alice, &[("MUG", 1)]).await;
    let tea = app.accepted_order(&alice, &[("TEA", 3)]).await;
    app.settled(&alice, &mug, "confirmed").await;
    app.settled(&alice, &tea, "confirmed").await;
    let live = eventually("the ranking to count both orders", || async {
        let popular: Value = app.get("/api/v1/recommendations/popular", None).await.json().await.unwrap();
        (popular["items"].as_array()?.len() == 2).then_some(popular)
    })
    .await;
    assert_eq!(live["source"], "live");
    assert_eq!(live["items"][0], json!({"sku": "TEA", "name": "Product TEA", "units": 3}));
    assert_eq!(live["items"][1]["sku"], "MUG");
    let one: Value = app.get("/api/v1/recommendations/popular?limit=1", None).await.json().await.unwrap();
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    for bad in ["0", "51", "ten"] {
        problem(app.get(&format!("/api/v1/recommendations/popular?limit={bad}"), None).await, StatusCode::BAD_REQUEST)
            .await;
    }

    // The read model's table goes away: the last good list, never a 5xx.
    lose_the_read_models_counters(&app).await;
    let response = app.get("/api/v1/recommendations/popular", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fallback: Value = response.json().await.unwrap();
    assert_eq!(fallback["source"], "fallback");
    assert_eq!(fallback["items"], live["items"], "the last good list");
}

#[tokio::test]
async fn popular_products_fall_back_to_the_configured_list_when_no_ranking_was_ever_read() {
    let Some(app) = crate::helpers::spawn_local_app_with("it breaks the runner's read model", |config| {
        config.popular.fallback = orderly_core::settings::Settings::load(&std::collections::BTreeMap::from([(
            "popular_fallback".to_owned(),
            "GIFT-CARD=Gift card; TEA=Green tea".to_owned(),
        )]))
        .unwrap()
        .popular
        .fallback;
    })
    .await
    else {
        return;
    };
    lose_the_read_models_counters(&app).await;
    let popular: Value = app.get("/api/v1/recommendations/popular", None).await.json().await.unwrap();
    assert_eq!(
        popular,
        json!({"items": [{"sku": "GIFT-CARD", "name": "Gift card", "units": 0}, {"sku": "TEA", "name": "Green tea", "units": 0}], "source": "fallback"})
    );
}

/// A failing read model, for real: its counters' table is gone.
async fn lose_the_read_models_counters(app: &TestApp) {
    app.runner()
        .store()
        .database()
        .write(|conn, _| {
            conn.execute_batch("ALTER TABLE counters RENAME TO counters_lost")
                .map_err(|e| orderly_core::ports::StoreError::Unavailable(e.to_string()))
        })
        .await
        .unwrap();
}
