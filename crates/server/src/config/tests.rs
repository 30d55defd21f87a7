//! Tests of how the configuration is assembled from its layers.

use super::*;

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banter.toml");
    std::fs::write(&path, "max_page = 7\nsend_burst = 3\n").unwrap();
    let cli = Overrides {
        config: Some(path),
        send_burst: Some(9),
        ..Overrides::default()
    };
    let config = Config::load(cli).unwrap();
    assert_eq!(config.max_page, 7, "file overrides default");
    assert_eq!(config.send_burst, 9, "flag overrides file");
    assert_eq!(config.max_text_bytes, Config::default().max_text_bytes);
}

#[test]
fn a_relative_data_dir_in_a_file_is_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc").join("banter.toml");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "data_dir = \"data\"\n").unwrap();
    let from_file = Config::load(Overrides {
        config: Some(path.clone()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(from_file.data_dir, dir.path().join("etc").join("data"));
    // On the command line (or in a variable) it stays relative to the working directory.
    let from_flag = Config::load(Overrides {
        config: Some(path),
        data_dir: Some("here".into()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(from_flag.data_dir, PathBuf::from("here"));
}

#[test]
fn unknown_file_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banter.toml");
    std::fs::write(&path, "max_pages = 7\n").unwrap();
    let err = Config::load(Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
}

#[test]
fn invalid_values_are_rejected() {
    let err = Config::load(Overrides {
        heartbeat_timeout_ms: Some(1),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
}

#[test]
fn a_zero_occupancy_interval_is_rejected() {
    let err = Config::load(Overrides {
        room_occupancy_interval_ms: Some(0),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("room_occupancy_interval_ms"),
        "{err}"
    );
}

#[test]
fn example_config_matches_defaults() {
    let example = include_str!("../../../../docs/banter.example.toml");
    let body: String = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(body.trim(), Config::default_toml().trim());
}

#[test]
fn tls_paths_in_a_file_are_beside_the_file_and_come_in_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banter.toml");
    std::fs::write(
        &path,
        "tls_cert = \"cert.pem\"\ntls_key = \"/etc/key.pem\"\n",
    )
    .unwrap();
    let config = Config::load(Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(config.tls_cert, Some(dir.path().join("cert.pem")));
    assert_eq!(config.tls_key, Some(PathBuf::from("/etc/key.pem")));
    let err = Config::load(Overrides {
        tls_cert: Some("cert.pem".into()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("tls_cert and tls_key"), "{err}");
}

#[test]
fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
    use crate::store::StoreConfig;
    let config = Config::load(Overrides::default()).unwrap();
    assert!(matches!(
        StoreConfig::from_config(&config),
        StoreConfig::Sqlite { .. }
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banter.toml");
    std::fs::write(&path, "store = \"postgresql://u@db:5432/banter\"\n").unwrap();
    let config = Config::load(Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap();
    match StoreConfig::from_config(&config) {
        StoreConfig::Postgres { url, .. } => assert_eq!(url, "postgresql://u@db:5432/banter"),
        other => panic!("{other:?}"),
    }
    for bad in ["mysql://u@db/banter", "db:5432", "sqlite"] {
        let err = Config::load(Overrides {
            store: Some(bad.into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{bad}: {err}");
        assert!(err.to_string().contains("store must be"), "{bad}: {err}");
    }
}

#[test]
fn the_store_url_never_shows_its_password() {
    let url = StoreUrl::from("postgres://root:hunter2@127.0.0.1:5432/banter?password=hunter2");
    assert_eq!(
        url.redacted(),
        "postgres://root:***@127.0.0.1:5432/banter?password=***"
    );
    assert!(!format!("{url} {url:?}").contains("hunter2"));
    let config = Config {
        store: url,
        ..Config::default()
    };
    assert!(!format!("{config:?}").contains("hunter2"));
    let plain = StoreUrl::from("postgres://root@127.0.0.1:5432/banter");
    assert_eq!(plain.redacted(), "postgres://root@127.0.0.1:5432/banter");
    assert_eq!(StoreUrl::default().redacted(), "sqlite");
}

#[test]
fn a_cluster_needs_a_nats_url_a_shared_store_and_a_plain_name() {
    let pg = || Some(StoreUrl::from("postgres://u@db:5432/banter"));
    let ok = Config::load(Overrides {
        store: pg(),
        bus: Some(BusUrl::from("nats://nats:4222")),
        cluster: Some("chat-1".into()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(
        (ok.bus.expose(), ok.cluster.as_str()),
        ("nats://nats:4222", "chat-1")
    );
    let refused = |o: Overrides, why: &str| {
        let err = Config::load(o).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    };
    refused(
        Overrides {
            bus: Some(BusUrl::from("nats://nats:4222")),
            ..Overrides::default()
        },
        "needs a shared store",
    );
    refused(
        Overrides {
            store: pg(),
            bus: Some(BusUrl::from("redis://cache:6379")),
            ..Overrides::default()
        },
        "bus must be",
    );
    for bad in ["", "a.b", "chat room", "x>"] {
        refused(
            Overrides {
                cluster: Some(bad.into()),
                ..Overrides::default()
            },
            "cluster must be",
        );
    }
}

#[test]
fn the_bus_url_never_shows_its_user_part() {
    for (url, shown) in [
        ("nats://alice:hunter2@nats:4222", "nats://***@nats:4222"),
        ("nats://hunter2@nats:4222/", "nats://***@nats:4222/"),
        ("nats://nats:4222", "nats://nats:4222"),
        ("", "local"),
    ] {
        let bus = BusUrl::from(url);
        assert_eq!(bus.redacted(), shown);
        assert!(!format!("{bus} {bus:?}").contains("hunter2"));
    }
}

#[test]
fn the_postgres_pool_size_reaches_the_store_and_is_at_least_two() {
    let config = Config::load(Overrides {
        store: Some(StoreUrl::from("postgres://u@db:5432/banter")),
        postgres_pool_size: Some(4),
        ..Overrides::default()
    })
    .unwrap();
    match crate::store::StoreConfig::from_config(&config) {
        crate::store::StoreConfig::Postgres { options, .. } => assert_eq!(options.pool_size, 4),
        other => panic!("{other:?}"),
    }
    let err = Config::load(Overrides {
        postgres_pool_size: Some(1),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("postgres_pool_size"), "{err}");
}
