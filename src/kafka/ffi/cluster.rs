//! Calls about the client and the cluster as a whole: a cheap metadata request, and the
//! client's queued events.

use std::ptr;
use std::time::Duration;

use anyhow::{Result, bail};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use crate::kafka::error::{Code, KafkaError};

use super::call::duration_ms;

/// A Metadata request for no topic (brokers and controller only): the cheapest request
/// that shows a connection is up and, with SASL or TLS, authenticated. Fails when no
/// broker answered within `timeout`.
pub fn broker_metadata<C: ClientContext>(client: &Client<C>, timeout: Duration) -> Result<()> {
    let rk = client.native_ptr();
    if rk.is_null() {
        bail!("reading cluster metadata: client has no native handle");
    }
    let mut md: *const rd::rd_kafka_metadata_t = ptr::null();
    // SAFETY: `rk` is the live handle owned by `client`; with all_topics = 0 and no
    // topic handle librdkafka asks for the topics it knows locally, none for our
    // admin clients, i.e. brokers only. `md` is set only on success and freed below.
    let err = unsafe {
        rd::rd_kafka_metadata(
            rk,
            0,
            ptr::null_mut(),
            &mut md,
            duration_ms(timeout.max(Duration::from_millis(1))),
        )
    };
    if !md.is_null() {
        // SAFETY: `md` was returned by rd_kafka_metadata and is freed exactly once.
        unsafe { rd::rd_kafka_metadata_destroy(md) };
    }
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(KafkaError::new(Code(err as i32), "reading cluster metadata", "").into());
    }
    Ok(())
}

/// How many events wait on the client's main queue (log lines, errors).
pub fn queued_events<C: ClientContext>(client: &Client<C>) -> usize {
    let rk = client.native_ptr();
    if rk.is_null() {
        return 0;
    }
    // SAFETY: `rk` is the live handle owned by `client`; the queue handle is a new
    // reference to its main queue, released right after reading its length.
    unsafe {
        let queue = rd::rd_kafka_queue_get_main(rk);
        if queue.is_null() {
            return 0;
        }
        let len = rd::rd_kafka_queue_length(queue);
        rd::rd_kafka_queue_destroy(queue);
        len
    }
}
