//! Same C symbols as in `rdkafka::bindings`, but with the `rd_kafka_resp_err_t`
//! parameters/results declared as `c_int` (the C ABI of the enum), so unknown
//! broker error codes never become invalid Rust enum values.

use std::ffi::{c_char, c_int};

use rdkafka::bindings as rd;

unsafe extern "C" {
    #[link_name = "rd_kafka_event_error"]
    pub fn event_error(rkev: *mut rd::rd_kafka_event_t) -> c_int;
    #[link_name = "rd_kafka_error_code"]
    pub fn error_code(error: *const rd::rd_kafka_error_t) -> c_int;
    #[link_name = "rd_kafka_err2name"]
    pub fn err2name(err: c_int) -> *const c_char;
    #[link_name = "rd_kafka_err2str"]
    pub fn err2str(err: c_int) -> *const c_char;
}
