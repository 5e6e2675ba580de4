//! C strings and librdkafka error objects as Rust strings and [`KafkaError`]s.

use std::ffi::{CStr, CString, c_char, c_int};

use anyhow::{Context, Result};
use rdkafka::bindings as rd;

use crate::kafka::error::{Code, KafkaError};

use super::raw;

/// Takes ownership of a possibly-NULL `rd_kafka_error_t`, returning its text.
pub(crate) fn take_error(error: *mut rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: non-null error returned to us by librdkafka; we own it and
    // destroy it after copying its text.
    unsafe {
        let text = error_to_string(error);
        rd::rd_kafka_error_destroy(error);
        text
    }
}

/// A borrowed, possibly-NULL `rd_kafka_error_t` as a [`KafkaError`] of `step`.
///
/// # Safety
/// `error` must be null or a valid error object.
pub(super) unsafe fn error_of(
    error: *const rd::rd_kafka_error_t,
    step: &str,
) -> Option<KafkaError> {
    if error.is_null() {
        return None;
    }
    // SAFETY: `error` is non-null and valid per the caller; the code is read as its C
    // representation, the text copied.
    unsafe {
        let code = Code(raw::error_code(error));
        let message = cstr_to_string(rd::rd_kafka_error_string(error));
        Some(KafkaError::new(code, step, &message))
    }
}

/// Formats a borrowed, possibly-NULL `rd_kafka_error_t` as `NAME: message`.
///
/// # Safety
/// `error` must be null or a valid error object.
unsafe fn error_to_string(error: *const rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: `error` is non-null and valid per the caller.
    unsafe {
        let name = cstr_to_string(rd::rd_kafka_error_name(error));
        let message = cstr_to_string(rd::rd_kafka_error_string(error));
        Some(format!("{name}: {message}"))
    }
}

/// `NAME (description)` for an error code, e.g.
/// `UNKNOWN_MEMBER_ID (Broker: Unknown member)`.
pub(crate) fn describe_err(code: c_int) -> String {
    // SAFETY: err2str accepts any int and returns a static string.
    let description = unsafe { cstr_to_string(raw::err2str(code)) };
    format!("{} ({description})", err_name(code))
}

/// librdkafka's name of a code: `NOT_COORDINATOR`, `_TRANSPORT`.
pub(crate) fn err_name(code: c_int) -> String {
    // SAFETY: err2name accepts any int and returns a static or thread-local
    // string, copied immediately.
    unsafe { cstr_to_string(raw::err2name(code)) }
}

/// # Safety
/// `p` must be null or a valid NUL-terminated string.
pub(crate) unsafe fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated per the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub(crate) fn to_cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{what} {s:?} contains a NUL byte"))
}
