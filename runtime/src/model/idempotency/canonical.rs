//! The canonical encoding a [`Fingerprint`](super::Fingerprint) digests: a serde
//! serializer whose output depends only on the serialized values, never on a map's
//! iteration order or a format's settings.
//!
//! Every value is a tag byte and its content, and every encoding is prefix-free, so a
//! concatenation of encodings reads back one way only:
//!
//! | value | encoding |
//! | --- | --- |
//! | `None`, `()`, a unit struct | `n` |
//! | `false`, `true` | `F`, `T` |
//! | an integer up to `i128::MAX` | `i` and its 16 bytes as an `i128`, big-endian |
//! | a larger `u128` | `I` and its 16 bytes, big-endian |
//! | a float | `f` and the 8 bytes of its `f64` bits, big-endian (every NaN the same) |
//! | a string, a char, a unit variant's name | `s`, its length as 8 bytes big-endian, its UTF-8 |
//! | bytes | `y`, the length, the bytes |
//! | a sequence, tuple or tuple struct | `l`, each element, `e` |
//! | a map or struct | `m`, its entries (key then value) sorted by their encoding, `e` |
//! | a variant with data | a map of one entry: its name and its data |
//!
//! `Some(x)` and a newtype struct encode as what they hold, as in JSON.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Serializer};

use super::compound::{Map, Seq, open_variant};

/// A value whose `Serialize` failed while it was fingerprinted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot fingerprint the decision: {0}")]
pub struct FingerprintError(String);

impl ser::Error for FingerprintError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        FingerprintError(message.to_string())
    }
}

/// The canonical encoding of `value`.
pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, FingerprintError> {
    let mut out = Vec::with_capacity(128);
    value.serialize(Encoder { out: &mut out })?;
    Ok(out)
}

pub(super) struct Encoder<'a> {
    pub(super) out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    pub(super) fn int(self, value: i128) {
        self.out.push(b'i');
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub(super) fn text(self, tag: u8, bytes: &[u8]) {
        self.out.push(tag);
        self.out
            .extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.out.extend_from_slice(bytes);
    }
}

impl<'a> Serializer for Encoder<'a> {
    type Ok = ();
    type Error = FingerprintError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Map<'a>;
    type SerializeStructVariant = Map<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), FingerprintError> {
        self.out.push(if v { b'T' } else { b'F' });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_i128(self, v: i128) -> Result<(), FingerprintError> {
        self.int(v);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), FingerprintError> {
        self.serialize_i128(v.into())
    }

    fn serialize_u128(self, v: u128) -> Result<(), FingerprintError> {
        match i128::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => {
                self.out.push(b'I');
                self.out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), FingerprintError> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<(), FingerprintError> {
        let v = if v.is_nan() { f64::NAN } else { v };
        self.out.push(b'f');
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), FingerprintError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), FingerprintError> {
        self.text(b's', v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), FingerprintError> {
        self.text(b'y', v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), FingerprintError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), FingerprintError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), FingerprintError> {
        self.out.push(b'n');
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), FingerprintError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), FingerprintError> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        open_variant(self.out, variant);
        value.serialize(Encoder { out: self.out })?;
        self.out.push(b'e');
        Ok(())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, FingerprintError> {
        Ok(Seq::start(self.out, None))
    }

    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, FingerprintError> {
        Ok(Seq::start(self.out, None))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, FingerprintError> {
        Ok(Seq::start(self.out, None))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, FingerprintError> {
        Ok(Seq::start(self.out, Some(variant)))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Map<'a>, FingerprintError> {
        Ok(Map::start(self.out, None))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Map<'a>, FingerprintError> {
        Ok(Map::start(self.out, None))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Map<'a>, FingerprintError> {
        Ok(Map::start(self.out, Some(variant)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[derive(serde::Serialize)]
    struct Point {
        y: i64,
        x: u8,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Empty,
        Circle(u32),
        Pair(u32, u32),
        Rect { w: u32, h: u32 },
    }

    fn enc<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        encode(value).unwrap()
    }

    #[test]
    fn maps_and_structs_are_sorted_and_equal_when_their_entries_are() {
        let map: HashMap<&str, i64> = [("x", 1), ("y", -2)].into();
        let reversed: BTreeMap<&str, i64> = [("y", -2), ("x", 1)].into();
        assert_eq!(enc(&map), enc(&reversed));
        assert_eq!(enc(&Point { y: -2, x: 1 }), enc(&map));
    }

    #[test]
    fn integers_compare_by_value_and_options_by_what_they_hold() {
        assert_eq!(enc(&5u8), enc(&5i64));
        assert_eq!(enc(&Some(5u32)), enc(&5u32));
        assert_eq!(enc(&None::<u32>), enc(&()));
        assert_ne!(enc(&u128::MAX), enc(&-1i128));
        assert_ne!(enc(&1u32), enc(&1.0f64));
    }

    #[test]
    fn sequences_keep_their_order_and_boundaries() {
        assert_ne!(enc(&vec![1, 2]), enc(&vec![2, 1]));
        assert_ne!(enc(&vec!["ab", ""]), enc(&vec!["a", "b"]));
        assert_ne!(
            enc(&(vec![1], vec![2])),
            enc(&(vec![1, 2], Vec::<i32>::new()))
        );
        assert_eq!(enc(&(1, 2)), enc(&vec![1, 2]));
        assert_eq!(enc(&[1, 2]), enc(&vec![1, 2]));
    }

    #[test]
    fn variants_are_told_apart_by_name_and_shape() {
        let all = [
            enc(&Shape::Empty),
            enc(&Shape::Circle(1)),
            enc(&Shape::Pair(1, 1)),
            enc(&Shape::Rect { w: 1, h: 1 }),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(enc(&Shape::Empty), enc("Empty"));
    }

    #[test]
    fn every_nan_is_the_same() {
        assert_eq!(enc(&f64::NAN), enc(&-f64::NAN));
        assert_eq!(enc(&1.5f32), enc(&1.5f64));
    }
}
