import type { EngineEvent } from "@pulumi/pulumi/automation";
import { Diagnostic, StepReport, stepLine, stepTracker, summaryLine } from "./events";

const TYPE = "pulumi-nodejs:dynamic/discovery:";
const urn = (type: string, name: string) => `urn:pulumi:dev::discovery::${type}::${name}`;

/** An engine step event of `op` on a resource; `extra` adds metadata such as old and new inputs. */
function step(kind: "resourcePreEvent" | "resOutputsEvent", op: string, type: string, name: string, extra = {}) {
  const metadata = { op, urn: urn(type, name), type, provider: "", ...extra };
  return { sequence: 0, timestamp: 0, [kind]: { metadata } } as unknown as EngineEvent;
}

/** A step tracker that collects what it reports. */
function tracked() {
  const steps: StepReport[] = [];
  const diagnostics: Diagnostic[] = [];
  const t = stepTracker(
    (s) => steps.push(s),
    (d) => diagnostics.push(d),
  );
  return { t, steps, diagnostics };
}

describe("stepTracker", () => {
  it("reports user resources' steps with what changed and, at preview, an Enrollment's pending instances", () => {
    const { t, steps, diagnostics } = tracked();
    const inputs = (script: string) => ({ name: "i", script, adminToken: "[secret]" });
    const update = { old: { inputs: inputs("a") }, new: { inputs: inputs("b") } };
    t.onEvent(step("resourcePreEvent", "create", "pulumi:pulumi:Stack", "discovery-dev"));
    t.onEvent(step("resourcePreEvent", "refresh", `${TYPE}Installer`, "installer/i"));
    t.onEvent(step("resOutputsEvent", "refresh", `${TYPE}Installer`, "installer/i"));
    t.onEvent(step("resourcePreEvent", "update", `${TYPE}Installer`, "installer/i", update));
    t.onEvent(step("resOutputsEvent", "update", `${TYPE}Installer`, "installer/i", update));
    const pending = { new: { inputs: { __pending: ["123456789012-i-1"] } } };
    t.onEvent(step("resourcePreEvent", "create", `${TYPE}Enrollment`, "enrollment/prod", pending));
    const planned = step("resOutputsEvent", "create", `${TYPE}Enrollment`, "enrollment/prod");
    (planned.resOutputsEvent as { planning?: boolean }).planning = true;
    t.onEvent(planned);
    t.onEvent({
      sequence: 0,
      timestamp: 0,
      diagnosticEvent: {
        urn: urn(`${TYPE}Installer`, "installer/i"),
        message: "refused\n",
        color: "never",
        severity: "error",
      },
    });
    t.onEvent({
      sequence: 0,
      timestamp: 0,
      diagnosticEvent: { message: "update failed", color: "never", severity: "error" },
    });

    expect(steps.map((s) => [s.op, s.type, s.name, s.status, s.diffs, s.pending])).toEqual([
      ["update", "Installer", "installer/i", "done", ["script"], undefined],
      ["create", "Enrollment", "enrollment/prod", "planned", undefined, ["123456789012-i-1"]],
    ]);
    expect(stepLine(steps[1], 20)).toBe(
      "create   Enrollment       enrollment/prod       would create\n         pending: 123456789012-i-1",
    );
    expect(diagnostics).toEqual([{ severity: "error", name: "installer/i", message: "refused" }]);
  });
});

describe("stepTracker with documents the runtime holds already", () => {
  it("reports a create that takes one over as its update, and a provider's warning as a warning", () => {
    const { t, steps, diagnostics } = tracked();
    const adopting = { new: { inputs: { name: "shared", __existing: { owner: "", changes: ["allow"] } } } };
    t.onEvent(step("resourcePreEvent", "create", `${TYPE}ProvisionToken`, "token/shared", adopting));
    const planned = step("resOutputsEvent", "create", `${TYPE}ProvisionToken`, "token/shared", adopting);
    (planned.resOutputsEvent as { planning?: boolean }).planning = true;
    t.onEvent(planned);
    const left = 'token "old" was left in the runtime https://rt:3080, not deleted: it is owned by urn:b';
    for (const message of [`warning: ${left}\n`, "(node:1) some other provider output\n"])
      t.onEvent({ sequence: 0, timestamp: 0, diagnosticEvent: { message, color: "never", severity: "info#err" } });

    expect(steps).toMatchObject([{ op: "update", name: "token/shared", diffs: ["allow"], adopts: "" }]);
    expect(stepLine(steps[0], 14)).toBe(
      "update   ProvisionToken   token/shared    would update (allow), taking over the runtime's document (no owner)",
    );
    expect(summaryLine("preview", "dev", steps, 0)).toBe("preview of stack dev: 1 to update");
    expect(diagnostics).toEqual([{ severity: "warning", message: left }]);
  });
});

describe("summaryLine", () => {
  const s = (op: string): StepReport => ({ op, type: "Installer", name: "x", urn: "", status: "done", durationMs: 0 });
  it("counts changes first and says when a preview changes nothing", () => {
    expect(summaryLine("up", "dev", [s("same"), s("create"), s("update")], 2345)).toBe(
      "up succeeded on stack dev in 2.3s: 1 created, 1 updated, 1 unchanged",
    );
    expect(summaryLine("preview", "dev", [s("same"), s("same")], 0)).toBe(
      "preview of stack dev: no changes (2 unchanged)",
    );
    expect(summaryLine("destroy", "dev", [], 1000)).toBe("destroy succeeded on stack dev in 1.0s: no resources");
  });
});
