//! `herald local up` and `herald invoke`: the whole stack, or one function, on the local emulator;
//! `herald local feedback`: what SES would say about an email the local stack sent.

pub mod emulator;
mod error;
pub mod feedback;
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
