//! Property tests: the frame decoder and argument validation never panic, whatever arrives,
//! and always answer with an error that names a code.

use exaid::protocol::{DecodeLimits, decode_with};
use exaid::tools::schema::{longest_string_over, validate};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("op"),
            Just("request_id"),
            Just("call_tool"),
            Just("hello"),
            Just("name"),
            Just("arguments"),
            Just("seq"),
            Just("cancel"),
            Just("ack"),
            Just("chat"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("op".to_string()),
                        Just("request_id".to_string()),
                        Just("name".to_string()),
                        Just("arguments".to_string()),
                        Just("seq".to_string()),
                        ".{0,8}".prop_map(String::from)
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Frames shaped like real ones, with arbitrary fields.
fn frame_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("hello"), Just("call_tool"), Just("cancel"), Just("ack"), Just("ping"), Just("list_tools"), Just("health"), Just("nope")],
        json_value(),
        json_value(),
        json_value(),
    )
        .prop_map(|(op, request_id, name, arguments)| {
            json!({"op": op, "request_id": request_id, "name": name, "arguments": arguments, "seq": request_id, "token": name})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(err) = decode_with(&text, &DecodeLimits::default()) {
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let _ = decode_with(&value.to_string(), &DecodeLimits::default());
    }

    #[test]
    fn frame_shaped_json_decodes_or_names_its_problem(frame in frame_like()) {
        match decode_with(&frame.to_string(), &DecodeLimits::default()) {
            Ok(_) => {}
            Err(err) => {
                prop_assert!(!err.message.is_empty());
                // A readable string request id is always carried into the error.
                if let Some(id) = frame["request_id"].as_str()
                    && !id.is_empty()
                    && id.len() <= 256
                {
                    prop_assert_eq!(err.request_id.as_deref(), Some(id));
                }
            }
        }
    }

    #[test]
    fn argument_validation_never_panics(arguments in json_value()) {
        for tool in exaid::tools::ToolRegistry::builtin_tools() {
            let _ = validate(tool.input_schema(), &arguments);
        }
        let _ = longest_string_over(&arguments, 5);
    }

    #[test]
    fn tiny_limits_never_panic(value in frame_like(), depth in 1usize..5, id_bytes in 1usize..8) {
        let limits = DecodeLimits { json_depth_max: depth, request_id_bytes_max: id_bytes };
        let _ = decode_with(&value.to_string(), &limits);
    }
}
