//! `run --plan FILE`: any bytes give a plan that passes its own checks, or a usage error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match kmigrate::plan::parse_plan(data, "fuzz-plan.json") {
        Ok(plan) => {
            assert!(plan.check().is_ok());
            let _ = kmigrate::ledger::plan_id(&plan);
        }
        Err(e) => assert_eq!(
            kmigrate::error::exit_kind(&e),
            kmigrate::error::ExitKind::Usage,
            "{e:#}"
        ),
    }
});
