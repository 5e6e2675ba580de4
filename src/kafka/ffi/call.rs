//! One admin request: its options, a private result queue, and waiting for the result
//! event; the owning guard every native object is held in.

use std::ffi::{c_char, c_int};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use crate::kafka::error::{Code, KafkaError};

use super::raw;
use super::text::cstr_to_string;

/// librdkafka rejects admin request timeouts above one hour.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Extra time we wait on the result queue beyond the request timeout, so that
/// librdkafka's own timeout error (with its context) normally wins the race.
const POLL_GRACE: Duration = Duration::from_secs(2);

/// Owning guard for a librdkafka object with a C destructor.
pub(super) struct Owned<T> {
    pub(super) ptr: *mut T,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    pub(super) fn new(ptr: *mut T, free: unsafe extern "C" fn(*mut T), what: &str) -> Result<Self> {
        if ptr.is_null() {
            bail!("librdkafka failed to allocate {what}");
        }
        Ok(Owned { ptr, free })
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is non-null, exclusively owned by this guard and was
        // created by the librdkafka constructor matching `free`.
        unsafe { (self.free)(self.ptr) }
    }
}

/// Creates the options and a private result queue, submits the request via
/// `submit`, and waits for the result event of type `expected_event`. Returns
/// the event only if it carries no request-level error.
pub(super) fn run_admin<C: ClientContext>(
    client: &Client<C>,
    what: &str,
    op: rd::rd_kafka_admin_op_t,
    expected_event: c_int,
    timeout: Duration,
    configure: impl FnOnce(*mut rd::rd_kafka_AdminOptions_t) -> Result<()>,
    submit: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
) -> Result<Owned<rd::rd_kafka_event_t>> {
    let rk = client.native_ptr();
    if rk.is_null() {
        bail!("{what}: client has no native handle");
    }
    let timeout = timeout.clamp(Duration::from_millis(1), MAX_REQUEST_TIMEOUT);

    // SAFETY: `rk` is the live handle owned by `client`, which outlives this call.
    let options = Owned::new(
        unsafe { rd::rd_kafka_AdminOptions_new(rk, op) },
        rd::rd_kafka_AdminOptions_destroy,
        "admin options",
    )
    .with_context(|| what.to_owned())?;
    set_request_timeout(options.ptr, timeout).with_context(|| what.to_owned())?;
    configure(options.ptr).with_context(|| what.to_owned())?;

    // SAFETY: `rk` is live; the queue is destroyed by the guard.
    let queue = Owned::new(
        unsafe { rd::rd_kafka_queue_new(rk) },
        rd::rd_kafka_queue_destroy,
        "result queue",
    )
    .with_context(|| what.to_owned())?;

    submit(rk, options.ptr, queue.ptr);

    let wait = timeout + POLL_GRACE;
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(KafkaError::new(
                Code::TIMED_OUT,
                what,
                &format!("no result within {wait:?}"),
            )
            .into());
        }
        // SAFETY: `queue` is live.
        let event = unsafe { rd::rd_kafka_queue_poll(queue.ptr, duration_ms(remaining)) };
        if event.is_null() {
            continue;
        }
        let event = Owned::new(event, rd::rd_kafka_event_destroy, "event")?;
        // SAFETY: `event` is a live event.
        let kind = unsafe { rd::rd_kafka_event_type(event.ptr) };
        if kind != expected_event {
            // Nothing else is routed to this private queue; ignore defensively.
            continue;
        }
        // SAFETY: `event` is a live event.
        let code = unsafe { raw::event_error(event.ptr) };
        if code != 0 {
            // SAFETY: `event` is live; the string is owned by it (or static)
            // and copied before the event is dropped.
            let message = unsafe { cstr_to_string(rd::rd_kafka_event_error_string(event.ptr)) };
            return Err(KafkaError::new(Code(code), what, &message).into());
        }
        return Ok(event);
    }
}

fn set_request_timeout(options: *mut rd::rd_kafka_AdminOptions_t, timeout: Duration) -> Result<()> {
    let mut errstr = [0 as c_char; 512];
    // SAFETY: `options` is live; `errstr` is a writable buffer of the given size.
    let err = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            duration_ms(timeout),
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka NUL-terminates `errstr` on error; the buffer was
        // zero-initialised so it is terminated in any case.
        let message = unsafe { cstr_to_string(errstr.as_ptr()) };
        bail!("setting request timeout {timeout:?}: {message}");
    }
    Ok(())
}

/// # Safety
/// `ptr` must be null or point to `count` initialised elements that outlive `'a`.
pub(super) unsafe fn raw_slice<'a, T>(ptr: *const T, count: usize) -> &'a [T] {
    if ptr.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr, count) }
    }
}

pub(super) fn duration_ms(d: Duration) -> c_int {
    c_int::try_from(d.as_millis()).unwrap_or(c_int::MAX)
}
