//! Training sets for clients of a running server (Arrow Flight, Feast's remote offline store): the
//! command a client sends beside its entity table, resolved against the registry the server
//! follows and run by the same [`OfflineStore`] as `asof training-set`. Nothing here joins; it
//! only turns a remote request into the CLI's request.

use std::sync::Arc;

use asof_core::FeatureRequest;
use asof_core::error::did_you_mean;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_plan::SendableRecordBatchStream;
use serde::Deserialize;

use crate::error::{ServerError, ServerResult};
use crate::snapshot::Snapshot;

/// Feast's remote offline store names its call `api`; this is the only one asof answers.
pub const FEAST_HISTORICAL: &str = "get_historical_features";

/// What a client asks for beside its entity table. asof's own clients send `features` or
/// `feature_service` and the options of `asof training-set`; Feast sends `api`, `feature_refs`,
/// `project` and `full_feature_names` (and fields asof has no use for, which it ignores).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrainingSetCommand {
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    /// Feast's name for `features`.
    #[serde(default)]
    pub feature_refs: Vec<String>,
    #[serde(default)]
    pub feature_service: Option<String>,
    #[serde(default)]
    pub full_feature_names: bool,
    /// The entity table's event time column (default: `event_timestamp`, else its only
    /// timestamp column).
    #[serde(default)]
    pub timestamp_column: Option<String>,
    #[serde(default)]
    pub with_timestamps: bool,
    #[serde(default)]
    pub filter_by_created_timestamp: bool,
    /// Feast: the project the client's registry names; must be the served one.
    #[serde(default)]
    pub project: Option<String>,
    /// Feast: an SQL entity query instead of a table, which asof cannot run.
    #[serde(default)]
    pub entity_df_sql: Option<String>,
}

/// The fields asof's own clients may send (Feast's commands carry more, and are not checked).
const OWN_FIELDS: &[&str] = &[
    "features",
    "feature_service",
    "full_feature_names",
    "timestamp_column",
    "with_timestamps",
    "filter_by_created_timestamp",
];

impl TrainingSetCommand {
    /// Parses a JSON command. An asof command with an unknown field is an error (a typo would
    /// otherwise silently drop an option); a Feast command (`api` set) may carry anything.
    pub fn parse(bytes: &[u8]) -> ServerResult<Self> {
        let invalid = |m: String| ServerError::InvalidArgument(m);
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            invalid(format!(
                "the training-set command is not JSON ({e}); send e.g. {{\"features\": [\"view:feature\"]}}"
            ))
        })?;
        let object = value.as_object().ok_or_else(|| {
            invalid("the training-set command must be a JSON object, e.g. {\"features\": [\"view:feature\"]}".into())
        })?;
        if !object.contains_key("api") {
            for key in object.keys() {
                if !OWN_FIELDS.contains(&key.as_str()) {
                    let hint = did_you_mean(key, OWN_FIELDS.iter().copied())
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    return Err(invalid(format!(
                        "unknown field `{key}` in the training-set command{hint} (fields: {})",
                        OWN_FIELDS.join(", ")
                    )));
                }
            }
        }
        serde_json::from_value(value).map_err(|e| invalid(format!("the training-set command: {e}")))
    }

    /// Resolves the features against `snap` (offline views too: a training set needs no
    /// online copy) and checks what asof cannot answer.
    pub fn resolve(&self, snap: &Snapshot) -> ServerResult<FeatureRequest> {
        if let Some(api) = &self.api
            && api != FEAST_HISTORICAL
        {
            return Err(ServerError::InvalidArgument(format!(
                "asof answers Feast's `{FEAST_HISTORICAL}` only, not `{api}`; pull and write data with asof's own commands"
            )));
        }
        if self.entity_df_sql.is_some() {
            return Err(ServerError::InvalidArgument(
                "an SQL entity query cannot run here: send the entity rows as a table (a DataFrame)"
                    .into(),
            ));
        }
        if let Some(project) = &self.project
            && *project != snap.registry.project
        {
            return Err(ServerError::InvalidArgument(format!(
                "project `{project}` is not served here; this server serves `{}` (set `project:` in feature_store.yaml)",
                snap.registry.project
            )));
        }
        let features = if self.features.is_empty() {
            &self.feature_refs
        } else {
            &self.features
        };
        Ok(match (&self.feature_service, features.is_empty()) {
            (Some(s), true) => {
                FeatureRequest::resolve_service(&snap.catalog, s, self.full_feature_names)?
            }
            (None, false) => {
                FeatureRequest::resolve(&snap.catalog, features, self.full_feature_names)?
            }
            (Some(_), false) => {
                return Err(ServerError::InvalidArgument(
                    "name `features` or a `feature_service`, not both".into(),
                ));
            }
            (None, true) => {
                return Err(ServerError::InvalidArgument(
                    "name the `features` (`view:feature`) or a `feature_service`".into(),
                ));
            }
        })
    }

    /// The options of `asof training-set`, with the entity table's timestamp column found.
    fn options(&self, schema: &SchemaRef) -> ServerResult<TrainingSetOptions> {
        let timestamp_column = match &self.timestamp_column {
            Some(c) => c.clone(),
            None => timestamp_column(schema)?,
        };
        Ok(TrainingSetOptions {
            timestamp_column,
            with_timestamps: self.with_timestamps,
            filter_by_created: self.filter_by_created_timestamp,
        })
    }
}

/// `event_timestamp` when the table has it, else its only timestamp column (Feast infers it the
/// same way).
fn timestamp_column(schema: &SchemaRef) -> ServerResult<String> {
    let default = TrainingSetOptions::default().timestamp_column;
    if schema.field_with_name(&default).is_ok() {
        return Ok(default);
    }
    let stamps: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        .map(|f| f.name().as_str())
        .collect();
    match stamps.as_slice() {
        [one] => Ok((*one).to_string()),
        _ => Err(ServerError::InvalidArgument(format!(
            "the entity table has {} timestamp columns ({}) and no `{default}`: name one with `timestamp_column`",
            stamps.len(),
            stamps.join(", ")
        ))),
    }
}

/// Runs a training set for a remote client: the same plan and stream as `asof training-set`,
/// handed back batch by batch. `request` is `command` resolved (see
/// [`TrainingSetCommand::resolve`]).
pub async fn training_set(
    store: &Arc<OfflineStore>,
    request: &FeatureRequest,
    command: &TrainingSetCommand,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> ServerResult<SendableRecordBatchStream> {
    // Feast sends a one-column table named `key` when it has no entity rows to send.
    if schema.fields().len() == 1 && schema.field(0).name() == "key" {
        return Err(ServerError::InvalidArgument(
            "no entity table was sent: a training set joins features onto entity rows (keys and an event timestamp)".into(),
        ));
    }
    let opts = command.options(&schema)?;
    let entities = EntityTable::from_batches("(uploaded)", schema, batches)?;
    Ok(store.training_set_stream(&entities, request, &opts).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_commands_reject_unknown_fields_and_feast_commands_do_not() {
        let err = TrainingSetCommand::parse(br#"{"features": ["a:b"], "full_feature_name": true}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `full_feature_name`"), "{err}");
        assert!(err.contains("full_feature_names"), "{err}");
        let feast = TrainingSetCommand::parse(
            br#"{"api": "get_historical_features", "feature_refs": ["a:b"], "name_aliases": [null], "command_id": "x"}"#,
        )
        .unwrap();
        assert_eq!(feast.feature_refs, vec!["a:b".to_string()]);
        assert!(TrainingSetCommand::parse(b"[1]").is_err());
        assert!(TrainingSetCommand::parse(b"{").is_err());
    }
}
