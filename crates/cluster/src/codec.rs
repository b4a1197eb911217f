//! The physical extension codec that lets Ballista ship asof's operators: every parameter of
//! [`PitJoinExec`] and [`WindowAggExec`] as a prost message (`proto/asof/cluster/v1`). Anything
//! else goes to Ballista's own codec, so its shuffle operators keep working.

use std::sync::Arc;

use asof_core::window::Function;
use asof_core::{DType, Ttl};
use asof_offline::input_order::InputOrderExec;
use asof_offline::keyed_inputs::Inputs;
use asof_offline::pit_join::{PitJoinExec, PitJoinOptions};
use asof_offline::window_agg::{WindowAggExec, WindowAggOptions, WindowAggregate};
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;

use crate::proto;

/// Marks an extension node as asof's: Ballista's codec sees every other node.
const TAG: &[u8] = b"asof.v1:";

/// asof's operators, then Ballista's. Register it on the client, the scheduler and every
/// executor: a stock Ballista binary cannot decode a training-set plan.
#[derive(Debug, Default)]
pub struct AsofCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for AsofCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(body) = buf.strip_prefix(TAG) else {
            return self.ballista.try_decode(buf, inputs, ctx, proto_converter);
        };
        let node = proto::OperatorNode::decode(body)
            .map_err(|e| codec_error(format!("cannot decode an asof operator: {e}")))?;
        if let Some(proto::operator_node::Operator::InputOrder(_)) = node.operator {
            let [input] = inputs else {
                return Err(codec_error(format!(
                    "InputOrderExec has one input, the plan gives it {}",
                    inputs.len()
                )));
            };
            return Ok(Arc::new(InputOrderExec::new(Arc::clone(input))));
        }
        let [left, right] = inputs else {
            return Err(codec_error(format!(
                "an asof operator has two inputs, the plan gives it {}",
                inputs.len()
            )));
        };
        let (left, right) = (Arc::clone(left), Arc::clone(right));
        match node.operator {
            Some(proto::operator_node::Operator::PitJoin(p)) => {
                let inputs = decode_inputs(p.inputs());
                let options = decode_pit_join(&p);
                Ok(Arc::new(PitJoinExec::with_inputs(
                    left, right, options, inputs,
                )?))
            }
            Some(proto::operator_node::Operator::WindowAgg(w)) => {
                let inputs = decode_inputs(w.inputs());
                let options = decode_window_agg(&w)?;
                Ok(Arc::new(WindowAggExec::with_inputs(
                    left, right, options, inputs,
                )?))
            }
            Some(proto::operator_node::Operator::InputOrder(_)) => unreachable!("decoded above"),
            None => Err(codec_error("an asof operator node names no operator")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let operator = if let Some(p) = node.downcast_ref::<PitJoinExec>() {
            proto::operator_node::Operator::PitJoin(encode_pit_join(p.options(), p.inputs()))
        } else if let Some(w) = node.downcast_ref::<WindowAggExec>() {
            proto::operator_node::Operator::WindowAgg(encode_window_agg(w.options(), w.inputs())?)
        } else if node.downcast_ref::<InputOrderExec>().is_some() {
            proto::operator_node::Operator::InputOrder(proto::InputOrder {})
        } else {
            return self.ballista.try_encode(node, buf, proto_converter);
        };
        buf.extend_from_slice(TAG);
        proto::OperatorNode {
            operator: Some(operator),
        }
        .encode(buf)
        .map_err(|e| codec_error(format!("cannot encode an asof operator: {e}")))
    }
}

fn codec_error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(format!("asof codec: {}", message.into()))
}

fn index(i: usize) -> u32 {
    u32::try_from(i).expect("a column index fits in u32")
}

fn encode_inputs(inputs: Inputs) -> proto::Inputs {
    match inputs {
        Inputs::Collected => proto::Inputs::Collected,
        Inputs::KeyPartitioned => proto::Inputs::KeyPartitioned,
    }
}

fn decode_inputs(inputs: proto::Inputs) -> Inputs {
    match inputs {
        proto::Inputs::Collected => Inputs::Collected,
        proto::Inputs::KeyPartitioned => Inputs::KeyPartitioned,
    }
}

fn encode_pit_join(o: &PitJoinOptions, inputs: Inputs) -> proto::PitJoin {
    proto::PitJoin {
        key_count: index(o.key_count),
        left_ts: index(o.left_ts),
        right_ts: index(o.right_ts),
        right_created: o.right_created.map(index),
        right_deleted: o.right_deleted.map(index),
        ttl_seconds: o.ttl.as_seconds(),
        filter_by_created: o.filter_by_created,
        inputs: encode_inputs(inputs) as i32,
    }
}

fn decode_pit_join(p: &proto::PitJoin) -> PitJoinOptions {
    PitJoinOptions {
        key_count: p.key_count as usize,
        left_ts: p.left_ts as usize,
        right_ts: p.right_ts as usize,
        right_created: p.right_created.map(|i| i as usize),
        right_deleted: p.right_deleted.map(|i| i as usize),
        ttl: Ttl::from_seconds(p.ttl_seconds),
        filter_by_created: p.filter_by_created,
    }
}

fn encode_function(f: Function) -> proto::Function {
    match f {
        Function::Count => proto::Function::Count,
        Function::Sum => proto::Function::Sum,
        Function::Mean => proto::Function::Mean,
        Function::Min => proto::Function::Min,
        Function::Max => proto::Function::Max,
        Function::Last => proto::Function::Last,
    }
}

fn decode_function(f: proto::Function) -> Function {
    match f {
        proto::Function::Count => Function::Count,
        proto::Function::Sum => Function::Sum,
        proto::Function::Mean => Function::Mean,
        proto::Function::Min => Function::Min,
        proto::Function::Max => Function::Max,
        proto::Function::Last => Function::Last,
    }
}

fn encode_window_agg(o: &WindowAggOptions, inputs: Inputs) -> Result<proto::WindowAgg> {
    let aggregates = o
        .aggregates
        .iter()
        .map(|a| {
            let output = datafusion_proto::protobuf::ArrowType::try_from(&a.output)
                .map_err(|e| codec_error(format!("output type of `{}`: {e}", a.name)))?;
            Ok(proto::WindowAggregate {
                name: a.name.clone(),
                function: encode_function(a.function) as i32,
                window_nanos: a.window,
                column: a.column.map(index),
                column_type: a.column_type.as_ref().map(DType::to_string),
                output_type: output.encode_to_vec(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(proto::WindowAgg {
        key_count: index(o.key_count),
        left_ts: index(o.left_ts),
        right_ts: index(o.right_ts),
        right_created: o.right_created.map(index),
        right_deleted: o.right_deleted.map(index),
        right_ordinal: o.right_ordinal.map(index),
        right_input_order: o.right_input_order.map(index),
        horizon_nanos: o.horizon,
        aggregates,
        inputs: encode_inputs(inputs) as i32,
    })
}

fn decode_window_agg(w: &proto::WindowAgg) -> Result<WindowAggOptions> {
    let aggregates = w
        .aggregates
        .iter()
        .map(|a| {
            let output = datafusion_proto::protobuf::ArrowType::decode(a.output_type.as_slice())
                .map_err(|e| codec_error(format!("output type of `{}`: {e}", a.name)))?;
            let output = DataType::try_from(&output)
                .map_err(|e| codec_error(format!("output type of `{}`: {e}", a.name)))?;
            let column_type = a
                .column_type
                .as_deref()
                .map(str::parse::<DType>)
                .transpose()
                .map_err(|e| codec_error(format!("column type of `{}`: {e}", a.name)))?;
            Ok(WindowAggregate {
                name: a.name.clone(),
                function: decode_function(a.function()),
                window: a.window_nanos,
                column: a.column.map(|i| i as usize),
                column_type,
                output,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WindowAggOptions {
        key_count: w.key_count as usize,
        left_ts: w.left_ts as usize,
        right_ts: w.right_ts as usize,
        right_created: w.right_created.map(|i| i as usize),
        right_deleted: w.right_deleted.map(|i| i as usize),
        right_ordinal: w.right_ordinal.map(|i| i as usize),
        right_input_order: w.right_input_order.map(|i| i as usize),
        horizon: w.horizon_nanos,
        aggregates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::PhysicalPlanNode;

    async fn input(columns: &[&str]) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        let arrays = columns
            .iter()
            .map(|_| Arc::new(Int64Array::from(vec![1, 2])) as _)
            .collect();
        let batch = RecordBatch::try_new(schema, arrays).unwrap();
        SessionContext::new()
            .read_batch(batch)
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap()
    }

    /// Encodes `plan` as Ballista would send it and decodes it as an executor would.
    fn round_trip(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        let codec = AsofCodec::default();
        let node = PhysicalPlanNode::try_from_physical_plan(plan, &codec).unwrap();
        let bytes = node.encode_to_vec();
        let node = PhysicalPlanNode::decode(bytes.as_slice()).unwrap();
        let ctx = SessionContext::new();
        node.try_into_physical_plan(&ctx.task_ctx(), &codec)
            .unwrap()
    }

    fn pit_options() -> impl proptest::strategy::Strategy<Value = (PitJoinOptions, Inputs)> {
        use proptest::prelude::*;
        (
            proptest::option::of(2usize..4),
            proptest::option::of(2usize..4),
            0u64..1_000_000,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(created, deleted, ttl, filter, partitioned)| {
                (
                    PitJoinOptions {
                        key_count: 1,
                        left_ts: 1,
                        right_ts: 1,
                        right_created: created,
                        right_deleted: deleted,
                        ttl: Ttl::from_seconds(ttl),
                        filter_by_created: filter,
                    },
                    if partitioned {
                        Inputs::KeyPartitioned
                    } else {
                        Inputs::Collected
                    },
                )
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Every PIT join parameter survives the trip, and so do its inputs.
        #[test]
        fn pit_join_round_trips((options, inputs) in pit_options()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (left, right) = rt.block_on(async {
                (input(&["k", "t"]).await, input(&["k", "ts", "c", "d", "v"]).await)
            });
            let plan: Arc<dyn ExecutionPlan> = Arc::new(
                PitJoinExec::with_inputs(left, right, options.clone(), inputs).unwrap(),
            );
            let back = round_trip(Arc::clone(&plan));
            let join = back.downcast_ref::<PitJoinExec>().expect("a PitJoinExec comes back");
            proptest::prop_assert_eq!(format!("{:?}", join.options()), format!("{options:?}"));
            proptest::prop_assert_eq!(join.inputs(), inputs);
            proptest::prop_assert_eq!(
                displayable(back.as_ref()).indent(true).to_string(),
                displayable(plan.as_ref()).indent(true).to_string()
            );
            proptest::prop_assert_eq!(back.schema(), plan.schema());
        }
    }

    /// Every window aggregation parameter survives the trip: each function, with and without a
    /// column, integer and float types, created times, deletes and ordinals.
    #[tokio::test]
    async fn window_agg_round_trips() {
        let left = input(&["k", "t"]).await;
        let right = input(&["k", "ts", "c", "d", "o", "v", "i"]).await;
        let functions = [
            Function::Count,
            Function::Sum,
            Function::Mean,
            Function::Min,
            Function::Max,
            Function::Last,
        ];
        let aggregates: Vec<WindowAggregate> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| WindowAggregate {
                name: format!("a{i}"),
                function: *f,
                window: (i as i64 + 1) * 3_600_000_000_000,
                column: (*f != Function::Count).then_some(5),
                column_type: (*f != Function::Count).then_some(if i % 2 == 0 {
                    DType::Int64
                } else {
                    DType::Float32
                }),
                output: if i % 2 == 0 {
                    DataType::Int64
                } else {
                    DataType::Float64
                },
            })
            .collect();
        for inputs in [Inputs::Collected, Inputs::KeyPartitioned] {
            let options = WindowAggOptions {
                key_count: 1,
                left_ts: 1,
                right_ts: 1,
                right_created: Some(2),
                right_deleted: Some(3),
                right_ordinal: Some(4),
                right_input_order: Some(6),
                horizon: 6 * 3_600_000_000_000,
                aggregates: aggregates.clone(),
            };
            let plan: Arc<dyn ExecutionPlan> = Arc::new(
                WindowAggExec::with_inputs(
                    Arc::clone(&left),
                    Arc::clone(&right),
                    options.clone(),
                    inputs,
                )
                .unwrap(),
            );
            let back = round_trip(Arc::clone(&plan));
            let agg = back
                .downcast_ref::<WindowAggExec>()
                .expect("a WindowAggExec comes back");
            assert_eq!(format!("{:?}", agg.options()), format!("{options:?}"));
            assert_eq!(agg.inputs(), inputs);
            assert_eq!(back.schema(), plan.schema());
        }
    }

    #[tokio::test]
    async fn input_order_round_trips() {
        let plan: Arc<dyn ExecutionPlan> = Arc::new(InputOrderExec::new(input(&["k", "v"]).await));
        let back = round_trip(Arc::clone(&plan));
        assert!(back.downcast_ref::<InputOrderExec>().is_some());
        assert_eq!(back.schema(), plan.schema());
    }

    /// A node that is not asof's goes to Ballista's codec, which names what it cannot read.
    #[tokio::test]
    async fn other_nodes_go_to_ballista() {
        let codec = AsofCodec::default();
        let ctx = SessionContext::new();
        let converter = datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {};
        let err = codec
            .try_decode(b"not a plan", &[], &ctx.task_ctx(), &converter)
            .unwrap_err();
        assert!(!err.to_string().contains("asof codec"), "{err}");
    }
}
