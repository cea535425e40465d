//! What a state starts from: `#[initial(..)]` values in the generated constructor, and
//! the field-by-field comparison (`StateId::same_start`) that decides whether a warm
//! copy or a snapshot may stand in for the state a decision built.

use factum::prelude::*;
use factum::{Decide, StateId};

#[factum::events]
pub mod billing {
    /// An invoice got its number.
    pub struct InvoiceNumbered {
        #[tag]
        pub invoice: String,
        pub number: u64,
    }
}

/// The next invoice number: global (no id), starting at 1, not at `u64::default()`.
#[derive(State, Debug, PartialEq)]
pub struct NextInvoiceNumber {
    #[initial(1)]
    pub next: u64,
    #[initial(String::from("INV-"))]
    pub prefix: String,
    pub issued: u32,
}

#[factum::fold]
impl NextInvoiceNumber {
    fn numbered(&mut self, e: &billing::InvoiceNumbered) {
        self.next = e.number + 1;
        self.issued += 1;
    }
}

#[derive(Decision, Debug)]
pub struct NumberInvoice {
    pub invoice: String,
}

impl Decide for NumberInvoice {
    type State = NextInvoiceNumber;
    type Event = billing::Event;
    type Error = std::convert::Infallible;

    fn state(&self) -> NextInvoiceNumber {
        NextInvoiceNumber::new()
    }

    fn decide(&self, next: &NextInvoiceNumber) -> Result<Vec<billing::Event>, Self::Error> {
        Ok(vec![
            billing::InvoiceNumbered {
                invoice: self.invoice.clone(),
                number: next.next,
            }
            .into(),
        ])
    }
}

/// A state with an id, an `#[initial]` field and a field a command sets.
#[derive(State, Debug, PartialEq)]
pub struct Window {
    #[id]
    pub invoice: String,
    #[initial(24)]
    pub hours: u32,
    pub now: Option<u64>,
}

#[factum::fold]
impl Window {
    fn numbered(&mut self, _: &billing::InvoiceNumbered) {}
}

#[test]
fn initial_values_start_the_generated_constructor() {
    let next = NextInvoiceNumber::new();
    assert_eq!(
        next,
        NextInvoiceNumber {
            next: 1,
            prefix: "INV-".into(),
            issued: 0
        }
    );
    let window = Window::new("i-1");
    assert_eq!((window.hours, window.now), (24, None));
}

#[tokio::test]
async fn invoice_numbers_start_at_one_and_follow_the_log() {
    let engine = Engine::new(MemoryStore::new());
    let mut numbers = Vec::new();
    for invoice in ["a", "b", "c"] {
        let outcome = engine
            .decide(&NumberInvoice {
                invoice: invoice.into(),
            })
            .await
            .unwrap();
        let billing::Event::InvoiceNumbered(e) = &outcome.events[0];
        numbers.push(e.number);
    }
    assert_eq!(numbers, [1, 2, 3]);
}

#[test]
fn same_start_compares_every_field() {
    let a = Window::new("i-1");
    assert!(a.same_start(&Window::new("i-1")));
    assert!(!a.same_start(&Window::new("i-2")), "ids differ");
    let later = Window {
        now: Some(5),
        ..Window::new("i-1")
    };
    assert!(!a.same_start(&later), "a field the command set differs");
    let wider = Window {
        hours: 48,
        ..Window::new("i-1")
    };
    assert!(!a.same_start(&wider));
    assert!(later.same_start(&Window {
        now: Some(5),
        ..Window::new("i-1")
    }));
}
