//! The `herald` command's library: the local stack (the template evaluated and provisioned on the emulator,
//! the functions under a local Lambda Runtime API), the load benchmark, the dead-letter queues, tenants' API keys and the tenant commands. The integration tests use
//! [`local::template`] to create their tables and queues exactly as `herald local up` does.

pub mod bench;
pub mod dlq;
pub mod keys;
pub mod local;
pub mod tenant;
