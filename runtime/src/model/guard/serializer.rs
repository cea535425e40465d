//! [`Guard`]: a `serde::Serializer` that forwards every call to the codec's own and
//! checks floats and nesting on the way.

use serde::ser::{self, Serialize, Serializer};

use super::compound::Compound;
use super::{Path, Shared, Step};
use crate::model::EncodeReason;

/// The name serde_json gives the struct a `RawValue` goes through: its text is copied
/// as it is, so the struct is no level of nesting of its own.
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// Where a value is being written: the encode's shared state, the value's path and the
/// levels of arrays and maps around it.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) shared: &'a Shared,
    pub(super) path: &'a Path<'a>,
    pub(super) depth: usize,
}

/// The codec's serializer `S`, checking what passes through it.
pub(super) struct Guard<'a, S> {
    inner: S,
    at: At<'a>,
}

impl<'a, S: Serializer> Guard<'a, S> {
    /// A guard over `inner` for a value at `path`, `depth` levels deep.
    pub(super) fn new(inner: S, shared: &'a Shared, path: &'a Path<'a>, depth: usize) -> Self {
        Guard {
            inner,
            at: At {
                shared,
                path,
                depth,
            },
        }
    }

    /// Records the first refusal of the encode and aborts the codec with it.
    #[cold]
    #[inline(never)]
    fn refuse(&self, reason: EncodeReason) -> S::Error {
        let error = <S::Error as ser::Error>::custom(&reason);
        let first = self.at.shared.refusal.take().unwrap_or(reason);
        self.at.shared.refusal.set(Some(first));
        error
    }

    fn check_float(&self, value: f64) -> Result<(), S::Error> {
        if value.is_finite() || !self.at.shared.limits.finite_floats {
            return Ok(());
        }
        Err(self.non_finite(value))
    }

    #[cold]
    #[inline(never)]
    fn non_finite(&self, value: f64) -> S::Error {
        let value = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        self.refuse(EncodeReason::NonFinite {
            path: self.at.path.render(),
            value,
        })
    }

    /// Where the inside of `levels` more levels of nesting is, unless that is too deep.
    fn open(&self, levels: usize) -> Result<At<'a>, S::Error> {
        let depth = self.at.depth + levels;
        if depth > self.at.shared.limits.max_depth {
            return Err(self.too_deep(depth));
        }
        Ok(At { depth, ..self.at })
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self, depth: usize) -> S::Error {
        let limits = self.at.shared.limits;
        self.refuse(EncodeReason::TooDeep {
            path: self.at.path.render(),
            depth,
            limit: limits.max_depth,
            codec: limits.codec,
        })
    }
}

/// A value to write at `at`: serializing it puts a [`Guard`] around the serializer.
pub(super) struct Nested<'v, 'a, T: ?Sized> {
    pub(super) value: &'v T,
    pub(super) at: At<'a>,
}

impl<T: Serialize + ?Sized> Serialize for Nested<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Guard {
            inner: serializer,
            at: self.at,
        })
    }
}

macro_rules! forward {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method(self, value: $ty) -> Result<S::Ok, S::Error> {
                self.inner.$method(value)
            }
        )*
    };
}

impl<'a, S: Serializer> Serializer for Guard<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
    );

    fn serialize_f32(self, value: f32) -> Result<S::Ok, S::Error> {
        self.check_float(f64::from(value))?;
        self.inner.serialize_f32(value)
    }

    fn serialize_f64(self, value: f64) -> Result<S::Ok, S::Error> {
        self.check_float(value)?;
        self.inner.serialize_f64(value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<S::Ok, S::Error> {
        if self.at.shared.limits.bytes_nest {
            self.open(1)?;
        }
        self.inner.serialize_bytes(value)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Nested { value, at: self.at })
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        if self.at.shared.limits.unit_struct_nests {
            self.open(1)?;
        }
        self.inner.serialize_unit_struct(name)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_struct(name, &Nested { value, at: self.at })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // `{"Variant": value}` in both codecs: a map around the value.
        let inside = self.open(1)?;
        let path = Path {
            parent: Some(self.at.path),
            variant: None,
            step: Step::Variant(variant),
        };
        let at = At {
            path: &path,
            ..inside
        };
        self.inner
            .serialize_newtype_variant(name, index, variant, &Nested { value, at })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let at = self.open(1)?;
        Ok(Compound::new(self.inner.serialize_seq(len)?, at, None))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let at = self.open(1)?;
        Ok(Compound::new(self.inner.serialize_tuple(len)?, at, None))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let at = self.open(1)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound::new(inner, at, None))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        // `{"Variant": [..]}`: two levels.
        let at = self.open(2)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Compound::new(inner, at, Some(variant)))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let at = self.open(1)?;
        Ok(Compound::new(self.inner.serialize_map(len)?, at, None))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let at = self.open(usize::from(name != RAW_VALUE))?;
        Ok(Compound::new(
            self.inner.serialize_struct(name, len)?,
            at,
            None,
        ))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        // `{"Variant": {..}}`: two levels.
        let at = self.open(2)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Compound::new(inner, at, Some(variant)))
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}
