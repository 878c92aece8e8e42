import type { EngineEvent } from "@pulumi/pulumi/automation";
import { Diagnostic, StepReport, stepLine, stepTracker, summaryLine } from "./events";

const TYPE = "pulumi-nodejs:dynamic/discovery:";
const urn = (type: string, name: string) => `urn:pulumi:dev::discovery::${type}::${name}`;

/** An engine step event of `op` on a resource; `extra` adds metadata such as old and new inputs. */
function step(kind: "resourcePreEvent" | "resOutputsEvent", op: string, type: string, name: string, extra = {}) {
  const metadata = { op, urn: urn(type, name), type, provider: "", ...extra };
  return { sequence: 0, timestamp: 0, [kind]: { metadata } } as unknown as EngineEvent;
}

describe("stepTracker", () => {
  it("reports user resources' steps with what changed and, at preview, an Enrollment's pending instances", () => {
    const steps: StepReport[] = [];
    const diagnostics: Diagnostic[] = [];
    const t = stepTracker(
      (s) => steps.push(s),
      (d) => diagnostics.push(d),
    );
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
