//! The configuration's behaviour end to end: layers, precedence, rules, messages, secrets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use super::error::ConfigError;
use super::keys::{Config, KEYS};
use super::layers::Layers;
use super::profile::Profile;
use super::providers::ProviderId;
use super::secret::Secret;
use super::source::Source;
use super::value::{parse_decimal_secs_ms, parse_value};

const TOKEN: &str = "s3cr3t-T0ken-value-XYZZY";

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create temp file"); // dst-ok: a test fixture
    f.write_all(body.as_bytes()).expect("write temp file");
    path
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flags(items: &[(&str, &str)]) -> Layers {
    Layers {
        flags: pairs(items),
        ..Layers::default()
    }
}

fn load_err(layers: &Layers) -> ConfigError {
    match Config::load(layers) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn table_defaults_are_valid_and_unique() {
    for (i, d) in KEYS.iter().enumerate() {
        assert!(
            parse_value(d.kind, d.default).is_ok(),
            "default of {}",
            d.name
        );
        assert!(!d.doc.is_empty(), "doc of {}", d.name);
        assert_eq!(d.name, d.name.to_ascii_uppercase());
        assert!(KEYS[..i].iter().all(|o| o.name != d.name), "dup {}", d.name);
    }
    assert_eq!(Config::defaults().entries().len(), KEYS.len());
}

#[test]
fn defaults_have_documented_values() {
    let c = Config::defaults();
    assert_eq!(c.server.host, "127.0.0.1");
    assert_eq!(c.server.port, 8079);
    assert!(c.server.token.is_none());
    assert!(c.server.token_file.is_none());
    assert_eq!(
        (
            c.limits.global_inflight_max,
            c.providers[ProviderId::Kimi].inflight_max,
            c.providers[ProviderId::Glm].inflight_max,
            c.providers[ProviderId::Offline].inflight_max,
            c.sessions.inflight_max
        ),
        (24, 6, 4, 24, 8)
    );
    assert_eq!(c.limits.queue_waiters_max, 256);
    assert_eq!(c.limits.queue_timeout_ms, 30_000);
    assert_eq!(c.tools.simple_timeout_ms, 60_000);
    assert_eq!(c.tools.workflow_timeout_ms, 180_000);
    assert_eq!(c.tools.progress_interval_ms, 8_000);
    assert_eq!(c.connections.hello_timeout_ms, 5_000);
    assert_eq!(c.limits.frame_bytes_max, 33_554_432);
    assert_eq!(c.providers[ProviderId::Offline].latency_ms, 0);
    assert_eq!(c.sessions.ttl_ms, 300_000);
    assert_eq!(c.sessions.outbox_frames_max, 4096);
    assert_eq!(c.sessions.outbox_bytes_max, 16_777_216);
    assert_eq!(c.sessions.result_ttl_ms, 300_000);
    assert_eq!(c.connections.connections_max, 1000);
    assert_eq!(c.sessions.sessions_max, 10_000);
    assert_eq!(
        (
            c.conversations.conversations_max,
            c.conversations.turns_max,
            c.conversations.bytes_max,
            c.conversations.ttl_ms,
            c.tools.consensus_models_max
        ),
        (256, 50, 1_048_576, 10_800_000, 5)
    );
    assert_eq!(c.tools.profile, Profile::Full);
    assert!(c.tools.enabled.is_empty() && c.tools.disabled.is_empty());
    assert_eq!(c.files.config_file, None);
    assert_eq!(c.files.env_file, PathBuf::from(".env"));
    assert!(c.entries().iter().all(|(_, _, s)| s == "default"));
}

#[test]
fn defaults_equal_empty_load() {
    let loaded = Config::load(&Layers::default()).expect("empty load");
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.config.entries(), Config::defaults().entries());
}

#[test]
fn precedence_across_all_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "exaid.toml", "EXAI_WS_PORT = 1001\n");
    let dotenv = write(&dir, ".env", "EXAI_WS_PORT=1002\n");
    let mut layers = Layers::default();
    let check = |layers: &Layers, port: u16, src: Source| {
        let c = Config::load(layers).expect("load").config;
        assert_eq!(c.server.port, port);
        assert_eq!(c.source_of("EXAI_WS_PORT"), Some(&src));
    };
    check(&layers, 8079, Source::Default);
    layers.file = Some(file.clone());
    check(&layers, 1001, Source::File(file.clone()));
    layers.dotenv = Some(dotenv.clone());
    check(&layers, 1002, Source::DotEnv(dotenv.clone()));
    layers.env = pairs(&[("EXAI_WS_PORT", "1003")]);
    check(&layers, 1003, Source::Env);
    layers.flags = pairs(&[("EXAI_WS_PORT", "1004")]);
    check(&layers, 1004, Source::Flag);
    // Other keys keep their defaults and say so.
    let c = Config::load(&layers).expect("load").config;
    assert_eq!(c.source_of("EXAI_WS_HOST"), Some(&Source::Default));
    assert_eq!(c.source_of("NOPE"), None);
}

#[test]
fn bad_value_in_each_layer_names_key_value_and_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "bad.toml", "EXAI_WS_PORT = \"abc\"\n");
    let dotenv = write(&dir, "bad.env", "EXAI_WS_PORT=abc\n");
    let cases = [
        (
            Layers {
                file: Some(file.clone()),
                ..Layers::default()
            },
            format!("file {}", file.display()),
        ),
        (
            Layers {
                dotenv: Some(dotenv.clone()),
                ..Layers::default()
            },
            format!("dotenv file {}", dotenv.display()),
        ),
        (
            Layers {
                env: pairs(&[("EXAI_WS_PORT", "abc")]),
                ..Layers::default()
            },
            "environment".to_string(),
        ),
        (flags(&[("EXAI_WS_PORT", "abc")]), "flag".to_string()),
    ];
    for (layers, src) in cases {
        let e = load_err(&layers);
        assert_eq!(e.key(), "EXAI_WS_PORT");
        assert_eq!(
            e.to_string(),
            format!(
                "invalid EXAI_WS_PORT = \"abc\" (from {src}): expected an integer from 0 to 65535"
            )
        );
    }
    // A bad lower layer is an error even when a higher layer overrides it.
    let e = load_err(&Layers {
        file: Some(file),
        flags: pairs(&[("EXAI_WS_PORT", "9000")]),
        ..Layers::default()
    });
    assert!(matches!(e.source(), Source::File(_)));
}

#[test]
fn integer_rules() {
    for bad in [
        "",
        " ",
        "-1",
        "+5",
        "1_000",
        "65536",
        "1e3",
        "0x10",
        "99999999999999999999999",
    ] {
        let e = load_err(&flags(&[("EXAI_WS_PORT", bad)]));
        assert!(e.to_string().contains("from 0 to 65535"), "{bad}: {e}");
    }
    let c = Config::load(&flags(&[
        ("EXAI_WS_PORT", " 0 "),
        ("EXAI_WS_QUEUE_MAX", "0"),
    ]))
    .expect("load")
    .config;
    assert_eq!((c.server.port, c.limits.queue_waiters_max), (0, 0));
    let e = load_err(&flags(&[("EXAI_WS_GLM_MAX_INFLIGHT", "0")]));
    assert!(
        e.to_string()
            .contains("expected an integer from 1 to 10000"),
        "{e}"
    );
    let e = load_err(&flags(&[("EXAI_WS_MAX_BYTES", "1023")]));
    assert!(
        e.to_string()
            .contains("expected an integer (bytes) from 1024 to 1073741824"),
        "{e}"
    );
}

#[test]
fn decimal_seconds() {
    let c = Config::load(&flags(&[
        ("EXAI_WS_QUEUE_TIMEOUT_SECS", "0.5"),
        ("SIMPLE_TOOL_TIMEOUT_SECS", "0.0005"),
        ("WORKFLOW_TOOL_TIMEOUT_SECS", "180"),
        ("EXAI_WS_PROGRESS_INTERVAL_SECS", "2.25"),
        ("EXAI_WS_HELLO_TIMEOUT", "1.0004"),
    ]))
    .expect("load")
    .config;
    assert_eq!(c.limits.queue_timeout_ms, 500);
    assert_eq!(c.tools.simple_timeout_ms, 1);
    assert_eq!(c.tools.workflow_timeout_ms, 180_000);
    assert_eq!(c.tools.progress_interval_ms, 2_250);
    assert_eq!(c.connections.hello_timeout_ms, 1_000);
    let shown: BTreeMap<_, _> = c.entries().into_iter().map(|(k, v, _)| (k, v)).collect();
    assert_eq!(shown["EXAI_WS_QUEUE_TIMEOUT_SECS"], "0.5");
    assert_eq!(shown["EXAI_WS_PROGRESS_INTERVAL_SECS"], "2.25");

    for bad in [
        "0", "0.0004", "-1", "NaN", "inf", "1e3", "", ".5", "5.", "1.2.3", "3600.001",
    ] {
        let e = load_err(&flags(&[("EXAI_WS_QUEUE_TIMEOUT_SECS", bad)]));
        assert!(
            e.to_string()
                .ends_with("expected seconds (decimal) from 0.001 to 3600"),
            "{bad}: {e}"
        );
    }
    // TOML floats go through the same parser.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "f.toml", "EXAI_WS_QUEUE_TIMEOUT_SECS = 0.25\n");
    let c = Config::load(&Layers {
        file: Some(file),
        ..Layers::default()
    })
    .expect("load")
    .config;
    assert_eq!(c.limits.queue_timeout_ms, 250);
}

#[test]
fn queue_timeout_relation() {
    let e = load_err(&Layers {
        env: pairs(&[("EXAI_WS_QUEUE_TIMEOUT_SECS", "200")]),
        ..Layers::default()
    });
    let msg = e.to_string();
    assert_eq!(e.key(), "EXAI_WS_QUEUE_TIMEOUT_SECS");
    assert!(msg.starts_with("inconsistent settings: "), "{msg}");
    assert!(
        msg.contains("EXAI_WS_QUEUE_TIMEOUT_SECS = \"200\" (from environment)"),
        "{msg}"
    );
    assert!(
        msg.contains("SIMPLE_TOOL_TIMEOUT_SECS = \"60\" (from default)"),
        "{msg}"
    );
    assert!(
        msg.contains("WORKFLOW_TOOL_TIMEOUT_SECS = \"180\" (from default)"),
        "{msg}"
    );
    // Fine once the longer tool timeout covers it; simple > workflow is allowed.
    let c = Config::load(&flags(&[
        ("EXAI_WS_QUEUE_TIMEOUT_SECS", "200"),
        ("SIMPLE_TOOL_TIMEOUT_SECS", "300"),
    ]))
    .expect("load")
    .config;
    assert_eq!(c.limits.queue_timeout_ms, 200_000);
}

#[test]
fn unknown_keys() {
    let loaded = Config::load(&Layers {
        env: pairs(&[("EXAI_FOO", "1"), ("PATH", "/bin"), ("HOME", "/root")]),
        ..Layers::default()
    })
    .expect("load");
    assert_eq!(
        loaded.warnings,
        vec!["unknown key EXAI_FOO in environment (ignored)".to_string()]
    );

    let e = load_err(&flags(&[("EXAI_WS_PROT", "9000")]));
    assert_eq!(e.key(), "EXAI_WS_PROT");
    assert!(
        e.to_string()
            .starts_with("unknown key EXAI_WS_PROT (from flag)"),
        "{e}"
    );
    assert!(!e.to_string().contains("9000"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "c.toml",
        "exai_ws_port = 9001\nmystery = 3\nEXAI_CONFIG = \"/x.toml\"\n",
    );
    let dotenv = write(&dir, "e.env", "EXAI_BAR=1\nOPENAI_API_KEY=zzz\n");
    let loaded = Config::load(&Layers {
        file: Some(file.clone()),
        dotenv: Some(dotenv.clone()),
        ..Layers::default()
    })
    .expect("load");
    assert_eq!(loaded.config.server.port, 9001);
    assert_eq!(loaded.config.files.config_file, None);
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains(&format!("unknown key mystery in file {}", file.display())),
        "{w}"
    );
    assert!(w.contains("EXAI_CONFIG in file"), "{w}");
    assert!(
        w.contains(&format!(
            "unknown key EXAI_BAR in .env {}",
            dotenv.display()
        )),
        "{w}"
    );
    assert!(!w.contains("OPENAI"), "{w}");
}

#[test]
fn duplicate_file_key_forms_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "d.toml", "EXAI_WS_PORT = 1\nexai_ws_port = 2\n");
    let e = load_err(&Layers {
        file: Some(file),
        ..Layers::default()
    });
    assert!(e.to_string().contains("given twice"), "{e}");
}

#[test]
fn locator_keys_are_shown() {
    let c = Config::load(&Layers {
        env: pairs(&[("EXAI_CONFIG", "/etc/exaid.toml")]),
        flags: pairs(&[("EXAI_ENV_FILE", "/tmp/x.env")]),
        ..Layers::default()
    })
    .expect("load")
    .config;
    assert_eq!(c.files.config_file, Some(PathBuf::from("/etc/exaid.toml")));
    assert_eq!(c.files.env_file, PathBuf::from("/tmp/x.env"));
    let d = Config::defaults().render();
    assert!(
        d.lines()
            .any(|l| l.starts_with("EXAI_CONFIG ") && l.contains("<none>"))
    );
    assert!(
        d.lines()
            .any(|l| l.starts_with("EXAI_ENV_FILE ") && l.contains(".env"))
    );
}

#[test]
fn secret_never_leaks() {
    let c = Config::load(&flags(&[("EXAI_WS_TOKEN", TOKEN)]))
        .expect("load")
        .config;
    assert_eq!(c.server.token.as_ref().map(Secret::expose), Some(TOKEN));
    let render = c.render();
    assert!(!render.contains(TOKEN));
    assert!(render.contains(&format!("<set, {} chars>", TOKEN.len())));
    assert!(!format!("{c:?}").contains(TOKEN));
    assert!(format!("{c:?}").contains("Secret(<redacted>)"));
    assert!(!format!("{:?}", flags(&[("EXAI_WS_TOKEN", TOKEN)])).contains(TOKEN));
    assert!(Config::defaults().render().contains("<unset>"));
    // Empty means unset.
    let c = Config::load(&flags(&[("EXAI_WS_TOKEN", "  ")]))
        .expect("load")
        .config;
    assert!(c.server.token.is_none());

    // A short token (an EXAI `.env` from the original) loads: `main` warns or refuses it by
    // where the daemon listens.
    let short = Config::load(&flags(&[("EXAI_WS_TOKEN", "short-token")])).expect("load");
    assert_eq!(short.config.server.token.unwrap().char_len(), 11);

    // Invalid tokens: error and its Debug are redacted.
    for bad in ["has whitespace inside the token", "tab\tinside"] {
        let e = load_err(&flags(&[("EXAI_WS_TOKEN", bad)]));
        let all = format!("{e} {e:?}");
        assert!(!all.contains(bad), "{all}");
        assert!(
            all.contains(&format!("<redacted, {} chars>", bad.len())),
            "{all}"
        );
    }

    // Syntax errors in files do not quote the line holding the secret.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "s.toml",
        &format!("EXAI_WS_TOKEN = \"{TOKEN}\nX = 1\n"),
    );
    let e = load_err(&Layers {
        file: Some(file),
        ..Layers::default()
    });
    assert!(!format!("{e} {e:?}").contains(TOKEN), "{e}");
    assert!(e.to_string().contains("line 1"), "{e}");
    let dotenv = write(&dir, "s.env", &format!("A=1\nEXAI_WS_TOKEN='{TOKEN}\n"));
    let e = load_err(&Layers {
        dotenv: Some(dotenv.clone()),
        ..Layers::default()
    });
    let all = format!("{e} {e:?}");
    assert!(!all.contains(TOKEN), "{all}");
    assert!(
        all.contains(&format!("dotenv file {}", dotenv.display())),
        "{all}"
    );
}

#[test]
fn dotenv_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dotenv = write(&dir, "bad.env", "EXAI_WS_PORT=9000\nEXAI_WS_HOST=\"oops\n");
    let e = load_err(&Layers {
        dotenv: Some(dotenv.clone()),
        ..Layers::default()
    });
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("dotenv file {}", dotenv.display())),
        "{msg}"
    );
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("EXAI_WS_HOST"), "{msg}");
}

#[test]
fn nested_toml_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (body, found) in [
        ("[EXAI_WS_PORT]\nx = 1\n", "a table"),
        ("[server]\nport = 1\n", "a table"),
        ("EXAI_WS_HOST = [\"a\"]\n", "an array"),
    ] {
        let file = write(&dir, "n.toml", body);
        let e = load_err(&Layers {
            file: Some(file.clone()),
            ..Layers::default()
        });
        let msg = e.to_string();
        assert!(msg.contains(&format!("file {}", file.display())), "{msg}");
        assert!(msg.contains(found), "{msg}");
        assert!(msg.starts_with("invalid "), "{msg}");
    }
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let missing_env = dir.path().join("nope.env");
    let loaded = Config::load(&Layers {
        file: Some(missing.clone()),
        dotenv: Some(missing_env.clone()),
        ..Layers::default()
    })
    .expect("optional files are skipped");
    assert!(loaded.warnings.is_empty());

    let e = load_err(&Layers {
        file: Some(missing.clone()),
        file_required: true,
        ..Layers::default()
    });
    assert_eq!(e.key(), "EXAI_CONFIG");
    assert!(
        e.to_string()
            .contains(&format!("file {}", missing.display())),
        "{e}"
    );

    let e = load_err(&Layers {
        dotenv: Some(missing_env.clone()),
        dotenv_required: true,
        ..Layers::default()
    });
    assert_eq!(e.key(), "EXAI_ENV_FILE");
    assert!(
        e.to_string()
            .contains(&format!("dotenv file {}", missing_env.display())),
        "{e}"
    );
}

#[test]
fn host_rules() {
    for bad in ["", "a b", &"h".repeat(254)] {
        let e = load_err(&flags(&[("EXAI_WS_HOST", bad)]));
        assert_eq!(e.key(), "EXAI_WS_HOST");
    }
    let c = Config::load(&flags(&[("exai_ws_host", " ::1 ")]))
        .expect("load")
        .config;
    assert_eq!(c.server.host, "::1");
}

#[test]
fn render_is_sorted_and_aligned() {
    let c = Config::load(&flags(&[("EXAI_WS_PORT", "9000")]))
        .expect("load")
        .config;
    let out = c.render();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), KEYS.len());
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    let kw = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for l in &lines {
        assert_eq!(&l[kw..kw + 2], "  ", "{l}");
        assert_ne!(&l[kw + 2..kw + 3], " ", "{l}");
        assert!(!l.ends_with(' '));
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("EXAI_WS_PORT ") && l.ends_with("  flag"))
    );
    let e = c.entries();
    assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn tool_profile_and_tool_lists() {
    let c = Config::load(&flags(&[
        ("TOOL_PROFILE", " Lean "),
        ("ENABLED_TOOLS", "chat, Debug"),
        ("DISABLED_TOOLS", ""),
    ]))
    .expect("load")
    .config;
    assert_eq!(c.tools.profile, Profile::Lean);
    assert_eq!(c.tools.enabled, ["chat", "debug"]);
    assert!(c.tools.disabled.is_empty());
    let shown: BTreeMap<_, _> = c.entries().into_iter().map(|(k, v, _)| (k, v)).collect();
    assert_eq!(shown["TOOL_PROFILE"], "lean");
    assert_eq!(shown["DISABLED_TOOLS"], "<none>");

    let e = load_err(&flags(&[("TOOL_PROFILE", "huge")]));
    assert_eq!(e.key(), "TOOL_PROFILE");
    assert!(
        e.to_string()
            .ends_with("expected one of lean, standard, full"),
        "{e}"
    );
    let e = load_err(&Layers {
        env: pairs(&[("DISABLED_TOOLS", "chat,teleport,Warp")]),
        ..Layers::default()
    });
    let msg = e.to_string();
    assert_eq!(e.key(), "DISABLED_TOOLS");
    assert!(
        msg.contains("(from environment): unknown tool name(s) \"teleport\", \"warp\""),
        "{msg}"
    );
    let loaded = Config::load(&flags(&[("DISABLED_TOOLS", "version")])).expect("load");
    assert_eq!(
        loaded.warnings,
        ["DISABLED_TOOLS names version, which is always on (ignored)"]
    );
}

#[test]
fn no_panic_on_odd_input() {
    for raw in [
        "\u{0}",
        "٣",
        "9".repeat(400).as_str(),
        "1.99999999999999999999",
        "é.5",
    ] {
        for d in KEYS {
            let _ = Config::load(&flags(&[(d.name, raw)]));
        }
    }
    assert_eq!(parse_decimal_secs_ms("1.9999"), Some(2000));
    assert_eq!(parse_decimal_secs_ms("18446744073709551615"), None);
}

#[test]
fn providers_are_a_list_in_listmodels_order() {
    let c = Config::load(&flags(&[
        ("EXAI_WS_GLM_MAX_INFLIGHT", "3"),
        ("GLM_API_KEY", "glm-key-123"),
        ("EXAI_OFFLINE_LATENCY_MS", "25"),
    ]))
    .expect("load")
    .config;
    let names: Vec<&str> = c.providers.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["kimi", "glm", "offline"]);
    for (i, id) in ProviderId::ALL.into_iter().enumerate() {
        assert_eq!(c.providers[id].id, id);
        assert_eq!(c.providers.iter().nth(i).map(|p| p.id), Some(id));
    }
    let glm = c.providers.get("glm").expect("glm is listed");
    assert_eq!(glm.inflight_max, 3);
    assert_eq!(
        glm.api_key.as_ref().map(Secret::expose),
        Some("glm-key-123")
    );
    assert_eq!(glm.models[0], "glm-4.6");
    assert_eq!(glm.timeout_ms, 120_000);
    let offline = &c.providers[ProviderId::Offline];
    assert_eq!((offline.inflight_max, offline.latency_ms), (24, 25));
    assert!(offline.api_url.is_empty() && offline.api_key.is_none());
    assert!(c.providers.get("openai").is_none());
}

#[test]
fn file_roots_default_to_home_and_must_be_absolute() {
    let c = Config::defaults();
    assert!(c.file_access.roots.is_empty(), "no environment, no home");
    assert_eq!(c.file_access.file_bytes_max, 1_048_576);
    assert_eq!(c.file_access.files_per_call_max, 64);

    let home = Layers {
        env: pairs(&[("HOME", "/home/u")]),
        ..Layers::default()
    };
    let c = Config::load(&home).expect("load").config;
    assert_eq!(c.file_access.roots, [PathBuf::from("/home/u")]);
    assert_eq!(c.source_of("EXAI_FILE_ROOTS"), Some(&Source::Default));

    let set = Layers {
        env: pairs(&[("HOME", "/home/u"), ("EXAI_FILE_ROOTS", "/srv/a, /srv/b")]),
        ..Layers::default()
    };
    let c = Config::load(&set).expect("load").config;
    assert_eq!(
        c.file_access.roots,
        [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
    );

    let relative = Layers {
        env: pairs(&[("HOME", "relative")]),
        ..Layers::default()
    };
    let c = Config::load(&relative).expect("load").config;
    assert!(
        c.file_access.roots.is_empty(),
        "a relative HOME is no default"
    );

    let e = load_err(&flags(&[("EXAI_FILE_ROOTS", "/srv/a,src")]));
    assert_eq!(e.key(), "EXAI_FILE_ROOTS");
    assert!(e.to_string().contains("absolute paths"), "{e}");
}

#[test]
fn model_facts_are_read_and_a_bad_entry_is_named() {
    let c = Config::load(&flags(&[(
        "EXAI_MODEL_FACTS",
        "glm-4.6:context=150000 ; my-model:vision=true,web_search=false",
    )]))
    .expect("load")
    .config;
    assert_eq!(c.models.facts.len(), 2);
    assert_eq!(c.models.facts[0].model, "glm-4.6");
    assert_eq!(c.models.facts[0].context_tokens, Some(150_000));
    assert_eq!(c.models.facts[1].vision, Some(true));
    let shown = c.entries();
    let row = shown.iter().find(|r| r.0 == "EXAI_MODEL_FACTS").unwrap();
    assert_eq!(
        row.1,
        "glm-4.6:context=150000;my-model:vision=true,web_search=false"
    );
    assert!(Config::defaults().models.facts.is_empty());
    let e = load_err(&flags(&[(
        "EXAI_MODEL_FACTS",
        "glm-4.6:context=150000;kimi-k2-turbo-preview:vision=perhaps",
    )]));
    assert_eq!(e.key(), "EXAI_MODEL_FACTS");
    assert!(
        e.reason().starts_with(
            "entry 2 \"kimi-k2-turbo-preview:vision=perhaps\": vision must be true or false"
        ),
        "{e}"
    );
}

#[test]
fn several_keys_are_split_and_a_short_one_is_named_not_shown() {
    let c = Config::load(&Layers {
        env: pairs(&[
            ("KIMI_API_KEY", "sk-first-000000"),
            (
                "KIMI_API_KEYS",
                "sk-second-00000,sk-first-000000,sk-third-000000",
            ),
        ]),
        ..Layers::default()
    })
    .expect("load")
    .config;
    let keys: Vec<String> = c.providers[ProviderId::Kimi]
        .keys()
        .iter()
        .map(|k| k.expose().to_string())
        .collect();
    assert_eq!(
        keys,
        ["sk-first-000000", "sk-second-00000", "sk-third-000000"]
    );
    let e = load_err(&Layers {
        env: pairs(&[("KIMI_API_KEYS", "sk-second-00000,short")]),
        ..Layers::default()
    });
    let msg = e.to_string();
    assert_eq!(e.key(), "KIMI_API_KEYS");
    assert!(
        msg.contains("entry 2 is shorter than 8 characters"),
        "{msg}"
    );
    assert!(!msg.contains("sk-second"), "the keys are redacted: {msg}");
}

#[test]
fn allowed_origins_are_normalised_and_a_bad_one_is_named() {
    let c = Config::load(&flags(&[(
        "EXAI_HTTP_ALLOWED_ORIGINS",
        "HTTPS://Editor.Example.com, http://[::1]:5173",
    )]))
    .expect("load")
    .config;
    assert_eq!(
        c.server.http_allowed_origins,
        ["https://editor.example.com:443", "http://[::1]:5173"]
    );
    let e = load_err(&flags(&[(
        "EXAI_HTTP_ALLOWED_ORIGINS",
        "https://ok.example,editor.example.com",
    )]))
    .to_string();
    assert!(
        e.contains("EXAI_HTTP_ALLOWED_ORIGINS") && e.contains("scheme://host[:port]"),
        "{e}"
    );
}

#[test]
fn a_provider_limit_above_the_global_limit_is_a_warning() {
    let loaded = Config::load(&flags(&[
        ("EXAI_WS_KIMI_MAX_INFLIGHT", "40"),
        ("EXAI_WS_GLOBAL_MAX_INFLIGHT", "30"),
    ]))
    .expect("a warning, not an error");
    assert_eq!(
        loaded.warnings,
        [
            "EXAI_WS_KIMI_MAX_INFLIGHT=40 is above EXAI_WS_GLOBAL_MAX_INFLIGHT=30: at most 30 of its calls run at once"
        ]
    );
    let quiet = Config::load(&flags(&[])).expect("defaults");
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
}
