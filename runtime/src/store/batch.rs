//! What a request of a batch owes the requests it builds on, the same in every store.

use super::api::Appended;
use super::error::AppendError;
use crate::model::Position;

/// The positions the request at `index` of a batch is exempt from in its condition
/// check, ascending: those written by the earlier requests it builds on
/// ([`AppendRequest::builds_on`](super::AppendRequest::builds_on)), whose events its
/// decision saw.
///
/// `results` holds the results of the requests before it, in order. The first of
/// `builds_on`, in its order, that failed or is not below `index` fails the request with
/// [`AppendError::Dependency`] naming it; the request then writes nothing.
pub fn exempt_positions(
    index: usize,
    builds_on: &[usize],
    results: &[Result<Appended, AppendError>],
) -> Result<Vec<Position>, AppendError> {
    let mut exempt = Vec::new();
    for &earlier in builds_on {
        match results.get(earlier) {
            Some(Ok(appended)) if earlier < index => exempt.extend_from_slice(&appended.positions),
            _ => return Err(AppendError::Dependency { index: earlier }),
        }
    }
    exempt.sort_unstable();
    Ok(exempt)
}
