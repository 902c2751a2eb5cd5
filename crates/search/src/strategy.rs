//! The interface every search strategy implements.

use crate::candidate::Candidate;
use superopt_ir::Plan;

pub trait Strategy {
    fn name(&self) -> &'static str;
    /// Candidates derived from `traced`; none where the strategy has nothing to offer.
    fn propose(&self, traced: &Plan) -> Vec<Candidate>;
}
