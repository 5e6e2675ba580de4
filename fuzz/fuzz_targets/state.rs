//! The state file: any bytes give a state the resume arithmetic can use without panicking,
//! or a usage error (never a silent fresh start).
#![no_main]

use kmigrate::copy::resume::resume;
use kmigrate::ledger::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match State::parse(data, "fuzz-state.json") {
        Ok(state) => {
            for p in &state.partitions {
                let acked = p.progress.acked.map_or(0, |(_, t)| t + 1);
                for high in [0, acked, acked.saturating_add(1), p.end, i64::MAX] {
                    let _ = resume(p.start, p.end, &p.progress, high);
                }
            }
        }
        Err(e) => assert_eq!(
            kmigrate::error::exit_kind(&e),
            kmigrate::error::ExitKind::Usage,
            "{e:#}"
        ),
    }
});
