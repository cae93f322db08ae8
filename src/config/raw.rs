//! Stage 1, part two: every table of the file read into raw structs, key names and
//! types checked, nothing defaulted yet.

use super::*;

pub(super) struct RawConfig {
    pub(super) threads: Option<i64>,
    pub(super) pin_threads: Option<bool>,
    pub(super) spool_dir: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) http: Vec<RawHttp>,
    pub(super) udp: Vec<RawUdp>,
}

pub(super) struct RawHttp {
    pub(super) path: String,
    pub(super) name: Option<String>,
    pub(super) bind_addr: Option<String>,
    pub(super) ssl_combined_pem: Option<String>,
    pub(super) ssl_min_version: Option<String>,
    pub(super) default_retention_policy: Option<String>,
    pub(super) ack: Option<String>,
    pub(super) max_body_size_mb: Option<i64>,
    pub(super) read_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) read_wait: Option<String>,
    pub(super) max_connections: Option<i64>,
    pub(super) users: Vec<RawUser>,
    pub(super) users_file: Option<String>,
    pub(super) auth_metrics: Option<bool>,
    pub(super) forward_credentials: Option<bool>,
    pub(super) outputs: Vec<RawHttpOutput>,
}

pub(super) struct RawUser {
    pub(super) path: String,
    pub(super) name: Option<String>,
    pub(super) password_sha256: Option<String>,
    pub(super) token_sha256: Option<String>,
}

pub(super) struct RawHttpOutput {
    pub(super) path: String,
    pub(super) name: Option<String>,
    pub(super) location: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) skip_tls_verification: Option<bool>,
    pub(super) ca_file: Option<String>,
    pub(super) buffer_size_mb: Option<i64>,
    pub(super) max_batch_kb: Option<i64>,
    pub(super) max_delay_interval: Option<String>,
    pub(super) concurrency: Option<i64>,
    pub(super) spool_size_mb: Option<i64>,
    pub(super) spool_max_age: Option<String>,
    pub(super) gzip: Option<bool>,
    pub(super) catch_up_live_percent: Option<i64>,
    pub(super) http_user: Option<String>,
    pub(super) http_pass: Option<String>,
    pub(super) token: Option<String>,
    pub(super) org: Option<String>,
    pub(super) reads: Option<bool>,
    pub(super) rebuild_on_start: Option<bool>,
}

pub(super) struct RawUdp {
    pub(super) path: String,
    pub(super) name: Option<String>,
    pub(super) bind_addr: Option<String>,
    pub(super) read_buffer: Option<i64>,
    pub(super) precision: Option<String>,
    pub(super) outputs: Vec<RawUdpOutput>,
}

pub(super) struct RawUdpOutput {
    pub(super) path: String,
    pub(super) name: Option<String>,
    pub(super) location: Option<String>,
    pub(super) mtu: Option<i64>,
}

impl RawConfig {
    pub(super) fn read(table: toml::Table) -> Result<RawConfig, ConfigError> {
        let mut f = Fields::new(String::new(), table);
        let raw = RawConfig {
            threads: f.integer("threads")?,
            pin_threads: f.boolean("pin-threads")?,
            spool_dir: f.string("spool-dir")?,
            log_level: f.string("log-level")?,
            shutdown_timeout: f.duration("shutdown-timeout")?,
            http: f
                .tables("http")?
                .into_iter()
                .map(RawHttp::read)
                .collect::<Result<_, _>>()?,
            udp: f
                .tables("udp")?
                .into_iter()
                .map(RawUdp::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawHttp {
    pub(super) fn read((path, table): (String, toml::Table)) -> Result<RawHttp, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawHttp {
            path,
            name: f.string("name")?,
            bind_addr: f.string("bind-addr")?,
            ssl_combined_pem: f.string("ssl-combined-pem")?,
            ssl_min_version: f.string("ssl-min-version")?,
            default_retention_policy: f.string("default-retention-policy")?,
            ack: f.string("ack")?,
            max_body_size_mb: f.integer("max-body-size-mb")?,
            read_timeout: f.duration("read-timeout")?,
            idle_timeout: f.duration("idle-timeout")?,
            read_wait: f.duration("read-wait")?,
            max_connections: f.integer("max-connections")?,
            users: f
                .tables("users")?
                .into_iter()
                .map(RawUser::read)
                .collect::<Result<_, _>>()?,
            users_file: f.string("users-file")?,
            auth_metrics: f.boolean("auth-metrics")?,
            forward_credentials: f.boolean("forward-credentials")?,
            outputs: f
                .tables("output")?
                .into_iter()
                .map(RawHttpOutput::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUser {
    pub(super) fn read((path, table): (String, toml::Table)) -> Result<RawUser, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUser {
            path,
            name: f.string("name")?,
            password_sha256: f.string("password-sha256")?,
            token_sha256: f.string("token-sha256")?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawHttpOutput {
    pub(super) fn read((path, table): (String, toml::Table)) -> Result<RawHttpOutput, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawHttpOutput {
            path,
            name: f.string("name")?,
            location: f.string("location")?,
            timeout: f.duration("timeout")?,
            skip_tls_verification: f.boolean("skip-tls-verification")?,
            ca_file: f.string("ca-file")?,
            buffer_size_mb: f.integer("buffer-size-mb")?,
            max_batch_kb: f.integer("max-batch-kb")?,
            max_delay_interval: f.duration("max-delay-interval")?,
            concurrency: f.integer("concurrency")?,
            spool_size_mb: f.integer("spool-size-mb")?,
            spool_max_age: f.duration("spool-max-age")?,
            gzip: f.boolean("gzip")?,
            catch_up_live_percent: f.integer("catch-up-live-percent")?,
            http_user: f.string("http-user")?,
            http_pass: f.string("http-pass")?,
            token: f.string("token")?,
            org: f.string("org")?,
            reads: f.boolean("reads")?,
            rebuild_on_start: f.boolean("rebuild-on-start")?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUdp {
    pub(super) fn read((path, table): (String, toml::Table)) -> Result<RawUdp, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUdp {
            path,
            name: f.string("name")?,
            bind_addr: f.string("bind-addr")?,
            read_buffer: f.integer("read-buffer")?,
            precision: f.string("precision")?,
            outputs: f
                .tables("output")?
                .into_iter()
                .map(RawUdpOutput::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUdpOutput {
    pub(super) fn read((path, table): (String, toml::Table)) -> Result<RawUdpOutput, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUdpOutput {
            path,
            name: f.string("name")?,
            location: f.string("location")?,
            mtu: f.integer("mtu")?,
        };
        f.finish()?;
        Ok(raw)
    }
}
