//! The shape of a key declaration, and the macro that turns the declarations into the key
//! table, the typed sections of [`super::Config`], the key-name constants and the code
//! that fills the fields.
//!
//! Why a macro: a key used to be written four times (a table row, a struct field, a line
//! that read it back by its name as a string, and copies into runtime structs), and a
//! misspelt name read as 0. Now each key is declared once, in `keys.rs`; everything else
//! is generated from that declaration, and code names a key only through a generated
//! constant (`key::EXAI_WS_MAX_SESSIONS`) or a typed field, so a typo does not compile.

use std::collections::BTreeMap;

use super::source::Source;
use super::value::{Kind, Merged, show_value};

/// One configuration key: its name everywhere (env, .env, file, `--set`), its
/// default as text (parsed by the same code as user input), its rule, and why it exists.
#[derive(Debug)]
pub(super) struct KeyDef {
    /// Canonical (upper-case) key name.
    pub(super) name: &'static str,
    /// Default value as text; must satisfy `kind` (checked by a test).
    pub(super) default: &'static str,
    /// Parsing rule, range and unit.
    pub(super) kind: Kind,
    /// Whether the TOML config file may set it (the file locators may not).
    pub(super) file_ok: bool,
    /// What the key limits and why: the lines of its doc comment, shown by
    /// `exaid config --explain`.
    pub(super) doc: &'static [&'static str],
    /// The typed field it fills, as code reads it (`server.port`), for `--explain`.
    pub(super) field: &'static str,
}

impl KeyDef {
    /// The doc comment as one paragraph.
    pub(super) fn doc_text(&self) -> String {
        let lines: Vec<&str> = self.doc.iter().map(|line| line.trim()).collect();
        lines.join(" ")
    }
}

/// Key -> (display value, source): what `render`, `entries` and `source_of` show.
/// Secrets are already redacted here, so a derived `Debug` is safe.
pub(super) type Shown = BTreeMap<&'static str, (String, Source)>;

/// The display form of every merged value, in key order.
pub(super) fn shown_of(keys: &[KeyDef], merged: &Merged) -> Shown {
    keys.iter()
        .filter_map(|d| {
            merged
                .get(d.name)
                .map(|(val, src)| (d.name, (show_value(d.kind, val), src.clone())))
        })
        .collect()
}

/// Declares every key. Input: `sections { ... }`, each a struct of fields with one key per field
/// (`field: Type = KEY, "default", kind;`, optionally `, file_ok = false` for keys the
/// config file may not set), then `providers { ... }`, one block per [`super::ProviderId`]
/// filling fields of [`super::ProviderSettings`]. Doc comments on fields are the keys' docs.
///
/// Output: the section structs, `Config` (one field per section, plus `providers`), the
/// `key` module of name constants, the `KEYS` table and `Config::from_merged`.
macro_rules! declare_config {
    (
        sections {
            $(
                $(#[doc = $section_doc:literal])*
                $section:ident: $Section:ident {
                    $(
                        $(#[doc = $doc:literal])*
                        $field:ident: $ty:ty = $key:ident, $default:literal, $kind:expr
                            $(, file_ok = $file_ok:literal)?;
                    )*
                }
            )*
        }
        $(#[doc = $providers_doc:literal])*
        providers {
            $(
                $id:ident {
                    $(
                        $(#[doc = $pdoc:literal])*
                        $pfield:ident = $pkey:ident, $pdefault:literal, $pkind:expr;
                    )*
                }
            )*
        }
    ) => {
        $(
            $(#[doc = $section_doc])*
            #[derive(Debug, Clone)]
            pub struct $Section {
                $(
                    #[doc = concat!("`", stringify!($key), "`:")]
                    $(#[doc = $doc])*
                    pub $field: $ty,
                )*
            }

            impl $Section {
                /// Its fields from the merged values.
                fn from_merged(merged: &$crate::config::value::Merged) -> $Section {
                    use $crate::config::value::FromValue;
                    $Section {
                        $( $field: FromValue::from_value(merged.get(key::$key).map(|(v, _)| v)), )*
                    }
                }
            }
        )*

        /// The name of every key. Code that names a key (in a message, a lookup) uses these,
        /// so a misspelt name is a compile error.
        pub mod key {
            $( $(
                $(#[doc = $doc])*
                pub const $key: &str = stringify!($key);
            )* )*
            $( $(
                $(#[doc = $pdoc])*
                pub const $pkey: &str = stringify!($pkey);
            )* )*
        }

        /// Every known key. The single source of truth for names, defaults and rules.
        pub(super) static KEYS: &[$crate::config::declare::KeyDef] = &[
            $( $(
                $crate::config::declare::KeyDef {
                    name: stringify!($key),
                    default: $default,
                    kind: $kind,
                    file_ok: true $(&& $file_ok)?,
                    doc: &[$($doc),*],
                    field: concat!(stringify!($section), ".", stringify!($field)),
                },
            )* )*
            $( $(
                $crate::config::declare::KeyDef {
                    name: stringify!($pkey),
                    default: $pdefault,
                    kind: $pkind,
                    file_ok: true,
                    doc: &[$($pdoc),*],
                    field: concat!("providers[ProviderId::", stringify!($id), "].", stringify!($pfield)),
                },
            )* )*
        ];

        /// The effective configuration: typed sections for the rest of the crate, plus a
        /// private record of each key's display value and source for `exaid config`.
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $section_doc])*
                pub $section: $Section,
            )*
            $(#[doc = $providers_doc])*
            pub providers: $crate::config::providers::ProviderList,
            /// Key -> (display value, source), for `render`, `entries` and `source_of`.
            pub(super) shown: $crate::config::declare::Shown,
        }

        impl Config {
            /// The one place that turns merged values into typed fields.
            pub(super) fn from_merged(merged: &$crate::config::value::Merged) -> Config {
                use $crate::config::providers::{ProviderId, ProviderList, ProviderSettings};
                use $crate::config::value::FromValue;
                Config {
                    $( $section: $Section::from_merged(merged), )*
                    providers: ProviderList::new([
                        $(
                            ProviderSettings {
                                $( $pfield: FromValue::from_value(merged.get(key::$pkey).map(|(v, _)| v)), )*
                                ..ProviderSettings::unset(ProviderId::$id)
                            },
                        )*
                    ]),
                    shown: $crate::config::declare::shown_of(KEYS, merged),
                }
            }
        }
    };
}

pub(super) use declare_config;
