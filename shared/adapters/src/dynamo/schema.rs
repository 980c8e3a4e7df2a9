//! The tables' shape, for tests and local development. In AWS the same shape
//! is declared in `template.yaml` (keep the two in step).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::{GSI1, TTL, sdk_unavailable};
use orderly_core::ports::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Orders,
    Inventory,
    Notifications,
    Analytics,
}

impl TableKind {
    pub const ALL: [TableKind; 4] = [Self::Orders, Self::Inventory, Self::Notifications, Self::Analytics];

    /// The GSI projection, if the table has `gsi1`.
    fn gsi(self) -> Option<ProjectionType> {
        match self {
            Self::Orders => None,
            // The catalog index only lists SKUs: stock updates never touch it.
            Self::Inventory => Some(ProjectionType::KeysOnly),
            Self::Notifications | Self::Analytics => Some(ProjectionType::All),
        }
    }

    /// Tables with an outbox stream their new items to their function.
    fn streams(self) -> bool {
        matches!(self, Self::Orders | Self::Inventory)
    }
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

/// Creates `name` with the shape of `kind` (on-demand billing).
pub async fn create_table(client: &Client, name: &str, kind: TableKind) -> Result<(), StoreError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element("pk", KeyType::Hash))
        .key_schema(key_element("sk", KeyType::Range))
        .attribute_definitions(string_attribute("pk"))
        .attribute_definitions(string_attribute("sk"));
    if let Some(projection) = kind.gsi() {
        request = request
            .attribute_definitions(string_attribute("gsi1pk"))
            .attribute_definitions(string_attribute("gsi1sk"))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(GSI1)
                    .key_schema(key_element("gsi1pk", KeyType::Hash))
                    .key_schema(key_element("gsi1sk", KeyType::Range))
                    .projection(Projection::builder().projection_type(projection).build())
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            );
    }
    if kind.streams() {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
    }
    request.send().await.map_err(sdk_unavailable)?;
    Ok(())
}

/// Turns on TTL on the `ttl` attribute.
pub async fn enable_ttl(client: &Client, name: &str) -> Result<(), StoreError> {
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        )
        .send()
        .await
        .map_err(sdk_unavailable)?;
    Ok(())
}
