//! [`Compound`]: the codec's serializer of a sequence, tuple, map, struct or variant,
//! giving each element its step in the path.

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};

use super::serializer::{At, Nested};
use super::{KeyRef, KeyText, Path, Step};

/// The codec's serializer of a sequence, tuple, map, struct or variant, giving each
/// element its step in the path.
pub(super) struct Compound<'a, C> {
    inner: C,
    /// Inside the compound: its elements' depth, and the compound's own path.
    at: At<'a>,
    /// The variant of a tuple or struct variant: a step between the compound and its
    /// elements.
    variant: Option<&'static str>,
    /// The next element's index, in a sequence or tuple.
    index: usize,
    /// The key given by `serialize_key`, for the path of the next `serialize_value`.
    key: Option<Box<str>>,
}

impl<'a, C> Compound<'a, C> {
    pub(super) fn new(inner: C, at: At<'a>, variant: Option<&'static str>) -> Self {
        Compound {
            inner,
            at,
            variant,
            index: 0,
            key: None,
        }
    }

    /// The path of the element at `step`.
    fn path<'s>(&self, step: Step<'s>) -> Path<'s>
    where
        'a: 's,
    {
        Path {
            parent: Some(self.at.path),
            variant: self.variant,
            step,
        }
    }

    fn next_index(&mut self) -> Step<'static> {
        let index = self.index;
        self.index += 1;
        Step::Index(index)
    }
}

// The elements are written inline, without helper closures: each call is a stack frame
// per level of nesting in a debug build, and MessagePack nests up to 1,023 levels.
macro_rules! elements {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(
            impl<C: $trait> $trait for Compound<'_, C> {
                type Ok = C::Ok;
                type Error = C::Error;

                            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                    let step = self.next_index();
                    let path = self.path(step);
                    let at = At { path: &path, ..self.at };
                    self.inner.$method(&Nested { value, at })
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.inner.end()
                }
            }
        )*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(
            impl<C: $trait> $trait for Compound<'_, C> {
                type Ok = C::Ok;
                type Error = C::Error;

                            fn serialize_field<T: Serialize + ?Sized>(
                    &mut self,
                    key: &'static str,
                    value: &T,
                ) -> Result<(), C::Error> {
                    let path = self.path(Step::Field(key));
                    let at = At { path: &path, ..self.at };
                    self.inner.serialize_field(key, &Nested { value, at })
                }

                fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                    self.inner.skip_field(key)
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.inner.end()
                }
            }
        )*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl<C: SerializeMap> SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        // Rare (serde's own maps call `serialize_entry`): the key is kept as text for the
        // path of its value, which comes in another call.
        let text: Box<str> = KeyRef(key).text().into();
        let named = text.to_string();
        let path = self.path(Step::Key(&named));
        let at = At {
            path: &path,
            ..self.at
        };
        let result = self.inner.serialize_key(&Nested { value: key, at });
        self.key = Some(text);
        result
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let key = self.key.take().map(String::from).unwrap_or_default();
        let path = self.path(Step::Key(&key));
        let at = At {
            path: &path,
            ..self.at
        };
        self.inner.serialize_value(&Nested { value, at })
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        let named = KeyRef(key);
        let path = self.path(Step::Key(&named));
        let at = At {
            path: &path,
            ..self.at
        };
        self.inner
            .serialize_entry(&Nested { value: key, at }, &Nested { value, at })
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}
