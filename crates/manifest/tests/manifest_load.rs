//! Loading manifests: the shipped defaults, unknown keys, range errors and fingerprints.

use cohesix_manifest::{bounds, Manifest, ManifestError, QuotaPolicy, DEFAULT_TOML};

const LIB_RS: &str = include_str!("../src/lib.rs");

#[test]
fn shipped_default_file_is_the_default_manifest() {
    assert_eq!(Manifest::from_toml(DEFAULT_TOML), Ok(Manifest::default()));
    assert_eq!(Manifest::load(DEFAULT_TOML), Ok(Manifest::default()));
}

#[test]
fn shipped_default_file_writes_out_every_key() {
    let shipped: toml::Table = DEFAULT_TOML.parse().unwrap();
    let written: toml::Table = Manifest::default().to_toml().unwrap().parse().unwrap();
    assert_eq!(shipped, written);
}

/// The comment lines directly above `field = ` inside `[section]`.
fn comment_above(section: &str, field: &str) -> String {
    let start = DEFAULT_TOML.find(&format!("[{section}]\n")).unwrap();
    let lines: Vec<&str> = DEFAULT_TOML[start..].lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{field} = ")))
        .unwrap();
    let comments = lines[..at].iter().rev().take_while(|l| l.starts_with('#'));
    comments.copied().collect::<Vec<_>>().join(" ")
}

/// The doc comment lines directly above `pub field:` inside the section's struct.
fn doc_above(section: &str, field: &str) -> String {
    let start = LIB_RS.find(&format!("`[{section}]`")).unwrap();
    let lines: Vec<&str> = LIB_RS[start..].lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.trim() == format!("pub {field}: u32,") || l.trim() == format!("pub {field}: u64,")
        })
        .unwrap();
    let docs = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.trim().starts_with("///"));
    docs.copied().collect::<Vec<_>>().join(" ")
}

#[test]
fn each_range_is_stated_in_the_default_file_and_the_docs() {
    for (key, range) in bounds() {
        let (section, field) = key.split_once('.').unwrap();
        let stated = format!("Allowed: {}..={}", range.start(), range.end());
        assert!(
            comment_above(section, field).contains(&stated),
            "default.toml {key}: {stated}"
        );
        assert!(
            doc_above(section, field).contains(&stated),
            "lib.rs {key}: {stated}"
        );
    }
}

#[test]
fn a_file_only_needs_the_keys_it_changes() {
    let manifest = Manifest::load("[workers]\nring_bytes = 4096\n").unwrap();
    assert_eq!(manifest.workers.ring_bytes, 4096);
    assert_eq!(manifest.ninep, Manifest::default().ninep);
    assert_eq!(Manifest::load(""), Ok(Manifest::default()));
}

#[test]
fn unknown_keys_are_refused_by_name() {
    for (text, key) in [
        ("[ninep]\nmsize_max = 1\n", "msize_max"),
        ("[gateway]\n", "gateway"),
    ] {
        let Err(ManifestError::Parse(message)) = Manifest::from_toml(text) else {
            panic!("{text:?} was accepted");
        };
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn wrongly_typed_values_are_refused() {
    for text in [
        "[ninep]\nmsize = \"8k\"\n",
        "[ninep]\nmsize = -1\n",
        "[hive]\ndev_mode = 1\n",
    ] {
        assert!(
            matches!(Manifest::from_toml(text), Err(ManifestError::Parse(_))),
            "{text}"
        );
    }
    let policy = "[telemetry]\nquota_policy = \"drop\"\n";
    assert!(Manifest::from_toml(policy).is_err());
    let refuse = Manifest::from_toml("[telemetry]\nquota_policy = \"refuse\"\n").unwrap();
    assert_eq!(refuse.telemetry.quota_policy, QuotaPolicy::Refuse);
}

#[test]
fn out_of_range_names_key_value_and_range() {
    let err = Manifest::load("[workers]\nring_bytes = 100\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "workers.ring_bytes = 100: must be in 256..=1048576"
    );
    let err = Manifest::load("[ninep]\nmsize = 2097152\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ninep.msize = 2097152: must be in 4096..=1048576"
    );
    let err = Manifest::load("[tickets]\nmax_scopes = 9\n").unwrap_err();
    assert_eq!(
        err,
        ManifestError::OutOfRange {
            key: "tickets.max_scopes",
            value: 9,
            min: 0,
            max: 8
        }
    );
}

#[test]
fn a_key_above_its_bounding_key_names_both() {
    let text = "[telemetry]\nrecord_bytes = 8192\nmax_segment_bytes = 4096\n";
    let err = Manifest::load(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "telemetry.record_bytes = 8192: must be at most telemetry.max_segment_bytes (4096)"
    );
    let err = Manifest::load("[audit]\nlog_ring_bytes = 4096\nmax_line_bytes = 8192\n");
    assert!(matches!(
        err,
        Err(ManifestError::AboveOther {
            key: "audit.max_line_bytes",
            ..
        })
    ));
}

#[test]
fn listen_addresses_must_parse() {
    let err = Manifest::load("[ninep]\nlisten = \"localhost\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ninep.listen = \"localhost\": must be an address like 127.0.0.1:5640"
    );
    assert!(Manifest::load("[ninep]\nlisten = \"\"\n").is_err());
    assert!(Manifest::load("[ninep]\nlisten = \"[::1]:564\"\n").is_ok());

    let disabled = Manifest::load("[console]\nlisten = \"\"\n").unwrap();
    assert_eq!(disabled.console.listen, "");
    let err = Manifest::load("[console]\nlisten = \"0.0.0.0\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "console.listen = \"0.0.0.0\": must be empty (disabled) or an address like 127.0.0.1:31337"
    );
}

#[test]
fn hive_name_must_be_a_plain_word() {
    for name in ["", "my hive", "a/b", &"x".repeat(65)] {
        let text = format!("[hive]\nname = {name:?}\n");
        let err = Manifest::load(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::Invalid {
                    key: "hive.name",
                    ..
                }
            ),
            "{name:?}"
        );
    }
    assert_eq!(
        Manifest::load("[hive]\nname = \"a b\"\n")
            .unwrap_err()
            .to_string(),
        "hive.name = \"a b\": must be 1..=64 bytes of A-Z a-z 0-9 . _ -"
    );
}

#[test]
fn validate_reports_the_first_problem_and_problems_lists_all() {
    let text = "[ninep]\nmsize = 1\n[workers]\nshard_bits = 0\n";
    let manifest = Manifest::from_toml(text).unwrap();
    let problems = manifest.problems();
    let keys: Vec<&str> = problems
        .iter()
        .map(|p| match p {
            ManifestError::OutOfRange { key, .. } => *key,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(keys, ["ninep.msize", "workers.shard_bits"]);
    assert_eq!(manifest.validate(), Err(problems[0].clone()));
}

#[test]
fn written_manifest_reads_back_the_same() {
    let mut manifest = Manifest::default();
    manifest.console.listen.clear();
    manifest.telemetry.quota_policy = QuotaPolicy::Refuse;
    manifest.workers.shard_bits = 4;
    let text = manifest.to_toml().unwrap();
    assert_eq!(Manifest::load(&text), Ok(manifest));
}

#[test]
fn fingerprint_ignores_comments_and_spelled_out_defaults() {
    let bare = Manifest::load("").unwrap().fingerprint().unwrap();
    let shipped = Manifest::load(DEFAULT_TOML).unwrap().fingerprint().unwrap();
    assert_eq!(bare, shipped);
    assert_eq!(bare.len(), 64);
    assert!(bare
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let changed = Manifest::load("[ninep]\nmsize = 16384\n").unwrap();
    assert_ne!(changed.fingerprint().unwrap(), bare);
}

#[test]
fn sha256_of_text_is_lowercase_hex() {
    assert_eq!(
        Manifest::sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn unwritable_values_are_an_error_not_a_panic() {
    let mut manifest = Manifest::default();
    manifest.telemetry.max_device_bytes = u64::MAX;
    assert!(matches!(
        manifest.to_toml(),
        Err(ManifestError::Serialize(_))
    ));
    assert!(manifest.fingerprint().is_err());
}

#[test]
fn no_gpu_is_declared_by_default_and_declared_gpus_are_checked() {
    assert!(Manifest::default().gpu.devices.is_empty());
    assert_eq!(Manifest::default().gpu.max_leases_per_gpu, 8);
    let one = "[[gpu.devices]]\nid = \"GPU-0\"\nmem_mb = 81920\nstreams = 8\n";
    let manifest = Manifest::load(one).unwrap();
    assert_eq!(manifest.gpu.devices.len(), 1);
    assert_eq!(manifest.gpu.devices[0].id, "GPU-0");
    // A declared inventory survives the canonical TOML round trip.
    assert_eq!(Manifest::load(&manifest.to_toml().unwrap()), Ok(manifest));

    let device = |id: &str, mem_mb: u32, streams: u32| {
        format!("[[gpu.devices]]\nid = \"{id}\"\nmem_mb = {mem_mb}\nstreams = {streams}\n")
    };
    let key_of = |text: &str| match Manifest::load(text) {
        Err(ManifestError::Invalid { key, .. } | ManifestError::OutOfRange { key, .. }) => key,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(key_of(&device("bad/id", 1, 1)), "gpu.devices.id");
    assert_eq!(key_of(&device("", 1, 1)), "gpu.devices.id");
    assert_eq!(key_of(&device(&"g".repeat(65), 1, 1)), "gpu.devices.id");
    assert_eq!(
        key_of(&(device("G", 1, 1) + &device("G", 1, 1))),
        "gpu.devices.id"
    );
    assert_eq!(key_of(&device("G", 0, 1)), "gpu.devices.mem_mb");
    assert_eq!(key_of(&device("G", 1, 0)), "gpu.devices.streams");
    assert_eq!(key_of(&device("G", 1, 65)), "gpu.devices.streams");
    assert!(Manifest::load(&device(&"g".repeat(64), 1, 64)).is_ok());
    let many: String = (0..65).map(|i| device(&format!("G{i}"), 1, 1)).collect();
    assert_eq!(key_of(&many), "gpu.devices");
    let sixty_four: String = (0..64).map(|i| device(&format!("G{i}"), 1, 1)).collect();
    assert!(Manifest::load(&sixty_four).is_ok());
}
