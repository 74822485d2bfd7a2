//! Any JSON as tool arguments: validation against every built-in tool's schema never panics.
#![no_main]

use exaid::tools::ToolRegistry;
use exaid::tools::schema::{longest_string_over, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for tool in ToolRegistry::builtin_tools() {
        let _ = validate(tool.input_schema(), &value);
    }
    let _ = longest_string_over(&value, 16);
});
