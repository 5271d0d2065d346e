//! Hello world on `lambda_runtime`: what a Rust Lambda costs before it does anything. `herald bench functions`
//! states each function's init, first invocation and memory as a ratio to this binary's.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({ "message": "hello" }))
    }))
    .await
}
