"""The original's TypeScript SDK, @emergentmethods/flowdapt-ts-sdk 1.0.8 from npm, against a live server.

A Node script calls every method of the SDK (the original dashboard makes its calls through it),
including reads of a workflow that has a cancelled run: the SDK validates every response with its
zod schemas, so a value they lack would throw. scripts/ci/setup-ts-sdk.sh installs the SDK in a
scratch folder (FLOWDAPT_TS_SDK_DIR); without node and the SDK the test skips and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from tests.server.conftest import (
    STAGES,
    install_fake_plugin_distribution,
    make_settings,
    start_server,
    workflow_doc,
)

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = Path(os.environ.get("FLOWDAPT_TS_SDK_DIR", ROOT / ".ts-sdk"))
SDK_ENTRY = SDK_DIR / "node_modules" / "@emergentmethods" / "flowdapt-ts-sdk" / "dist" / "index.js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        NODE is None or not SDK_ENTRY.exists(),
        reason=f"TS SDK MISSING: no node or no {SDK_ENTRY}; run scripts/ci/setup-ts-sdk.sh "
        "(CI always does) to test against @emergentmethods/flowdapt-ts-sdk 1.0.8",
    ),
]

# Every public method of the SDK, in the order the script calls them; the test checks that the
# script reached each one (a method the SDK gains or loses shows up here).
SDK_METHODS = [
    "ping",
    "workflows.createWorkflow", "workflows.listWorkflows", "workflows.getWorkflow", "workflows.updateWorkflow",
    "workflows.runWorkflow", "workflows.listWorkflowRuns", "workflows.getWorkflowRun", "workflows.deleteWorkflowRun",
    "workflows.deleteWorkflow",
    "configs.createConfig", "configs.listConfigs", "configs.getConfig", "configs.updateConfig", "configs.deleteConfig",
    "triggers.createTrigger", "triggers.listTriggers", "triggers.getTrigger", "triggers.updateTrigger",
    "triggers.deleteTrigger",
    "system.status",
    "metrics.getMetrics",
    "plugins.listPlugins", "plugins.getPlugin", "plugins.listPluginFiles", "plugins.downloadPluginFile",
]

SCRIPT = r"""
import { FlowdaptSDK } from "__SDK__";

const [baseUrl, cancelledUid] = process.argv.slice(2);
const sdk = new FlowdaptSDK({ baseUrl });
const out = { called: [], errors: {} };

async function call(name, fn) {
  out.called.push(name);
  try {
    return await fn();
  } catch (err) {
    out.errors[name] = err && err.issues ? { zod: err.issues } : { status: err.status, detail: err.detail, status_code: err.status_code, message: String(err.message || err) };
    return undefined;
  }
}

const meta = (name, annotations = {}) => ({ name, annotations });
const stages = [
  { name: "make", target: "__STAGES__.make" },
  { name: "square", target: "__STAGES__.square", type: "parameterized", depends_on: ["make"] },
  { name: "total", target: "__STAGES__.total", depends_on: ["square"] },
];

out.ping = await call("ping", () => sdk.ping());

// Workflows and runs.
const created = await call("workflows.createWorkflow", () =>
  sdk.workflows.createWorkflow({ request: { kind: "workflow", metadata: meta("ts-squares", { group: "ts" }), spec: { stages } } }));
out.created = created && created.data.metadata;
const listed = await call("workflows.listWorkflows", () => sdk.workflows.listWorkflows());
out.workflows = listed && listed.map((w) => w.data.metadata.name).sort();
const got = await call("workflows.getWorkflow", () => sdk.workflows.getWorkflow({ identifier: "ts-squares" }));
out.got_stages = got && got.data.spec.stages.map((s) => [s.name, s.type]);
const updated = await call("workflows.updateWorkflow", () =>
  sdk.workflows.updateWorkflow({ identifier: "ts-squares", request: { kind: "workflow", metadata: meta("ts-squares", { group: "ts", v: "2" }), spec: { stages } } }));
out.updated_annotations = updated && updated.data.metadata.annotations;
const run = await call("workflows.runWorkflow", () => sdk.workflows.runWorkflow({ identifier: "ts-squares", input: { n: 4 } }));
out.run = run && { state: run.data.state, result: run.data.result, name: run.data.name };
const pending = await call("workflows.runWorkflow", () => sdk.workflows.runWorkflow({ identifier: "ts-squares", input: { n: 3 }, wait: false }));
out.pending_state = pending && pending.data.state;
const runs = await call("workflows.listWorkflowRuns", () => sdk.workflows.listWorkflowRuns({ identifier: "ts-squares", limit: 5 }));
out.run_count = runs && runs.length;
const one = await call("workflows.getWorkflowRun", () => sdk.workflows.getWorkflowRun({ identifier: run.data.uid }));
out.run_by_uid = one && one.data.result;

// The workflow with a cancelled run: every read must parse (the SDK knows four states).
const sleepyRuns = await call("workflows.listWorkflowRuns", () => sdk.workflows.listWorkflowRuns({ identifier: "ts-sleepy" }));
out.sleepy_states = sleepyRuns && sleepyRuns.map((r) => r.data.state);
const cancelled = await call("workflows.getWorkflowRun", () => sdk.workflows.getWorkflowRun({ identifier: cancelledUid }));
out.cancelled = cancelled && { state: cancelled.data.state, result: cancelled.data.result, finished: cancelled.data.finished_at instanceof Date };
const deletedRun = await call("workflows.deleteWorkflowRun", () => sdk.workflows.deleteWorkflowRun({ identifier: cancelledUid }));
out.deleted_run_state = deletedRun && deletedRun.data.state;

// Configs (one was created without a selector outside the SDK, which cannot send null).
const config = { kind: "config", metadata: meta("ts-config"), spec: { selector: { type: "annotation", value: { group: "ts" } }, data: { factor: 2 } } };
const createdConfig = await call("configs.createConfig", () => sdk.configs.createConfig({ request: config }));
out.config_created = createdConfig && createdConfig.data.spec.data;
const configs = await call("configs.listConfigs", () => sdk.configs.listConfigs());
out.configs = configs && configs.map((c) => [c.data.metadata.name, c.data.spec.selector.type]).sort();
const bare = await call("configs.getConfig", () => sdk.configs.getConfig({ identifier: "ts-bare" }));
out.bare_selector = bare && bare.data.spec.selector;
const updatedConfig = await call("configs.updateConfig", () =>
  sdk.configs.updateConfig({ identifier: "ts-config", request: { ...config, spec: { ...config.spec, data: { factor: 3 } } } }));
out.config_updated = updatedConfig && updatedConfig.data.spec.data;
const deletedConfig = await call("configs.deleteConfig", () => sdk.configs.deleteConfig({ identifier: "ts-config" }));
out.config_deleted = deletedConfig && deletedConfig.data.metadata.name;

// Trigger rules.
const trigger = { kind: "trigger_rule", metadata: meta("ts-nightly"), spec: { type: "schedule", rule: ["0 3 * * *"], action: { target: "run_workflow", parameters: { workflow: "ts-squares" } } } };
const createdTrigger = await call("triggers.createTrigger", () => sdk.triggers.createTrigger({ request: trigger }));
out.trigger_type = createdTrigger && createdTrigger.data.spec.type;
const triggers = await call("triggers.listTriggers", () => sdk.triggers.listTriggers());
out.triggers = triggers && triggers.map((t) => t.data.metadata.name);
const gotTrigger = await call("triggers.getTrigger", () => sdk.triggers.getTrigger({ id: "ts-nightly" }));
out.trigger_rule = gotTrigger && gotTrigger.data.spec.rule;
const updatedTrigger = await call("triggers.updateTrigger", () =>
  sdk.triggers.updateTrigger({ id: "ts-nightly", request: { ...trigger, spec: { ...trigger.spec, rule: ["0 4 * * *"] } } }));
out.trigger_updated = updatedTrigger && updatedTrigger.data.spec.rule;
const deletedTrigger = await call("triggers.deleteTrigger", () => sdk.triggers.deleteTrigger({ id: "ts-nightly" }));
out.trigger_deleted = deletedTrigger && deletedTrigger.data.metadata.name;

// System, metrics (as the dashboard asks for them), plugins.
const status = await call("system.status", () => sdk.system.status());
out.status = status && { version: status.data.version, nodes: status.data.services.ComputeService.environment.nodes.length, compute: status.data.services.ComputeService.status };
const metrics = await call("metrics.getMetrics", () => sdk.metrics.getMetrics({ max_length: 2000 }));
if (metrics) {
  // The dashboard's charts (handleMetricsData): filter by an attribute, read `value`.
  const chart = (name, field, value) => (metrics.data[name] || []).filter((p) => p.attributes[field] === value).length;
  out.charts = {
    cpu_user: chart("system.cpu.utilization", "state", "user"),
    cpu_system: chart("system.cpu.utilization", "state", "system"),
    memory_used: chart("system.memory.utilization", "state", "used"),
    memory_cached: chart("system.memory.utilization", "state", "cached"),
    disk_read: chart("system.disk.operations", "direction", "read"),
    disk_write: chart("system.disk.operations", "direction", "write"),
  };
  out.metric_names = Object.keys(metrics.data).length;
}
const since = await call("metrics.getMetrics", () => sdk.metrics.getMetrics({ name: "api_request_count", start_time: new Date(Date.now() - 3600e3), max_length: 1 }));
out.since = since && Object.keys(since.data);
const plugins = await call("plugins.listPlugins", () => sdk.plugins.listPlugins());
out.plugins = plugins && plugins.map((p) => p.data.name).sort();
const plugin = await call("plugins.getPlugin", () => sdk.plugins.getPlugin({ name: "flowdapt-wiretest" }));
out.plugin = plugin && { name: plugin.data.name, module: plugin.data.module, version: plugin.data.metadata.version };
const files = await call("plugins.listPluginFiles", () => sdk.plugins.listPluginFiles({ name: "flowdapt-wiretest" }));
out.files = files && files.data.files;
const stream = await call("plugins.downloadPluginFile", () => sdk.plugins.downloadPluginFile({ name: "flowdapt-wiretest", file: "example.yaml" }));
out.file_text = stream && (await new Response(stream).text());

// Errors keep the original's body (status_code) and the last workflow delete works.
await call("workflows.getWorkflow", () => sdk.workflows.getWorkflow({ identifier: "does-not-exist" }));
const deleted = await call("workflows.deleteWorkflow", () => sdk.workflows.deleteWorkflow({ identifier: "ts-squares" }));
out.deleted = deleted && deleted.data.metadata.name;

console.log(JSON.stringify(out));
"""


@pytest.fixture
def ts_server(tmp_path, stages_package, monkeypatch):
    site = tmp_path / "wiretest-site"
    site.mkdir()
    install_fake_plugin_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    builtins = [name for name, _ in BUILTIN_PLUGINS]
    live = start_server(make_settings(tmp_path / "app"), plugins=create_plugin_system(only=[*builtins, "wiretest"]))
    yield live
    live.stop()


def _cancelled_run(live) -> str:
    with live.client() as http:
        http.post("/workflows/", json=workflow_doc("ts-sleepy", [{"name": "s", "target": f"{STAGES}.sleep_then"}])).raise_for_status()
        http.post("/workflows/ts-sleepy/run", json={"seconds": 0.01}).raise_for_status()  # one finished run too
        uid = http.post("/workflows/ts-sleepy/run", params={"wait": "false"}, json={"seconds": 3}).json()["uid"]
        deadline = time.monotonic() + 10
        while http.get(f"/runs/{uid}").json()["state"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert http.post(f"/runs/{uid}/cancel").json()["state"] == "cancelled"
        # A config with no selector: the SDK's schema has no null selector, so it cannot make one.
        bare = {"kind": "config", "metadata": {"name": "ts-bare"}, "spec": {"data": {"x": 1}}}
        http.post("/configs/", json=bare).raise_for_status()
        http.post("/workflows/ts-sleepy/run", json={"seconds": 0.01}).raise_for_status()  # metrics, events
    return uid


def test_every_sdk_method_against_a_live_server(ts_server, tmp_path):
    cancelled_uid = _cancelled_run(ts_server)
    script = tmp_path / "sdk_calls.mjs"
    script.write_text(SCRIPT.replace("__SDK__", SDK_ENTRY.as_uri()).replace("__STAGES__", STAGES))
    # The charts need at least one system sample (taken when the server starts).
    time.sleep(0.2)
    proc = subprocess.run([NODE, str(script), ts_server.url, cancelled_uid], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)

    assert sorted(set(out["called"])) == sorted(SDK_METHODS), set(SDK_METHODS) ^ set(out["called"])
    # The only error is the one asked for, with the original's error body.
    assert list(out["errors"]) == ["workflows.getWorkflow"], out["errors"]
    not_found = out["errors"]["workflows.getWorkflow"]
    assert not_found["status"] == 404 and not_found["status_code"] == 404 and "does-not-exist" in not_found["detail"]

    assert out["ping"]["app"] == "flowdapt" and out["ping"]["api_version"] == "v1"
    assert out["created"]["name"] == "ts-squares" and out["created"]["annotations"] == {"group": "ts"}
    assert out["workflows"] == ["ts-sleepy", "ts-squares"]
    assert out["got_stages"] == [["make", "simple"], ["square", "parameterized"], ["total", "simple"]]
    assert out["updated_annotations"] == {"group": "ts", "v": "2"}
    assert out["run"]["state"] == "finished" and out["run"]["result"] == 14
    assert out["pending_state"] == "pending"
    assert out["run_count"] == 2 and out["run_by_uid"] == 14

    # The cancelled run, as the original's schema can say it.
    assert sorted(out["sleepy_states"]) == ["failed", "finished", "finished"]
    assert out["cancelled"] == {"state": "failed", "result": ["RunCancelledError", "run cancelled"], "finished": True}
    assert out["deleted_run_state"] == "failed"

    assert out["config_created"] == {"factor": 2} and out["config_updated"] == {"factor": 3}
    assert out["configs"] == [["ts-bare", "name"], ["ts-config", "annotation"]]
    assert out["bare_selector"] == {"kind": None, "type": "name", "value": None}
    assert out["config_deleted"] == "ts-config"

    assert out["trigger_type"] == "schedule" and out["triggers"] == ["ts-nightly"]
    assert out["trigger_rule"] == ["0 3 * * *"] and out["trigger_updated"] == ["0 4 * * *"]
    assert out["trigger_deleted"] == "ts-nightly"

    assert out["status"]["nodes"] == 1 and out["status"]["compute"] == "OK"
    charts = out["charts"]
    assert charts["cpu_user"] and charts["cpu_system"] and charts["memory_used"] and charts["memory_cached"], charts
    import psutil

    if psutil.disk_io_counters(perdisk=True):
        assert charts["disk_read"] and charts["disk_write"], charts
    assert out["metric_names"] >= 40
    assert out["since"] == ["api_request_count"]

    assert "flowdapt-wiretest" in out["plugins"] and "local_executor" in out["plugins"]
    assert out["plugin"] == {"name": "flowdapt-wiretest", "module": "flowdapt_wiretest", "version": "1.2.3"}
    assert out["files"] == ["example.yaml"]
    assert out["file_text"] == "kind: workflow\n"
    assert out["deleted"] == "ts-squares"
