//! The LLM gateway end to end: `purple run` sandboxes (in a client network
//! namespace of the test's own) whose agent uses the real `openai` and
//! `anthropic` SDKs and curl against a fake provider on a test host address
//! over TLS. Metering is exact, the host's keys never reach the sandbox,
//! the gateway is no open proxy, the direct route to the provider is
//! refused by a rule, and bad upstream answers are recorded without a crash.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use purple_integration::audited::records_of;
use purple_integration::cli::{purple_in, text};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::llm::{FakeProvider, CACHED_TOKENS, OUTPUT_TOKENS, PROMPT_TOKENS};
use purple_integration::netns::TestNet;
use purple_integration::*;
use serde_json::Value;

const OPENAI_KEY: &str = "sk-host-openai-7f3a9c2e51d84b06";
const ANTHROPIC_KEY: &str = "sk-host-anthropic-c41e8d0b9a27f365";
/// The virtualenv with the SDKs (scripts/setup.sh installs it); the
/// sandbox runs the system Python with its packages on PYTHONPATH.
const VENV: &str = "/opt/purple-test";

/// Shipped prices (picodollars per token) of the models the agents use.
const GPT_4O_MINI: (u64, u64, u64) = (150_000, 600_000, 75_000);
const HAIKU_3_5: (u64, u64, u64) = (800_000, 4_000_000, 80_000);

fn cost((input, output, cached): (u64, u64, u64)) -> f64 {
    ((PROMPT_TOKENS - CACHED_TOKENS) * input + CACHED_TOKENS * cached + OUTPUT_TOKENS * output)
        as f64
        / 1e12
}

fn policy(p: &FakeProvider, ai_extra: &str, audit: &str) -> String {
    format!(
        r#"name: llm-agent
filesystem:
  immutable_paths:
    - {{ host_path: /usr, sandbox_path: /usr }}
    - {{ host_path: /bin, sandbox_path: /bin, optional: true }}
    - {{ host_path: /lib, sandbox_path: /lib, optional: true }}
    - {{ host_path: /lib64, sandbox_path: /lib64, optional: true }}
    - {{ host_path: /etc/ssl/certs, sandbox_path: /etc/ssl/certs, optional: true }}
    - {{ host_path: /opt/purple-test, sandbox_path: /opt/purple-test }}
  scratch_paths:
    - {{ path: /tmp, size: "64M" }}
  working_dir: /work
{audit}
ai_policy:
  llm_apis:
    block_unknown: true
    providers:
      - name: openai
        endpoints: ["{openai}"]
      - name: anthropic
        endpoints: ["{anthropic}"]
  security:
    sensitive_data_scanning: true
  prices:
    - {{ provider: openai, model: broken-json, input: "1.00", output: "2.00" }}
    - {{ provider: openai, model: cut-stream, input: "1.00", output: "2.00" }}
{ai_extra}
"#,
        openai = p.url("/v1"),
        anthropic = p.url(""),
    )
}

/// The virtualenv's site-packages, which must hold both SDKs.
fn site_packages() -> String {
    let lib = Path::new(VENV).join("lib");
    let found = fs::read_dir(&lib).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.join("openai").is_dir() && p.join("anthropic").is_dir())
    });
    found
        .unwrap_or_else(|| {
            panic!("{VENV} with the openai and anthropic SDKs is missing: run scripts/setup.sh")
        })
        .display()
        .to_string()
}

/// Runs `script` with the SDKs' Python in a `purple run` sandbox of
/// `policy`, the host's keys and the fake provider's CA in purple's own
/// environment. Returns the output and the audit log's path.
fn run_agent(
    net: &TestNet,
    p: &FakeProvider,
    policy: &str,
    script: &str,
) -> (Output, String, std::path::PathBuf) {
    let pythonpath = format!("PYTHONPATH={}", site_packages());
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("agent.py"), script).unwrap();
    fs::write(work.path().join("policy.yaml"), policy).unwrap();
    let oci = Oci::new();
    let id = unique_id("llm");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", net.client_path()))
        .arg(purple())
        .arg("--root")
        .arg(oci.root.path())
        .args([
            "run",
            "--profile",
            "policy.yaml",
            "--id",
            &id,
            "-e",
            &pythonpath,
            "--",
            "/usr/bin/python3",
            "agent.py",
        ])
        .current_dir(work.path())
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env(purple_runtime::gateway::EXTRA_CA_ENV, &p.ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_run_left_nothing(&oci, &id);
    let log = purple_runtime::audit::default_path(&id);
    let summary = text(&purple_in(
        &oci,
        work.path(),
        &["audit", "summary", "--path", log.to_str().unwrap()],
    ))
    .0;
    (out, summary, log)
}

fn requests(log: &Path) -> Vec<Value> {
    records_of(log, "llm.request")
        .into_iter()
        .map(|r| r.details)
        .collect()
}

fn by_model<'a>(reqs: &'a [Value], model: &str, streamed: bool) -> &'a Value {
    reqs.iter()
        .find(|r| r["model"] == model && r["streamed"] == streamed)
        .unwrap_or_else(|| panic!("no llm.request for {model} streamed={streamed}: {reqs:#?}"))
}

const METERED_AGENT: &str = r#"
import os, subprocess, openai, anthropic
o = openai.OpenAI(max_retries=0)
a = anthropic.Anthropic(max_retries=0)
r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print("openai", r.choices[0].message.content, r.usage.prompt_tokens)
s = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
print("openai-stream", "".join(c.choices[0].delta.content or "" for c in s if c.choices))
m = a.messages.create(model="claude-3-5-haiku-20241022", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
print("anthropic", m.content[0].text, m.usage.output_tokens)
with a.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as st:
    print("anthropic-stream", "".join(st.text_stream))
def refused(name, f):
    try:
        f()
        print(name, "ANSWERED")
    except Exception as e:
        print(name, type(e).__name__, getattr(e, "status_code", ""), str(e)[:300])
refused("unknown-model", lambda: o.chat.completions.create(model="mystery-model", messages=[{"role": "user", "content": "hi"}]))
refused("secret", lambda: a.messages.create(model="claude-3-5-haiku-20241022", max_tokens=5,
        messages=[{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE"}]))
refused("broken-json", lambda: o.chat.completions.create(model="broken-json", messages=[{"role": "user", "content": "hi"}]))
def cut():
    for c in o.chat.completions.create(model="cut-stream", messages=[{"role": "user", "content": "hi"}], stream=True):
        pass
refused("cut-stream", cut)
# Still served after both: nothing crashed.
r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
print("after-bad-answers", r.choices[0].message.content)
base = os.environ["OPENAI_BASE_URL"]
port = base.split(":")[2].split("/")[0]
def curl(*args):
    p = subprocess.run(["curl", "-s", "-m", "5", *args], capture_output=True, text=True)
    return p.returncode, p.stdout[:300]
print("open-proxy", curl("-x", f"http://127.0.0.1:{port}", "http://example.com/"))
print("other-path", curl(f"http://127.0.0.1:{port}/evil/v1/chat/completions"))
print("models-path", curl(f"{base}/models"))
# The key hunt: everything the sandbox can read that might hold it.
print("ENV", dict(os.environ))
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for f in ["environ", "cmdline"]:
            try:
                print("PROC", pid, f, open(f"/proc/{pid}/{f}", "rb").read())
            except OSError as e:
                print("PROC", pid, f, e)
for top in ["/etc", "/tmp", "/work", "/opt/purple-test/pyvenv.cfg"]:
    for root, dirs, files in os.walk(top) if os.path.isdir(top) else [(os.path.dirname(top), [], [os.path.basename(top)])]:
        for n in files:
            try:
                data = open(os.path.join(root, n), "rb").read(1 << 20)
                if ("sk-" + "host").encode() in data:
                    print("FOUND", os.path.join(root, n))
            except OSError:
                pass
# Around the gateway, with a key of its own.
print("direct", curl("-k", "-H", "Authorization: Bearer sk-agent-own-key",
      "-d", "{}", "https://PROVIDER/v1/chat/completions"))
"#;

#[test]
fn sdks_are_metered_exactly_and_the_key_stays_on_the_host() {
    let net = TestNet::new();
    let p = FakeProvider::start(&net);
    let script = METERED_AGENT.replace("PROVIDER", &format!("10.99.0.1:{}", p.port));
    let (out, summary, log) = run_agent(&net, &p, &policy(&p, "", ""), &script);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "openai hello from the fake provider 1200",
        "openai-stream hello streamed",
        "anthropic hello from the fake provider 300",
        "anthropic-stream hello streamed",
        "unknown-model PermissionDeniedError 403",
        "secret BadRequestError 400",
        "after-bad-answers hello from the fake provider",
    ] {
        assert!(
            stdout.contains(line),
            "{line:?} missing:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stdout.contains("ANSWERED"), "{stdout}");
    // No provider means 404 from the gateway, whatever the host asked for.
    for probe in [
        "open-proxy (0, '{\"error\"",
        "other-path (0, '{\"error\"",
        "models-path (0, '{\"error\"",
    ] {
        assert!(stdout.contains(probe), "{probe:?} missing:\n{stdout}");
    }
    // curl exit 7: the connect itself failed (EPERM from the rule).
    assert!(stdout.contains("direct (7, '')"), "{stdout}");

    // The key hunt found nothing, and the SDKs hold the placeholder.
    assert!(
        !stdout.contains(OPENAI_KEY) && !stdout.contains(ANTHROPIC_KEY),
        "{stdout}"
    );
    assert!(!stdout.contains("FOUND"), "{stdout}");
    assert!(
        stdout.contains("'OPENAI_API_KEY': 'purple-gateway-holds-the-key'"),
        "{stdout}"
    );

    // The provider got the host's keys, never the sandbox's.
    let got = p.requests();
    assert!(!got.is_empty());
    for r in &got {
        let auth = r.header("authorization").map(str::to_owned);
        let xkey = r.header("x-api-key").map(str::to_owned);
        if r.path.ends_with("/v1/messages") {
            assert_eq!(
                (auth, xkey.as_deref()),
                (None, Some(ANTHROPIC_KEY)),
                "{r:?}"
            );
        } else {
            assert_eq!(r.path, "/v1/chat/completions");
            assert_eq!(
                (auth.as_deref(), xkey),
                (Some(&*format!("Bearer {OPENAI_KEY}")), None),
                "{r:?}"
            );
        }
    }
    // Upstream connections are kept between a client's requests.
    let connections = p.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        connections < got.len(),
        "{connections} connections for {} requests",
        got.len()
    );
    let stream_asked = got
        .iter()
        .filter(|r| r.body["stream"] == true && r.path.ends_with("chat/completions"))
        .all(|r| r.body["stream_options"]["include_usage"] == true);
    assert!(stream_asked, "{got:?}");

    let reqs = requests(&log);
    for (model, streamed, price, request_id_header) in [
        ("gpt-4o-mini", false, GPT_4O_MINI, "x-request-id"),
        ("gpt-4o-mini", true, GPT_4O_MINI, "x-request-id"),
        ("claude-3-5-haiku-20241022", false, HAIKU_3_5, "request-id"),
        ("claude-3-5-haiku-20241022", true, HAIKU_3_5, "request-id"),
    ] {
        let r = by_model(&reqs, model, streamed);
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(
            (&r["tokens_in"], &r["tokens_out"], &r["tokens_cached"]),
            (
                &PROMPT_TOKENS.into(),
                &OUTPUT_TOKENS.into(),
                &CACHED_TOKENS.into()
            ),
            "{r}"
        );
        let c = r["cost_usd"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cost: {r}"));
        assert!(
            (c - cost(price)).abs() < 1e-12,
            "{c} vs {}: {r}",
            cost(price)
        );
        assert!(
            r["request_id"].as_str().unwrap().starts_with("req-fake-"),
            "{r} ({request_id_header})"
        );
        assert!(r["ttfb_ms"].is_u64() && r["latency_ms"].is_u64(), "{r}");
    }
    let broken = by_model(&reqs, "broken-json", false);
    assert!(
        broken["error"].as_str().unwrap().contains("not JSON"),
        "{broken}"
    );
    let cut = by_model(&reqs, "cut-stream", true);
    assert_eq!(cut["incomplete"], true, "{cut}");
    assert!(cut["error"].as_str().unwrap().contains("cut"), "{cut}");

    let blocked: Vec<Value> = records_of(&log, "llm.blocked")
        .into_iter()
        .map(|r| r.details)
        .collect();
    let reasons: Vec<&str> = blocked
        .iter()
        .filter_map(|b| b["reason"].as_str())
        .collect();
    for reason in [
        "not a configured provider",
        "path not proxied",
        "unknown model",
        "sensitive data",
    ] {
        assert!(reasons.contains(&reason), "{reason}: {blocked:#?}");
    }
    let secret = blocked
        .iter()
        .find(|b| b["reason"] == "sensitive data")
        .unwrap();
    assert_eq!(secret["secret"], "aws access key");

    let direct = records_of(&log, "network.blocked");
    assert!(
        direct.iter().any(|r| r
            .rule
            .as_deref()
            .is_some_and(|l| l.ends_with("(llm provider)"))
            && r.details["destination"] == "10.99.0.1"),
        "{direct:#?}"
    );
    let whole = fs::read_to_string(&log).unwrap();
    assert!(
        !whole.contains(OPENAI_KEY) && !whole.contains(ANTHROPIC_KEY),
        "a key is in the log"
    );
    assert!(
        !whole.contains("AKIAIOSFODNN7EXAMPLE"),
        "the refused secret is in the log"
    );
    // Three answers of gpt-4o-mini, two of claude-3-5-haiku; the broken and
    // the cut answers reported no usage.
    let total = 3.0 * cost(GPT_4O_MINI) + 2.0 * cost(HAIKU_3_5);
    let line = format!(
        "llm: 7 requests, {} tokens in ({} cached), {} out, ${total:.6}",
        5 * PROMPT_TOKENS,
        5 * CACHED_TOKENS,
        5 * OUTPUT_TOKENS
    );
    assert!(summary.contains(&line), "{line:?} not in:\n{summary}");
    let exit = format!(
        "llm 7 requests, {} tokens, ${total:.4}",
        5 * (PROMPT_TOKENS + OUTPUT_TOKENS)
    );
    assert!(stderr.contains(&exit), "{exit:?} not in:\n{stderr}");
}

/// The agent asks `gpt-4o-mini` three times; prints `answered i tokens` or
/// `refused i status code`.
const THREE_REQUESTS: &str = r#"
import openai
o = openai.OpenAI(max_retries=0)
for i in range(3):
    try:
        r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        print("answered", i, r.usage.total_tokens)
    except openai.RateLimitError as e:
        print("refused", i, e.status_code, e.body.get("code") if isinstance(e.body, dict) else e.body)
"#;

#[test]
fn a_rate_limit_answers_429_within_the_minute() {
    let net = TestNet::new();
    let p = FakeProvider::start(&net);
    let limits = "  rate_limits:\n    requests_per_minute: 2\n";
    let (out, _, log) = run_agent(&net, &p, &policy(&p, limits, ""), THREE_REQUESTS);
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("answered 1 1500") && stdout.contains("refused 2 429 budget_exceeded"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        p.requests().len(),
        2,
        "the refused request reached the provider"
    );
    let refused = records_of(&log, "llm.budget");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0].details["limit"], "requests_per_minute");
    assert_eq!(refused[0].details["spent"], 2);
}

#[test]
fn a_spent_budget_answers_429_to_the_sdk_and_alerts() {
    let net = TestNet::new();
    let p = FakeProvider::start(&net);
    let alerts = tempfile::tempdir().unwrap();
    let alert_file = alerts.path().join("alerts.jsonl");
    // Two answers of 1500 tokens spend a budget of 3000: the third is
    // refused, and the session ends.
    let budget = "  budget:\n    max_tokens: 3000\n    stop_session: true\n";
    let audit = format!(
        "audit:\n  alerts:\n    command: [\"sh\", \"-c\", \"cat >> {}\"]\n",
        alert_file.display()
    );
    let script = format!("{THREE_REQUESTS}\nimport sys, time\nsys.stdout.flush()\ntime.sleep(60)\nprint('survived')\n");
    let (out, _, log) = run_agent(&net, &p, &policy(&p, budget, &audit), &script);
    let (stdout, stderr) = text(&out);
    assert!(
        !stdout.contains("survived"),
        "the session went on: {stdout}"
    );
    // SIGTERM, then SIGKILL after the grace: the agent is the sandbox's
    // pid 1, which SIGTERM does not stop.
    assert_eq!(
        out.status.code(),
        Some(137),
        "not ended: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("answered 0 1500") && stdout.contains("answered 1 1500"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("refused 2 429 budget_exceeded"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        p.requests().len(),
        2,
        "the refused request reached the provider"
    );
    let budget = records_of(&log, "llm.budget");
    assert_eq!(budget.len(), 1, "{budget:#?}");
    assert_eq!(budget[0].details["limit"], "max_tokens");
    assert_eq!(budget[0].details["spent"], 3000);
    assert_eq!(budget[0].details["stops_session"], true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !fs::read_to_string(&alert_file)
        .unwrap_or_default()
        .contains("llm.budget")
    {
        assert!(std::time::Instant::now() < deadline, "no llm.budget alert");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A bundle author's own `io.purple.llm` would have root read any host file
/// as a key and send it to an endpoint of the author's choosing.
#[test]
fn a_bundle_cannot_aim_the_gateway_at_host_secrets() {
    let oci = Oci::new();
    let id = unique_id("llm");
    let plan = serde_json::json!({
        "providers": [{"name": "openai", "api": "openai",
            "endpoint": {"host": "collector.example.net", "port": 443, "base_path": ""},
            "key": {"file": "/etc/shadow"}}],
        "prices": {}
    });
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["annotations"] = serde_json::json!({ "io.purple.llm": plan.to_string() }));
    let out = oci
        .cmd()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("io.purple.llm comes only from the host's configuration"),
        "{err}"
    );
    assert_no_leftovers(&oci, &id);
}
