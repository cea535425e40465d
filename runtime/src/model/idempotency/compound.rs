//! The compound values of the canonical encoding (see [`canonical`](super::canonical)):
//! sequences written as they come, maps and structs with their entries sorted.

use serde::Serialize;
use serde::ser;

use super::canonical::{Encoder, FingerprintError};

/// A sequence's elements, written as they come.
pub(super) struct Seq<'a> {
    out: &'a mut Vec<u8>,
    /// Closes a one-entry map around the sequence (a tuple variant).
    variant: bool,
}

/// A map's entries, each encoded on its own and sorted at the end.
pub(super) struct Map<'a> {
    out: &'a mut Vec<u8>,
    entries: Vec<Vec<u8>>,
    /// Closes a one-entry map around this one (a struct variant).
    variant: bool,
}

impl<'a> Seq<'a> {
    pub(super) fn start(out: &'a mut Vec<u8>, variant: Option<&str>) -> Self {
        if let Some(name) = variant {
            open_variant(out, name);
        }
        out.push(b'l');
        Seq {
            out,
            variant: variant.is_some(),
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FingerprintError> {
        value.serialize(Encoder { out: self.out })
    }

    fn end(self) {
        self.out.push(b'e');
        if self.variant {
            self.out.push(b'e');
        }
    }
}

impl<'a> Map<'a> {
    pub(super) fn start(out: &'a mut Vec<u8>, variant: Option<&str>) -> Self {
        if let Some(name) = variant {
            open_variant(out, name);
        }
        Map {
            out,
            entries: Vec::new(),
            variant: variant.is_some(),
        }
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FingerprintError> {
        let mut entry = Vec::new();
        key.serialize(Encoder { out: &mut entry })?;
        self.entries.push(entry);
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FingerprintError> {
        match self.entries.last_mut() {
            Some(entry) => value.serialize(Encoder { out: entry }),
            None => Err(ser::Error::custom("a map value without a key")),
        }
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        self.key(name)?;
        self.value(value)
    }

    fn end(mut self) {
        self.entries.sort_unstable();
        self.out.push(b'm');
        for entry in &self.entries {
            self.out.extend_from_slice(entry);
        }
        self.out.push(b'e');
        if self.variant {
            self.out.push(b'e');
        }
    }
}

/// Opens the one-entry map a variant with data is: `m`, its name, then its data.
pub(super) fn open_variant(out: &mut Vec<u8>, name: &str) {
    out.push(b'm');
    Encoder { out }.text(b's', name.as_bytes());
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Seq::end(self);
        Ok(())
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Seq::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Seq::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Seq::end(self);
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.value(value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Map::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.field(name, value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Map::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.field(name, value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Map::end(self);
        Ok(())
    }
}
