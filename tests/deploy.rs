//! The Kubernetes files in deploy/kubernetes/ do what README, "Running on Kubernetes",
//! says: an Indexed Job of N shards that start together, run hardened as the image's
//! non-root user, read the scenario from the ConfigMap the manifests define, and write
//! to the shared claim that the merge Job reads; the scenario in the ConfigMap is one
//! wsoak accepts; the image runs wsoak as that user; run.sh is valid bash.
//!
//! Every YAML document under deploy/kubernetes/ is parsed; nothing here needs kubectl,
//! docker or a cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use wsoak::scenario::{self, Overrides, Target};

const DIR: &str = "deploy/kubernetes";

/// Every YAML document under deploy/kubernetes/ (empty ones skipped), with its file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from(DIR)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            if !value.is_null() {
                docs.push((path.clone(), value));
            }
        }
    }
    docs
}

/// The one object of `kind` that `pick` accepts.
fn only(kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let found: Vec<Value> = documents()
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == kind && pick(v))
        .collect();
    assert_eq!(found.len(), 1, "{kind}: {found:#?}");
    found.into_iter().next().unwrap()
}

/// The Job whose pods are the shards.
fn shard_job() -> Value {
    only("Job", |v| v["spec"]["completionMode"] == "Indexed")
}

/// The Job that merges the shards' run directories.
fn merge_job() -> Value {
    only("Job", |v| {
        container(&v["spec"]["template"])["args"][0] == "merge"
    })
}

/// A pod template's (or a Pod's) only container.
fn container(pod: &Value) -> &Value {
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{pod:#}");
    &containers[0]
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The argument after `flag`.
fn after<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args.iter().position(|a| *a == flag);
    let at = at.unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args.get(at + 1)
        .unwrap_or_else(|| panic!("{flag} has no value in {args:?}"))
}

/// The value of the container's env entry `name`.
fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    let entries = container["env"].as_array().unwrap();
    let found: Vec<_> = entries.iter().filter(|e| e["name"] == name).collect();
    assert_eq!(found.len(), 1, "env {name}: {entries:#?}");
    found[0]
}

/// The names in `$(NAME)` references: Kubernetes replaces them from the container's
/// env, and leaves a reference to anything else as it is.
fn references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        let tail = &rest[start + 2..];
        let end = tail.find(')').unwrap();
        names.push(&tail[..end]);
        rest = &tail[end + 1..];
    }
    names
}

fn shard_count() -> u64 {
    shard_job()["spec"]["completions"].as_u64().unwrap()
}

/// The UID and GID of the image's runtime stage (`USER uid:gid`).
fn image_user() -> (u64, u64) {
    let user = runtime_stage()
        .into_iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER ").map(str::to_owned))
        .expect("the runtime stage sets USER");
    let (uid, gid) = user
        .trim()
        .split_once(':')
        .unwrap_or_else(|| panic!("USER {user}: write it as UID:GID"));
    let number = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("USER {user}: numeric, so that runAsNonRoot can check it"))
    };
    (number(uid), number(gid))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(DIR).join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The instructions from the last FROM on.
fn runtime_stage() -> Vec<String> {
    let all = dockerfile();
    let last = all.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    all[last..].to_vec()
}

#[test]
fn the_manifests_are_exactly_the_five_objects_the_readme_lists() {
    let docs = documents();
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|(path, v)| {
            assert!(
                v["apiVersion"].is_string(),
                "{}: no apiVersion",
                path.display()
            );
            let name = v["metadata"]["name"].as_str().unwrap_or_default();
            assert!(!name.is_empty(), "{}: no metadata.name", path.display());
            // The namespace is the caller's choice (kubectl -n, run.sh -n).
            assert!(
                v["metadata"]["namespace"].is_null(),
                "{}: names a namespace",
                path.display()
            );
            format!("{} {name}", v["kind"].as_str().unwrap())
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap wsoak-example-scenario",
            "Job wsoak-example",
            "Job wsoak-example-merge",
            "PersistentVolumeClaim wsoak-results",
            "Pod wsoak-example-fetch",
        ]
    );
}

#[test]
fn the_shard_job_runs_n_indexed_shards_that_start_together_and_never_retry() {
    let job = shard_job();
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(n, 3, "the example runs 3 shards");
    assert_eq!(spec["parallelism"].as_u64(), Some(n), "every shard at once");
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

    // A retried shard would run its sessions twice: a failed index is never retried,
    // a usage error fails the Job, and no rule ignores (that is, retries) a failure.
    assert_eq!(spec["backoffLimitPerIndex"].as_u64(), Some(0));
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| r["action"] != "Ignore"), "{rules:#?}");
    let fail_job: Vec<_> = rules
        .iter()
        .filter(|r| r["action"] == "FailJob")
        .flat_map(|r| r["onExitCodes"]["values"].as_array().unwrap().clone())
        .collect();
    assert_eq!(fail_job, [Value::from(2)], "exit 2 (usage) fails the Job");
    assert!(spec["activeDeadlineSeconds"].as_u64().unwrap() > 0);

    let wsoak = container(&spec["template"]);
    let args = args(wsoak);
    assert_eq!(args[0], "run");
    assert_eq!(after(&args, "--shard-count"), n.to_string());
    assert_eq!(after(&args, "--start-at"), "$(WSOAK_START_AT)");
    assert_eq!(after(&args, "--metrics-listen"), ":9464");
    let start = env(wsoak, "WSOAK_START_AT")["value"].as_str().unwrap();
    humantime::parse_rfc3339(start)
        .unwrap_or_else(|e| panic!("WSOAK_START_AT {start}: not RFC 3339 in UTC: {e}"));

    // Each shard writes its own directory: the report path depends on the index.
    let report = after(&args, "--report");
    assert!(report.contains("$(JOB_COMPLETION_INDEX)"), "{report}");
    assert_eq!(
        env(wsoak, "JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    // Kubernetes leaves $(NAME) as it is when NAME is not in the container's env.
    for name in args.iter().flat_map(|a| references(a)) {
        env(wsoak, name);
    }

    let ports = wsoak["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{ports:#?}");
    assert_eq!(ports[0]["name"], "metrics");
    assert_eq!(ports[0]["containerPort"], 9464);

    // Shards spread over nodes: the constraint selects the shards' own labels.
    let spreads = spec["template"]["spec"]["topologySpreadConstraints"]
        .as_array()
        .unwrap();
    assert_eq!(spreads.len(), 1, "{spreads:#?}");
    assert_eq!(spreads[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spreads[0]["maxSkew"], 1);
    let labels = spec["template"]["metadata"]["labels"].as_object().unwrap();
    let selected = spreads[0]["labelSelector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(!selected.is_empty());
    for (key, value) in selected {
        assert_eq!(labels.get(key), Some(value), "the spread selects {key}");
    }
}

#[test]
fn every_pod_runs_as_the_image_user_hardened_and_with_resources() {
    let (uid, gid) = image_user();
    let pods: Vec<Value> = documents()
        .into_iter()
        .filter_map(|(_, v)| match v["kind"].as_str() {
            Some("Job") => Some(v["spec"]["template"].clone()),
            Some("Pod") => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(pods.len(), 3, "shards, merge, fetch");
    for pod in &pods {
        let spec = &pod["spec"];
        assert_eq!(spec["securityContext"]["fsGroup"].as_u64(), Some(gid));
        assert_eq!(spec["automountServiceAccountToken"], false);
        let c = container(pod);
        let name = &c["name"];
        let security = &c["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        assert_eq!(security["runAsUser"].as_u64(), Some(uid), "{name}");
        assert_eq!(security["runAsGroup"].as_u64(), Some(gid), "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(
            security["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(security["capabilities"]["add"].is_null(), "{name}");
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                let value = &c["resources"][bound][resource];
                assert!(
                    value.as_str().is_some_and(|v| !v.is_empty()),
                    "{name}: resources.{bound}.{resource} is {value}"
                );
            }
        }
    }
}

#[test]
fn volumes_name_the_configmap_and_the_claim_the_manifests_define() {
    let config_map = only("ConfigMap", |_| true);
    let claim = only("PersistentVolumeClaim", |_| true);
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"]),
        "the shards run on different nodes"
    );

    let job = shard_job();
    let pod = &job["spec"]["template"];
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let scenario = volumes.iter().find(|v| v["name"] == "scenario").unwrap();
    assert_eq!(
        scenario["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    let mount = container(pod)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "scenario")
        .unwrap()
        .clone();
    let file = args(container(pod))[1];
    let key = file
        .strip_prefix(&format!("{}/", mount["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{file} is not in the scenario volume"));
    assert!(config_map["data"][key].is_string(), "no key {key}");

    let mut claims = 0;
    for (_, doc) in documents() {
        let spec = match doc["kind"].as_str() {
            Some("Job") => &doc["spec"]["template"]["spec"],
            Some("Pod") => &doc["spec"],
            _ => continue,
        };
        for volume in spec["volumes"].as_array().unwrap() {
            if let Some(name) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                assert_eq!(name, claim["metadata"]["name"]);
                claims += 1;
            }
        }
    }
    assert_eq!(claims, 3, "shards, merge and fetch mount the results");
}

#[test]
fn the_merge_job_merges_each_shard_directory_once() {
    let n = shard_count();
    let shards = shard_job();
    let shard = container(&shards["spec"]["template"]);
    let shard_report = after(&args(shard), "--report").to_owned();
    let shard_dir = shard_report.strip_suffix("/report.json").unwrap();

    let job = merge_job();
    assert_eq!(job["spec"]["backoffLimit"], 0, "a verdict is not retried");
    let merge = container(&job["spec"]["template"]);
    assert_eq!(env(merge, "WSOAK_RUN"), env(shard, "WSOAK_RUN"));
    let args = args(merge);
    let dirs: Vec<String> = (0..n)
        .map(|i| shard_dir.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()))
        .collect();
    let mut expected = vec!["merge".to_owned()];
    expected.extend(dirs);
    let run = shard_dir
        .strip_suffix("/shard-$(JOB_COMPLETION_INDEX)")
        .unwrap();
    expected.extend([
        "--out".to_owned(),
        format!("{run}/merged"),
        "--junit".to_owned(),
        format!("{run}/merged/junit.xml"),
    ]);
    assert_eq!(args, expected);
    for name in args.iter().flat_map(|a| references(a)) {
        env(merge, name);
    }
}

/// run.sh fills its values in by position (a JSON patch), after testing each one: the
/// manifests keep the layout it tests for.
#[test]
fn the_manifests_keep_the_layout_run_sh_fills_in() {
    let shards = shard_job();
    let pod = &shards["spec"]["template"];
    let c = container(pod);
    assert_eq!(c["name"], "wsoak");
    assert_eq!(args(c)[0], "run");
    assert_eq!(args(c)[2], "--shard-count");
    assert_eq!(c["env"][0]["name"], "WSOAK_START_AT");
    assert_eq!(c["env"][1]["name"], "WSOAK_RUN");
    assert_eq!(pod["spec"]["volumes"][0]["name"], "scenario");
    assert_eq!(pod["spec"]["volumes"][1]["name"], "results");

    let merge = merge_job();
    let c = container(&merge["spec"]["template"]);
    assert_eq!(c["name"], "wsoak");
    assert_eq!(c["env"][0]["name"], "WSOAK_RUN");
    assert_eq!(
        merge["spec"]["template"]["spec"]["volumes"][0]["name"],
        "results"
    );

    let fetch = only("Pod", |_| true);
    assert_eq!(container(&fetch)["name"], "fetch");
    assert_eq!(fetch["spec"]["volumes"][0]["name"], "results");

    let script = std::fs::read_to_string(Path::new(DIR).join("run.sh")).unwrap();
    for test in [
        r#"$c/args/2\",\"value\":\"--shard-count\""#,
        r#"$c/env/0/name\",\"value\":\"WSOAK_START_AT\""#,
        r#"$c/env/1/name\",\"value\":\"WSOAK_RUN\""#,
        r#"$p/name\",\"value\":\"fetch\""#,
    ] {
        assert!(script.contains(test), "run.sh no longer tests {test}");
    }
}

#[test]
fn the_configmap_holds_a_valid_scenario_aimed_at_a_placeholder() {
    let config_map = only("ConfigMap", |_| true);
    let data = config_map["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "{data:#?}");
    let (key, text) = data.iter().next().unwrap();
    let text = text.as_str().unwrap();
    let path = Path::new("/scenario").join(key);
    let parsed = scenario::parse(text, &path, &Overrides::default())
        .unwrap_or_else(|e| panic!("{key}: {e}"));

    // Never a real host: .example is reserved (RFC 2606) and never resolves, so the
    // file cannot aim anyone's load at someone else's server; and it says to edit it.
    match &parsed.target {
        Target::Url(url) => assert_eq!(url.host, "gateway.example"),
        Target::Embedded => panic!("{key}: the cluster scenario needs a real target"),
    }
    let lines: Vec<&str> = text.lines().collect();
    let target = lines.iter().position(|l| l.starts_with("target:")).unwrap();
    assert!(lines[target - 1].contains("EDIT"), "{}", lines[target - 1]);

    // The merge judges these on the merged data.
    assert_eq!(parsed.thresholds.len(), 3);
    // The Job's deadline leaves room for the start delay run.sh uses (120 s) and more.
    let deadline = shard_job()["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        parsed.duration.as_secs() + 120 < deadline,
        "{:?} against activeDeadlineSeconds {deadline}",
        parsed.duration
    );
}

#[test]
fn the_image_builds_locked_and_runs_wsoak_as_a_numeric_non_root_user() {
    let (uid, gid) = image_user();
    assert!(uid > 0 && gid > 0, "{uid}:{gid}");

    let runtime = runtime_stage();
    let entrypoint = runtime
        .iter()
        .find_map(|i| i.strip_prefix("ENTRYPOINT "))
        .expect("the runtime stage has an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint)
        .unwrap_or_else(|e| panic!("ENTRYPOINT {entrypoint}: the exec (JSON) form: {e}"));
    assert_eq!(entrypoint, ["/usr/local/bin/wsoak"]);
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("COPY --from=build /usr/local/bin/wsoak /usr/local/bin/wsoak")),
        "{runtime:#?}"
    );
    assert!(runtime.iter().any(|i| i.starts_with("COPY scenarios ")));

    let all = dockerfile();
    assert!(
        all.iter()
            .any(|i| i.starts_with("RUN ") && i.contains("cargo build --release --locked")),
        "{all:#?}"
    );
    // The builder is at least as new as Cargo.toml's rust-version.
    let version =
        |text: &str| -> Vec<u64> { text.split('.').map(|p| p.parse().unwrap()).collect() };
    let rust = all
        .iter()
        .find_map(|i| i.strip_prefix("ARG RUST_VERSION="))
        .unwrap();
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(version(rust) >= version(msrv), "rust {rust} < {msrv}");
}

#[test]
fn dockerignore_keeps_build_and_run_output_out_of_the_context() {
    let text = std::fs::read_to_string(".dockerignore").unwrap();
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/'))
        .collect();
    for out in ["target", "reports", ".git"] {
        assert!(patterns.contains(&out), "{out} not in {patterns:?}");
    }
    // What the build copies stays in.
    for kept in ["src", "schema", "scenarios", "Cargo.toml", "Cargo.lock"] {
        assert!(!patterns.contains(&kept), "{kept} is ignored");
    }
}

#[test]
fn run_sh_is_valid_bash_and_answers_help_without_a_cluster() {
    let script = Path::new(DIR).join("run.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "run.sh is executable");
    }

    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--shards",
        "--namespace",
        "--image",
        "--start-in",
        "Exit codes",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}");
    }

    // Arguments are checked before kubectl is looked for: a usage error is exit 2.
    let bare = Command::new("bash").arg(&script).output().unwrap();
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("which scenario?"));
}
