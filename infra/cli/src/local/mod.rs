//! `herald local up` and `herald invoke`: the whole stack, or one function, on the local emulator.

pub mod emulator;
mod error;
mod front;
pub mod invoke;
mod poller;
pub mod runtime;
mod schedule;
pub mod seed;
mod sink;
pub mod template;
pub mod up;

pub use error::LocalError;
