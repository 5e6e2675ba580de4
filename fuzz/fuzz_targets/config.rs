//! The configuration parser must turn any text into a config or a usage error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed environment, so `${VAR}` expansion is exercised deterministically.
    let env = |name: &str| (name == "KAFKA_PASSWORD").then(|| "s3cret".to_string());
    if let Err(e) = kmigrate::config::parse(text, "fuzz.toml", &env) {
        assert_eq!(
            kmigrate::error::exit_kind(&e),
            kmigrate::error::ExitKind::Usage,
            "{e:#}"
        );
    }
});
