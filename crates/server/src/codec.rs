//! The protobuf codec of the generated services: tonic's prost codec, except that messages are
//! encoded into a `Vec` first and copied into tonic's buffer once.
//!
//! prost writes a varint byte by byte through `BufMut::put_u8`. `BytesMut` has no `put_u8` of its
//! own, so each byte became an out-of-line `put_slice` and `memcpy`: encoding a 100-row response
//! (1,400 nested messages) was a fifth of the server's CPU. `Vec<u8>`'s `put_slice` inlines into a
//! store, so staging costs one extra copy of the finished message and saves most of the encoding.
//! Every gRPC call in the serving tests goes through this codec, both ways.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// `application/grpc+proto` with staged encoding; named in `build.rs` as the services' codec.
#[derive(Debug, Clone)]
pub struct StagedProstCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StagedProstCodec<T, U> {
    fn default() -> Self {
        StagedProstCodec(PhantomData)
    }
}

impl<T, U> Codec for StagedProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = StagedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        StagedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[derive(Debug, Clone)]
pub struct StagedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for StagedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item.encode_to_vec());
        Ok(())
    }
}
