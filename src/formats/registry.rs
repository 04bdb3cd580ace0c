//! The Confluent wire format of registry-framed values, and the schemas a registry holds.
//!
//! A framed value is the magic byte 0, the schema id as a big-endian 32-bit integer, for
//! Protobuf the message-index list (which message of the schema's file the payload is), then the
//! payload. The message-index list is a count and then that many indexes, each a zig-zag varint;
//! the common list `[0]` (the file's first message) is written as the single byte 0 (a count of
//! zero). Plain JSON never starts with a zero byte, so framed and plain values can share a topic.
//!
//! Pure: the client that fetches schemas is [`super::registry_client`].

use std::fmt;

/// The first byte of every framed value.
pub const MAGIC: u8 = 0;

/// Bytes before the payload (or before Protobuf's message indexes): the magic byte and the id.
pub const HEADER_LEN: usize = 5;

/// Deepest message nesting a Protobuf message-index list may name; deeper lists are refused as
/// corrupt before anything is allocated for them.
pub const MAX_MESSAGE_DEPTH: usize = 64;

/// A schema's id in the registry, as framed values carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId(pub u32);

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a value that starts like a framed one cannot be split into header and payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Fewer bytes than the header needs.
    #[error("registry frame: value of {0} bytes is shorter than the 5-byte header")]
    TooShort(usize),
    /// The first byte is not [`MAGIC`].
    #[error("registry frame: first byte is {0:#04x}, not the magic byte 0")]
    NoMagic(u8),
    /// The Protobuf message-index list is cut short or out of range.
    #[error("protobuf: bad message-index list: {0}")]
    MessageIndexes(&'static str),
}

/// Whether `value` is meant as a registry-framed value: it starts with the magic byte. (Whether
/// it is a well-formed one, [`split_header`] says.)
pub fn is_framed(value: &[u8]) -> bool {
    value.first() == Some(&MAGIC)
}

/// The schema id of a framed value, and what follows the header.
pub fn split_header(value: &[u8]) -> Result<(SchemaId, &[u8]), FramingError> {
    let (&[magic, a, b, c, d], rest) = value
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(FramingError::TooShort(value.len()))?;
    if magic != MAGIC {
        return Err(FramingError::NoMagic(magic));
    }
    Ok((SchemaId(u32::from_be_bytes([a, b, c, d])), rest))
}

/// Appends the header of a value framed with schema `id`.
pub fn write_header(id: SchemaId, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.0.to_be_bytes());
}

/// Which message of a Protobuf schema's file a payload is: indexes into the file's top-level
/// messages, then into each message's nested messages. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIndexes(Vec<i32>);

impl MessageIndexes {
    /// The file's first top-level message, `[0]`.
    pub fn first() -> Self {
        MessageIndexes(vec![0])
    }

    /// A path of indexes; `None` when empty or when an index is negative.
    pub fn new(path: Vec<i32>) -> Option<Self> {
        (!path.is_empty() && path.iter().all(|&i| i >= 0)).then_some(MessageIndexes(path))
    }

    /// The indexes, outermost first.
    pub fn path(&self) -> &[i32] {
        &self.0
    }
}

impl fmt::Display for MessageIndexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Reads one zig-zag varint of at most 32 bits from the front of `bytes`.
fn read_zigzag(bytes: &mut &[u8]) -> Result<i32, FramingError> {
    let mut raw: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = bytes
            .split_first()
            .ok_or(FramingError::MessageIndexes("cut short"))?;
        *bytes = rest;
        if shift == 28 && byte > 0x0f {
            return Err(FramingError::MessageIndexes("a varint longer than 32 bits"));
        }
        raw |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i32 ^ -((raw & 1) as i32));
        }
    }
    Err(FramingError::MessageIndexes("a varint longer than 32 bits"))
}

/// Appends `value` as a zig-zag varint.
fn write_zigzag(value: i32, out: &mut Vec<u8>) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// The message-index list at the front of a Protobuf value's body (what follows the header),
/// and the payload after it.
pub fn split_message_indexes(body: &[u8]) -> Result<(MessageIndexes, &[u8]), FramingError> {
    let mut rest = body;
    let count = read_zigzag(&mut rest)?;
    if count == 0 {
        return Ok((MessageIndexes::first(), rest));
    }
    let count =
        usize::try_from(count).map_err(|_| FramingError::MessageIndexes("a negative count"))?;
    if count > MAX_MESSAGE_DEPTH {
        return Err(FramingError::MessageIndexes(
            "more indexes than any message nesting",
        ));
    }
    let mut path = Vec::with_capacity(count);
    for _ in 0..count {
        let index = read_zigzag(&mut rest)?;
        if index < 0 {
            return Err(FramingError::MessageIndexes("a negative index"));
        }
        path.push(index);
    }
    Ok((MessageIndexes(path), rest))
}

/// Appends a message-index list as Confluent's serializers write it (`[0]` as one zero byte).
pub fn write_message_indexes(indexes: &MessageIndexes, out: &mut Vec<u8>) {
    if indexes.0 == [0] {
        out.push(0);
        return;
    }
    write_zigzag(indexes.0.len() as i32, out);
    for &index in &indexes.0 {
        write_zigzag(index, out);
    }
}

/// The kind of a registered schema, as the registry's `schemaType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// `AVRO`, also what an answer without `schemaType` means.
    Avro,
    /// `PROTOBUF`
    Protobuf,
    /// `JSON` (JSON Schema; the payload is JSON text)
    Json,
}

impl SchemaKind {
    /// The kind a registry answer's `schemaType` names (absent means Avro); `None` for a type
    /// this crate does not decode.
    pub fn from_api(schema_type: Option<&str>) -> Option<SchemaKind> {
        match schema_type {
            None | Some("AVRO") => Some(SchemaKind::Avro),
            Some("PROTOBUF") => Some(SchemaKind::Protobuf),
            Some("JSON") => Some(SchemaKind::Json),
            Some(_) => None,
        }
    }

    /// The registry's name for the kind.
    pub fn api_name(self) -> &'static str {
        match self {
            SchemaKind::Avro => "AVRO",
            SchemaKind::Protobuf => "PROTOBUF",
            SchemaKind::Json => "JSON",
        }
    }
}

impl fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaKind::Avro => "avro",
            SchemaKind::Protobuf => "protobuf",
            SchemaKind::Json => "json schema",
        })
    }
}

/// A schema another one refers to: an imported `.proto` file, or an Avro named type defined in
/// another subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReference {
    /// The name the referring schema uses: the import path, or the Avro type's full name.
    pub name: String,
    /// The subject it is registered under.
    pub subject: String,
    /// Its version under that subject.
    pub version: i32,
}

/// A referenced schema, fetched: what a decoder needs beside the schema itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The name the referring schema uses for it.
    pub name: String,
    /// The schema text.
    pub text: String,
}

/// One schema as the registry holds it under an id, with every schema it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its id.
    pub id: SchemaId,
    /// Avro, Protobuf or JSON Schema.
    pub kind: SchemaKind,
    /// The schema text: Avro JSON, `.proto` source or a base64 `FileDescriptorProto`, or JSON
    /// Schema.
    pub text: String,
    /// What it refers to, transitively, each before anything that refers to it.
    pub dependencies: Vec<Dependency>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(id: u32, indexes: Option<&MessageIndexes>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(SchemaId(id), &mut out);
        if let Some(indexes) = indexes {
            write_message_indexes(indexes, &mut out);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_header_is_the_magic_byte_and_the_id_big_endian() {
        let value = framed(0x0102_0304, None, b"xy");
        assert_eq!(value, [0, 1, 2, 3, 4, b'x', b'y']);
        assert_eq!(
            split_header(&value),
            Ok((SchemaId(0x0102_0304), &b"xy"[..]))
        );
        assert!(is_framed(&value));
        assert!(!is_framed(b"{\"years_experience\": 5.3}"));
        assert!(!is_framed(b""));
    }

    #[test]
    fn a_header_round_trips_for_every_width_of_id() {
        for id in [0, 1, 255, 256, 65_535, 1 << 24, u32::MAX] {
            let value = framed(id, None, &[]);
            assert_eq!(split_header(&value), Ok((SchemaId(id), &[][..])));
        }
    }

    #[test]
    fn a_short_or_unmagical_value_says_what_is_wrong() {
        assert_eq!(split_header(&[0, 0, 1]), Err(FramingError::TooShort(3)));
        assert_eq!(
            split_header(&[0, 0, 1]).unwrap_err().to_string(),
            "registry frame: value of 3 bytes is shorter than the 5-byte header"
        );
        assert_eq!(
            split_header(&[7, 0, 0, 0, 1]).unwrap_err().to_string(),
            "registry frame: first byte is 0x07, not the magic byte 0"
        );
    }

    #[test]
    fn the_first_message_is_one_zero_byte_and_others_are_zig_zag_lists() {
        let cases: [(&[i32], &[u8]); 5] = [
            (&[0], &[0]),
            (&[1], &[2, 2]),
            (&[1, 0], &[4, 2, 0]),
            (&[0, 0], &[4, 0, 0]),
            (&[200], &[2, 0x90, 0x03]),
        ];
        for (path, bytes) in cases {
            let indexes = MessageIndexes::new(path.to_vec()).expect("a valid path");
            let mut out = Vec::new();
            write_message_indexes(&indexes, &mut out);
            assert_eq!(out, bytes, "{path:?}");
            out.extend_from_slice(b"pb");
            assert_eq!(
                split_message_indexes(&out),
                Ok((indexes, &b"pb"[..])),
                "{path:?}"
            );
        }
    }

    #[test]
    fn a_whole_protobuf_frame_round_trips() {
        let indexes = MessageIndexes::new(vec![2, 5, 1]).expect("a valid path");
        let value = framed(7, Some(&indexes), &[0x08, 0x96, 0x01]);
        let (id, body) = split_header(&value).expect("a header");
        assert_eq!(id, SchemaId(7));
        assert_eq!(
            split_message_indexes(body),
            Ok((indexes, &[0x08, 0x96, 0x01][..]))
        );
    }

    #[test]
    fn corrupt_message_indexes_are_refused_without_allocating_for_them() {
        let refused = |bytes: &[u8]| split_message_indexes(bytes).unwrap_err().to_string();
        assert_eq!(refused(&[]), "protobuf: bad message-index list: cut short");
        assert_eq!(
            refused(&[4, 2]),
            "protobuf: bad message-index list: cut short"
        );
        assert_eq!(
            refused(&[1]),
            "protobuf: bad message-index list: a negative count"
        );
        assert_eq!(
            refused(&[2, 1]),
            "protobuf: bad message-index list: a negative index"
        );
        assert_eq!(
            refused(&[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            "protobuf: bad message-index list: more indexes than any message nesting"
        );
        assert_eq!(
            refused(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            "protobuf: bad message-index list: a varint longer than 32 bits"
        );
    }

    #[test]
    fn zig_zag_covers_the_whole_i32_range() {
        for value in [0, -1, 1, -64, 64, i32::MIN, i32::MAX] {
            let mut out = Vec::new();
            write_zigzag(value, &mut out);
            let mut rest = &out[..];
            assert_eq!(read_zigzag(&mut rest), Ok(value));
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn schema_types_follow_the_registry_api() {
        assert_eq!(SchemaKind::from_api(None), Some(SchemaKind::Avro));
        assert_eq!(SchemaKind::from_api(Some("AVRO")), Some(SchemaKind::Avro));
        assert_eq!(
            SchemaKind::from_api(Some("PROTOBUF")),
            Some(SchemaKind::Protobuf)
        );
        assert_eq!(SchemaKind::from_api(Some("JSON")), Some(SchemaKind::Json));
        assert_eq!(SchemaKind::from_api(Some("XML")), None);
    }
}
