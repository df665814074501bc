//! Fault injection and history checkers for warden.
//!
//! The checkers are pure: they take recorded histories and return what they found, so
//! they are tested on hand-made good and bad histories before they judge a real run.

pub mod checks;
pub mod linearizable;
pub mod members;
pub mod nemesis;
pub mod proxy;
pub mod rng;
pub mod suite;
