//! Arrow Flight for training sets: a thin adapter over [`crate::training`].
//!
//! Two flows reach the same join:
//! - `DoExchange` (asof's clients, and Feast's remote offline store as of Feast 0.67): the descriptor's
//!   command names the features, the client streams its entity table up, and the training set
//!   streams back on the same call, batch by batch, never as one message.
//! - `DoPut`, then `GetFlightInfo` and `DoGet` (Feast's older flow): the entity table waits here,
//!   keyed by the command, until the `DoGet` of its ticket takes it. Waiting tables are few and
//!   short-lived (see [`PENDING_MAX`], [`PENDING_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use asof_core::FeatureRequest;
use asof_offline::OfflineStore;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use prost::bytes::Bytes;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ServerError;
use crate::service::Serving;
use crate::training::{TrainingSetCommand, training_set};

/// Entity tables waiting for their `DoGet` at most; a new upload past this evicts the oldest.
pub const PENDING_MAX: usize = 64;
/// An uploaded entity table nobody fetched is dropped after this long.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// An upload, received: its command (keyed by its bytes) resolved, and its entity table.
#[derive(Debug)]
struct Received {
    key: Bytes,
    command: TrainingSetCommand,
    resolved: FeatureRequest,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

type Pending = HashMap<Bytes, (Instant, TrainingSetCommand, SchemaRef, Vec<RecordBatch>)>;

/// The Flight service: training sets from the offline store, over the registry `serving`
/// follows.
#[derive(Debug, Clone)]
pub struct TrainingSetFlight {
    serving: Serving,
    store: Arc<OfflineStore>,
    pending: Arc<Mutex<Pending>>,
}

impl TrainingSetFlight {
    pub fn new(serving: Serving, store: Arc<OfflineStore>) -> Self {
        TrainingSetFlight {
            serving,
            store,
            pending: Arc::default(),
        }
    }

    /// The tonic service, with asof's message size limit.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(crate::service::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::service::MAX_MESSAGE_BYTES)
    }

    /// Reads an uploaded entity table (the descriptor came in the first message).
    async fn upload(
        first: FlightData,
        rest: Streaming<FlightData>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        // Clients may send the descriptor alone first (pyarrow's DoExchange does), or with the
        // schema; only a message with a header is data.
        let first = (!first.data_header.is_empty()).then_some(Ok(first));
        let data = futures::stream::iter(first)
            .chain(rest.map_err(FlightError::from))
            .boxed();
        let mut stream = FlightRecordBatchStream::new_from_flight_data(data);
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch.map_err(|e| {
                Status::invalid_argument(format!("the uploaded entity table: {e}"))
            })?);
        }
        let schema = stream
            .schema()
            .cloned()
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        Ok((schema, batches))
    }

    /// The descriptor's command, parsed (callers resolve it before reading the upload, so a bad
    /// request fails at once).
    fn command(
        descriptor: Option<&FlightDescriptor>,
    ) -> Result<(Bytes, TrainingSetCommand), Status> {
        let cmd = descriptor
            .map(|d| d.cmd.clone())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument(
                    "send a command descriptor: JSON such as {\"features\": [\"view:feature\"]}",
                )
            })?;
        let command = TrainingSetCommand::parse(&cmd).map_err(Status::from)?;
        Ok((cmd, command))
    }

    /// Receives an upload as both flows do: its command is parsed and resolved against the
    /// registry before the table is read, so a bad request fails at once.
    async fn receive(&self, request: Request<Streaming<FlightData>>) -> Result<Received, Status> {
        let mut upload = request.into_inner();
        let first = Self::first_message(upload.message().await?)?;
        let (key, command) = Self::command(first.flight_descriptor.as_ref())?;
        let resolved = command
            .resolve(&self.serving.snapshot())
            .map_err(Status::from)?;
        let (schema, batches) = Self::upload(first, upload).await?;
        Ok(Received {
            key,
            command,
            resolved,
            schema,
            batches,
        })
    }

    async fn run(
        &self,
        request: &FeatureRequest,
        command: &TrainingSetCommand,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<BoxStream<'static, Result<FlightData, Status>>, Status> {
        let stream = training_set(&self.store, request, command, schema, batches)
            .await
            .map_err(Status::from)?;
        // A failure mid-stream (a memory limit, a source file gone) ends the call with its status.
        let batches = stream.map_err(|e| {
            let status = Status::from(ServerError::from(asof_offline::OfflineError::from(e)));
            FlightError::Tonic(Box::new(status))
        });
        Ok(FlightDataEncoderBuilder::new()
            .build(batches)
            .map_err(Status::from)
            .boxed())
    }

    /// The upload's first message, which must carry the descriptor.
    fn first_message(first: Option<FlightData>) -> Result<FlightData, Status> {
        let first = first.ok_or_else(|| {
            Status::invalid_argument("the stream was empty: send the entity table")
        })?;
        if first.flight_descriptor.is_none() {
            return Err(Status::invalid_argument(
                "the first message has no descriptor: put the training-set command in it",
            ));
        }
        Ok(first)
    }
}

#[tonic::async_trait]
impl FlightService for TrainingSetFlight {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let r = self.receive(request).await?;
        Ok(Response::new(
            self.run(&r.resolved, &r.command, r.schema, &r.batches)
                .await?,
        ))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let Received {
            key,
            command,
            schema,
            batches,
            ..
        } = self.receive(request).await?;
        let mut pending = self.pending.lock().expect("pending uploads");
        let now = Instant::now();
        pending.retain(|_, (at, ..)| now.duration_since(*at) < PENDING_TTL);
        if pending.len() >= PENDING_MAX
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, (at, ..))| *at)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(key, (now, command, schema, batches));
        Ok(Response::new(
            futures::stream::once(async { Ok(PutResult::default()) }).boxed(),
        ))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let descriptor = request.into_inner();
        if !self
            .pending
            .lock()
            .expect("pending uploads")
            .contains_key(&descriptor.cmd)
        {
            return Err(Status::not_found(
                "no entity table was uploaded with this command: DoPut it first, or use DoExchange",
            ));
        }
        let info = FlightInfo::new()
            .try_with_schema(&Schema::empty())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(descriptor.cmd.clone())))
            .with_descriptor(descriptor)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = request.into_inner().ticket;
        let taken = self
            .pending
            .lock()
            .expect("pending uploads")
            .remove(&ticket);
        let (_, command, schema, batches) = taken.ok_or_else(|| {
            Status::not_found(
                "unknown ticket: its entity table was already fetched, expired, or never uploaded",
            )
        })?;
        // Resolved again: the registry may have changed since the upload.
        let resolved = command
            .resolve(&self.serving.snapshot())
            .map_err(Status::from)?;
        Ok(Response::new(
            self.run(&resolved, &command, schema, &batches).await?,
        ))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "no handshake: send the bearer token in the `authorization` header",
        ))
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "training sets stream as they are joined: use DoExchange",
        ))
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented(
            "the schema comes first in the DoExchange or DoGet stream",
        ))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented(format!(
            "no action `{}`: asof's Flight service serves training sets (DoExchange)",
            request.get_ref().r#type
        )))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }
}
