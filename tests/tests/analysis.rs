//! The static conflict analysis on small purpose-built domains: one test per warning,
//! each with a variant that must stay quiet, so a rule that fires too often fails too.

use factum::catalog::{Catalog, Conflict, Warning, cli};
use factum::prelude::*;

#[factum::events]
pub mod theatre {
    pub struct ShowScheduled {
        #[tag]
        pub show: String,
        pub seats: u32,
    }
    #[event(public)]
    pub struct SeatBooked {
        #[tag]
        pub show: String,
        #[tag]
        pub customer: String,
    }
    /// Carries no `show` tag: no show's query can match it.
    pub struct CustomerRegistered {
        #[tag]
        pub customer: String,
    }
}

use theatre::{CustomerRegistered, SeatBooked, ShowScheduled};

#[derive(State, Debug, Default)]
pub struct Show {
    #[id]
    pub show: String,
    pub free: u32,
}

#[factum::fold]
impl Show {
    fn scheduled(&mut self, e: &ShowScheduled) {
        self.free = e.seats;
    }
    fn booked(&mut self, _: &SeatBooked) {
        self.free = self.free.saturating_sub(1);
    }
}

#[derive(State, Debug, Default)]
pub struct Customer {
    #[id]
    pub customer: String,
    pub bookings: u32,
}

#[factum::fold]
impl Customer {
    fn registered(&mut self, _: &CustomerRegistered) {}
    fn booked(&mut self, _: &SeatBooked) {
        self.bookings += 1;
    }
}

/// Declares a decision that reads `$state`, may emit `$event` and decides nothing: the
/// analysis looks only at the metadata.
macro_rules! decision {
    ($(#[$meta:meta])* $name:ident reads $state:ty = |$this:ident| $init:expr; emits $event:ty) => {
        #[derive(Decision)]
        $(#[$meta])*
        pub struct $name {
            pub show: String,
            pub customer: String,
        }

        impl Decide for $name {
            type State = $state;
            type Event = $event;
            type Error = String;
            fn state(&self) -> $state {
                let $this = self;
                $init
            }
            fn decide(&self, _: &$state) -> Result<Vec<$event>, String> {
                Ok(Vec::new())
            }
        }
    };
}

decision!(#[decision(partition = show)] ScheduleShow reads Show = |d| Show::new(d.show.clone()); emits ShowScheduled);
decision!(#[decision(partition = show)] BookByShow reads Show = |d| Show::new(d.show.clone()); emits SeatBooked);
decision!(#[decision(partition = customer)] BookByCustomer reads Show = |d| Show::new(d.show.clone()); emits SeatBooked);
decision!(BookOptimistic reads Show = |d| Show::new(d.show.clone()); emits SeatBooked);
decision!(#[decision(partition = customer)] Register reads Customer = |d| Customer::new(d.customer.clone()); emits CustomerRegistered);
decision!(
    #[decision(exclude = [SeatBooked], exclude_from = [Show])]
    BookTolerant reads (Show, Customer) = |d| (Show::new(d.show.clone()), Customer::new(d.customer.clone())); emits SeatBooked
);
decision!(
    #[decision(partition = show, exclude = [CustomerRegistered])]
    BookIgnoringRegistrations reads (Show, Customer) = |d| (Show::new(d.show.clone()), Customer::new(d.customer.clone())); emits SeatBooked
);

fn different_lanes(catalog: &Catalog) -> Vec<(&'static str, &'static str, &'static str)> {
    catalog
        .analyze()
        .warnings
        .into_iter()
        .filter_map(|w| match w {
            Warning::DifferentLanes { conflicts, .. } => Some(
                conflicts
                    .into_iter()
                    .map(|c| (c.writer, c.reader, c.state))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

fn kinds(catalog: &Catalog) -> Vec<&'static str> {
    catalog
        .analyze()
        .warnings
        .iter()
        .map(Warning::kind)
        .collect()
}

#[test]
fn conflicting_decisions_partitioned_by_different_keys_are_warned_about() {
    let catalog = Catalog::new()
        .decision::<ScheduleShow>()
        .decision::<BookByCustomer>();
    assert_eq!(
        different_lanes(&catalog),
        vec![
            // Two bookings of one show by two customers land in two lanes.
            ("BookByCustomer", "BookByCustomer", "Show"),
            // Rescheduling the show fails a booking in flight, and a booking fails the
            // rescheduling.
            ("BookByCustomer", "ScheduleShow", "Show"),
            ("ScheduleShow", "BookByCustomer", "Show"),
        ]
    );
    // One warning per pair and state, whichever way its conflicts go.
    let texts: Vec<String> = catalog
        .analyze()
        .warnings
        .iter()
        .filter(|w| w.kind() == "different lanes")
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        texts,
        vec![
            "two `BookByCustomer` commands (serial lanes by `customer`) can invalidate each other in `Show` by `show` (`BookByCustomer` emits `SeatBooked`), but do not share a lane for it: a commit of one fails the other's append, which retries; partition both by `show` to decide them one after another, or accept the retries",
            "`BookByCustomer` (serial lanes by `customer`) and `ScheduleShow` (serial lanes by `show`) can invalidate each other in `Show` by `show` (`BookByCustomer` emits `SeatBooked`; `ScheduleShow` emits `ShowScheduled`), but do not share a lane for it: a commit of one fails the other's append, which retries; partition both by `show` to decide them one after another, or accept the retries",
        ]
    );
}

#[test]
fn decisions_partitioned_by_the_tag_they_meet_on_share_a_lane_and_are_not_warned_about() {
    let catalog = Catalog::new()
        .decision::<ScheduleShow>()
        .decision::<BookByShow>();
    let analysis = catalog.analyze();
    assert!(analysis.warnings.is_empty(), "{:?}", analysis.warnings);
    // They do conflict, in every direction, each ordered by one lane per show.
    let pairs: Vec<(&str, &str, Option<&str>)> = analysis
        .conflicts
        .iter()
        .map(|c| (c.writer, c.reader, c.serialized_by))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("BookByShow", "BookByShow", Some("show")),
            ("BookByShow", "ScheduleShow", Some("show")),
            ("ScheduleShow", "BookByShow", Some("show")),
            ("ScheduleShow", "ScheduleShow", Some("show")),
        ]
    );
}

#[test]
fn optimistic_decisions_conflict_without_a_lane_warning() {
    let catalog = Catalog::new().decision::<BookOptimistic>();
    let analysis = catalog.analyze();
    assert_eq!(
        analysis.conflicts,
        vec![Conflict {
            writer: "BookOptimistic",
            reader: "BookOptimistic",
            state: "Show",
            keys: &["show"],
            types: vec!["SeatBooked"],
            serialized_by: None,
        }]
    );
    assert!(analysis.warnings.is_empty(), "{:?}", analysis.warnings);
    // Mixed with a lane decision that meets it, the pair is warned about.
    let mixed = Catalog::new()
        .decision::<BookOptimistic>()
        .decision::<BookByShow>();
    assert_eq!(
        different_lanes(&mixed),
        vec![
            ("BookByShow", "BookOptimistic", "Show"),
            ("BookOptimistic", "BookByShow", "Show"),
        ]
    );
}

#[test]
fn an_event_without_the_states_id_tag_cannot_conflict_with_it() {
    // `Register` emits `CustomerRegistered`, which has no `show` tag: it never matches a
    // show's query, so it cannot invalidate a show decision, whatever the lanes. The
    // other way round it can: a booking is a `SeatBooked` with a `customer` tag, which
    // the registration's `Customer` state folds.
    let catalog = Catalog::new()
        .decision::<Register>()
        .decision::<BookByShow>();
    let pairs: Vec<(&str, &str, &str)> = catalog
        .analyze()
        .conflicts
        .iter()
        .map(|c| (c.writer, c.reader, c.state))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("BookByShow", "BookByShow", "Show"),
            ("BookByShow", "Register", "Customer"),
            ("Register", "Register", "Customer"),
        ]
    );
    assert_eq!(
        different_lanes(&catalog),
        vec![("BookByShow", "Register", "Customer")]
    );
    let warning = catalog.analyze().warnings.remove(0).to_string();
    assert!(
        warning.starts_with("`BookByShow` (serial lanes by `show`) can invalidate `Register` (serial lanes by `customer`) in `Customer` by `customer` (`BookByShow` emits `SeatBooked`)"),
        "{warning}"
    );
}

#[test]
fn an_exclusion_that_lets_concurrent_commits_through_is_an_overbooking_warning() {
    let catalog = Catalog::new()
        .decision::<BookTolerant>()
        .decision::<BookOptimistic>();
    let overbooking: Vec<Warning> = catalog
        .analyze()
        .warnings
        .into_iter()
        .filter(|w| w.kind() == "overbooking")
        .collect();
    assert_eq!(
        overbooking,
        vec![Warning::Overbooking {
            decision: "BookTolerant",
            state: "Show",
            keys: &["show"],
            excluded: vec!["SeatBooked"],
            emitted_by: vec!["BookOptimistic", "BookTolerant"],
            in_lanes: false,
        }]
    );
    assert_eq!(
        overbooking[0].to_string(),
        "`BookTolerant` excludes `SeatBooked` from `Show`: concurrent `BookOptimistic` and `BookTolerant` commits on one `Show` by `show` pass its check together, so `Show` can be overbooked by up to one per decision in flight"
    );
    // The exclusion is only from `Show`: the customer's part still validates bookings.
    let tolerant = catalog.decision_info("BookTolerant").unwrap();
    assert_eq!(
        tolerant.validated_types(),
        vec!["CustomerRegistered", "SeatBooked", "ShowScheduled"]
    );
}

#[test]
fn an_exclusion_of_a_type_no_decision_emits_is_not_an_overbooking_warning() {
    // `BookIgnoringRegistrations` excludes `CustomerRegistered`, which no decision of
    // this catalog emits: nothing can be overbooked through it.
    let catalog = Catalog::new().decision::<BookIgnoringRegistrations>();
    assert!(
        !kinds(&catalog).contains(&"overbooking"),
        "{:?}",
        kinds(&catalog)
    );
    // With `Register` in the model, it is.
    let catalog = catalog.decision::<Register>();
    let warning = catalog
        .analyze()
        .warnings
        .into_iter()
        .find(|w| w.kind() == "overbooking")
        .expect("an overbooking warning");
    let text = warning.to_string();
    assert!(
        text.starts_with(
            "`BookIgnoringRegistrations` excludes `CustomerRegistered` from `Customer`"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("serial lanes, its default, ignore exclusions)"),
        "{text}"
    );
    // In its lane the exclusion does not apply, so registrations do fail its appends.
    assert!(
        different_lanes(&catalog).contains(&("Register", "BookIgnoringRegistrations", "Customer")),
        "{:?}",
        different_lanes(&catalog)
    );
}

#[test]
fn an_optimistic_exclusion_removes_the_conflict_it_tolerates() {
    let catalog = Catalog::new()
        .decision::<BookTolerant>()
        .decision::<BookOptimistic>();
    let on_show: Vec<(&str, &str)> = catalog
        .analyze()
        .conflicts
        .iter()
        .filter(|c| c.state == "Show")
        .map(|c| (c.writer, c.reader))
        .collect();
    // Bookings fail the strict decision's appends, never the tolerant one's.
    assert_eq!(
        on_show,
        vec![
            ("BookOptimistic", "BookOptimistic"),
            ("BookTolerant", "BookOptimistic")
        ]
    );
}

#[test]
fn a_partition_key_that_is_no_validated_tag_is_warned_about() {
    let catalog = Catalog::new().decision::<BookByCustomer>();
    let warnings: Vec<Warning> = catalog
        .analyze()
        .warnings
        .into_iter()
        .filter(|w| w.kind() == "partition not validated")
        .collect();
    assert_eq!(
        warnings,
        vec![Warning::PartitionNotValidated {
            decision: "BookByCustomer",
            partition: "customer",
            validated_keys: vec!["show"],
        }]
    );
    assert_eq!(
        warnings[0].to_string(),
        "`BookByCustomer` is partitioned by `customer`, which is not a tag it validates on (`show`): two commands on one state can land in different lanes and conflict; partition by `show`"
    );
    // Partitioned by a tag of any state it validates: quiet.
    let quiet = Catalog::new()
        .decision::<BookByShow>()
        .decision::<Register>()
        .decision::<BookIgnoringRegistrations>();
    assert!(
        !kinds(&quiet).contains(&"partition not validated"),
        "{:?}",
        kinds(&quiet)
    );
}

/// Seats sold over every show: one state for the whole store (no `#[id]`).
#[derive(State, Debug, Default)]
#[state(constructor = false)]
pub struct SeatsSold {
    pub sold: u32,
}

#[factum::fold]
impl SeatsSold {
    fn booked(&mut self, _: &SeatBooked) {
        self.sold += 1;
    }
}

decision!(BookCountingAll reads SeatsSold = |_d| SeatsSold::default(); emits SeatBooked);
decision!(ScheduleCountingAll reads SeatsSold = |_d| SeatsSold::default(); emits ShowScheduled);
decision!(#[decision(partition = show)] BookCountingAllByShow reads SeatsSold = |_d| SeatsSold::default(); emits SeatBooked);

#[test]
fn an_optimistic_decision_writing_a_state_without_ids_is_a_hot_global_state() {
    let catalog = Catalog::new().decision::<BookCountingAll>();
    let warnings = catalog.analyze().warnings;
    assert_eq!(
        warnings,
        vec![Warning::HotGlobalState {
            decision: "BookCountingAll",
            state: "SeatsSold",
            types: vec!["SeatBooked"],
            retries: factum::RetryPolicy::DEFAULT.max_retries,
        }]
    );
    let text = warnings[0].to_string();
    assert!(text.contains("its 32 retries cover 33 at once"), "{text}");
    assert!(
        text.starts_with("`BookCountingAll` (optimistic) validates `SeatsSold` as a whole and emits `SeatBooked` into it: any two `BookCountingAll` commands conflict"),
        "{text}"
    );
    assert!(text.contains("partition `BookCountingAll` by it"), "{text}");
    assert!(
        catalog
            .describe()
            .contains("1. hot global state: `BookCountingAll` (optimistic)"),
        "{}",
        catalog.describe()
    );
    // Reading the global state without writing into it: quiet.
    assert!(kinds(&Catalog::new().decision::<ScheduleCountingAll>()).is_empty());
    // Partitioned: the lane warning covers it, not this one.
    assert!(
        !kinds(&Catalog::new().decision::<BookCountingAllByShow>()).contains(&"hot global state")
    );
}

#[test]
fn describe_lists_public_events_strategies_and_warnings() {
    let catalog = Catalog::new()
        .decision::<ScheduleShow>()
        .decision::<BookByCustomer>()
        .decision::<BookTolerant>();
    let text = catalog.describe();
    for expected in [
        "| `SeatBooked`    | 1       | show, customer | -      | yes    |",
        "| `ShowScheduled` | 1       | show           | -      | no     |",
        "`Show` by show: ShowScheduled (excludes SeatBooked); `Customer` by customer: CustomerRegistered, SeatBooked",
        "| customer  | -           | 32 (1 ms..100 ms) | serial lanes |",
        "1. different lanes: two `BookByCustomer` commands (serial lanes by `customer`)",
        "overbooking: `BookTolerant` excludes `SeatBooked` from `Show`",
        "partition not validated: `BookByCustomer` is partitioned by `customer`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_graph_colours_the_edges_of_warned_conflicts_and_marks_public_events() {
    let catalog = Catalog::new()
        .decision::<ScheduleShow>()
        .decision::<BookByCustomer>();
    let graph = catalog.mermaid();
    let lines: Vec<&str> = graph.lines().collect();
    assert_eq!(lines[0], "flowchart LR");
    // Decisions d0 = BookByCustomer, d1 = ScheduleShow; events e0 = SeatBooked,
    // e1 = ShowScheduled (both sorted by name).
    assert!(lines.contains(&"  d0[\"BookByCustomer<br/><i>serial lanes by customer</i>\"]"));
    assert!(lines.contains(&"  e0([\"SeatBooked\"])"));
    let edges: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("-->") || l.contains("-.->"))
        .collect();
    assert_eq!(
        edges,
        vec![
            "  d0 --> e0",
            "  d0 -.-> e0",
            "  d0 -.-> e1",
            "  d1 --> e1",
            "  d1 -.-> e0",
            "  d1 -.-> e1",
        ]
    );
    // ScheduleShow's check of its own `ShowScheduled` is ordered by its lane (green);
    // every other edge is in a warned conflict (red), its emits edge too, as it also
    // fails bookings.
    assert!(
        lines.contains(&"  linkStyle 5 stroke:#188038,stroke-width:2px"),
        "{graph}"
    );
    assert!(
        lines.contains(&"  linkStyle 0,1,2,3,4 stroke:#d93025,stroke-width:3px"),
        "{graph}"
    );
    assert!(lines.contains(&"  class e0 public"), "{graph}");
    assert!(lines.contains(&"  class d0,d1 warned"), "{graph}");
}

#[test]
fn the_describe_command_parses_its_flags_and_fails_on_warnings_when_asked() {
    use cli::{Command, Format};
    assert_eq!(Command::parse(["serve"]).unwrap(), None);
    assert_eq!(Command::parse(Vec::<String>::new()).unwrap(), None);
    assert_eq!(
        Command::parse(["describe", "--mermaid", "--deny-warnings"]).unwrap(),
        Some(Command {
            format: Format::Mermaid,
            deny_warnings: true
        })
    );
    let unknown = Command::parse(["describe", "--json"])
        .unwrap_err()
        .to_string();
    assert!(
        unknown.starts_with("describe: unknown argument `--json`\n\nusage: describe"),
        "{unknown}"
    );
    let twice = Command::parse(["describe", "--doc", "--mermaid"])
        .unwrap_err()
        .to_string();
    assert!(
        twice.contains("`--doc` and `--mermaid` both choose what to print"),
        "{twice}"
    );

    let warned = Catalog::new().decision::<BookByCustomer>();
    let quiet = Catalog::new().decision::<BookByShow>();
    let strict = Command::parse(["describe", "--warnings", "--deny-warnings"])
        .unwrap()
        .unwrap();
    let (text, code) = strict.render(&warned, "theatre");
    assert_eq!(code, std::process::ExitCode::FAILURE);
    assert!(text.starts_with("warning: different lanes: "), "{text}");
    let (text, code) = strict.render(&quiet, "theatre");
    assert_eq!((text.as_str(), code), ("", std::process::ExitCode::SUCCESS));
    let doc = Command::parse(["describe", "--doc"]).unwrap().unwrap();
    let (text, _) = doc.render(&quiet, "theatre");
    assert!(
        text.starts_with("# theatre\n\n```mermaid\nflowchart LR\n"),
        "{text}"
    );
    assert!(text.contains("## Warnings\n\nNone.\n"), "{text}");
}

/// Partitioned by a field named otherwise than the tag it holds.
#[derive(Decision)]
#[decision(partition = at, partition_tag = "show")]
pub struct BookAt {
    pub at: String,
}

impl Decide for BookAt {
    type State = Show;
    type Event = SeatBooked;
    type Error = String;
    fn state(&self) -> Show {
        Show::new(self.at.clone())
    }
    fn decide(&self, _: &Show) -> Result<Vec<SeatBooked>, String> {
        Ok(Vec::new())
    }
}

/// Books one seat in each of several shows: its key can cover only one of them.
#[derive(Decision)]
#[decision(partition = show)]
pub struct BookSeveral {
    pub show: String,
    pub more: Vec<String>,
}

impl Decide for BookSeveral {
    type State = Vec<Show>;
    type Event = SeatBooked;
    type Error = String;
    fn state(&self) -> Vec<Show> {
        std::iter::once(&self.show)
            .chain(&self.more)
            .map(|s| Show::new(s.clone()))
            .collect()
    }
    fn decide(&self, _: &Vec<Show>) -> Result<Vec<SeatBooked>, String> {
        Ok(Vec::new())
    }
}

#[test]
fn partition_tag_names_the_tag_a_differently_named_partition_field_holds() {
    let catalog = Catalog::new().decision::<BookAt>().decision::<BookByShow>();
    let analysis = catalog.analyze();
    assert!(analysis.warnings.is_empty(), "{:?}", analysis.warnings);
    assert!(
        analysis
            .conflicts
            .iter()
            .all(|c| c.serialized_by == Some("show")),
        "{:?}",
        analysis.conflicts
    );
    assert!(catalog.describe().contains("| at (tag show) |"));
}

#[test]
fn a_decision_reading_several_states_of_a_kind_is_not_ordered_by_its_key() {
    let catalog = Catalog::new()
        .decision::<BookSeveral>()
        .decision::<BookByShow>();
    assert_eq!(
        catalog.decision_info("BookSeveral").unwrap().several,
        vec!["Show"]
    );
    assert_eq!(
        different_lanes(&catalog),
        vec![
            ("BookByShow", "BookSeveral", "Show"),
            ("BookSeveral", "BookByShow", "Show"),
            ("BookSeveral", "BookSeveral", "Show"),
        ]
    );
    let text = catalog.analyze().warnings[0].to_string();
    assert!(
        text.ends_with("`BookSeveral` reads several `Show` states, which one partition key cannot cover: accept the retries, or split the work into one decision per state"),
        "{text}"
    );
}
