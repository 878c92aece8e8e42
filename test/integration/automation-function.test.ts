import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { AutomationError as AutomationErrorType, StepReport } from "../../provider/pulumi/automation";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { REPO, TOOLS_BIN } from "../fixtures/pulumi";
import { ensureBuilt } from "../fixtures/sandbox";

// The built module, as a program that depends on this package loads it: the dynamic providers it declares are run
// by another process, which loads the model from the paths the providers were serialized with (JavaScript in dist/).
ensureBuilt();
const { AutomationError, deployDocuments } = require(
  path.join(REPO, "dist", "provider", "pulumi", "automation"),
) as typeof import("../../provider/pulumi/automation");
type AutomationError = AutomationErrorType;

/** Runs `fn` and returns the error it throws (undefined when it does not). */
async function failure(fn: () => Promise<unknown>): Promise<AutomationError | undefined> {
  return fn().then(
    () => undefined,
    (e: AutomationError) => e,
  );
}

/** deployDocuments, the programmatic face of `discovery up|preview|destroy`, with documents given as values. */
describe("deployDocuments against a runtime", () => {
  let rt: TestRuntime;
  let stateDir: string;
  const installer = (script: string) => ({
    kind: "installer",
    version: "v1",
    metadata: { name: "fn-installer" },
    spec: { script },
  });
  const token = {
    kind: "token",
    version: "v2",
    metadata: { name: "fn-iam-token" },
    spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: "123456789012" }] },
  };
  const base = () => ({
    stateDir,
    stack: "fn",
    connection: { server: rt.url, adminToken: rt.runtime.adminToken, caFile: rt.runtime.tls.certFile },
    env: { PATH: `${TOOLS_BIN}${path.delimiter}${process.env.PATH ?? ""}`, PULUMI_CONFIG_PASSPHRASE: "fn-test" },
    pulumiPath: path.join(TOOLS_BIN, "pulumi"),
  });
  const admin = (kind: string, name: string) =>
    rt.call("GET", `/v1/resources/${kind}/${name}`, undefined, { admin: true });

  beforeAll(async () => {
    rt = await startTestRuntime();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-automation-fn-"));
  });
  afterAll(async () => {
    await rt?.stop();
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("creates, previews a change, updates and destroys, reporting each step", async () => {
    const steps: StepReport[] = [];
    const lines: string[] = [];
    const up = await deployDocuments({
      ...base(),
      operation: "up",
      documents: [token, installer("#!/bin/sh\necho one\n")],
      onStep: (s) => steps.push(s),
      onProgress: (l) => lines.push(l),
    });
    expect(up.changes).toEqual({ create: 2 });
    expect(steps.map((s) => [s.op, s.type, s.name, s.status]).sort()).toEqual([
      ["create", "Installer", "installer/fn-installer", "done"],
      ["create", "ProvisionToken", "token/fn-iam-token", "done"],
    ]);
    expect(lines[lines.length - 1]).toMatch(/^up succeeded on stack fn in \d+\.\ds: 2 created$/);
    expect(up.outputs.resources).toEqual([
      { kind: "token", name: "fn-iam-token", id: "token/fn-iam-token" },
      { kind: "installer", name: "fn-installer", id: "installer/fn-installer" },
    ]);
    expect((await admin("installer", "fn-installer")).body.spec.script).toBe("#!/bin/sh\necho one\n");

    const preview = await deployDocuments({
      ...base(),
      operation: "preview",
      documents: [token, installer("#!/bin/sh\necho two\n")],
    });
    expect(preview.changes).toEqual({ update: 1, same: 1 });
    expect(preview.steps.find((s) => s.op === "update")).toMatchObject({
      name: "installer/fn-installer",
      diffs: ["script"],
    });
    expect((await admin("installer", "fn-installer")).body.spec.script).toBe("#!/bin/sh\necho one\n");

    const update = await deployDocuments({
      ...base(),
      operation: "up",
      documents: [installer("#!/bin/sh\necho two\n")],
    });
    expect(update.changes).toEqual({ update: 1, delete: 1 });
    expect((await admin("token", "fn-iam-token")).status).toBe(404);
    expect((await admin("installer", "fn-installer")).body.spec.script).toBe("#!/bin/sh\necho two\n");

    const destroy = await deployDocuments({ ...base(), operation: "destroy" });
    expect(destroy.changes).toEqual({ delete: 1 });
    expect((await admin("installer", "fn-installer")).status).toBe(404);
  });

  it("refuses invalid documents with every problem located, before touching the stack", async () => {
    const err = await failure(() =>
      deployDocuments({
        ...base(),
        stateDir: path.join(stateDir, "never"),
        operation: "up",
        documents: [installer("echo {{ .Nope }}"), { ...token, spec: { ...token.spec, roles: ["Admin"] } }],
      }),
    );
    expect(err).toBeInstanceOf(AutomationError);
    expect(err?.code).toBe("invalid_documents");
    expect(err?.problems.map((p) => [p.file, p.path.join(".")])).toEqual([
      ["documents[0]", "spec.script"],
      ["documents[1]", "spec.roles.0"],
    ]);
    expect(err?.message).toContain("documents[0]: spec.script: template variable {{ .Nope }} is not allowed");
    expect(err?.message).toMatch(/2 problems found; nothing was changed$/);
    expect(fs.existsSync(path.join(stateDir, "never"))).toBe(false);
  });

  it("fails with the runtime's refusal when the runtime does not accept the admin token", async () => {
    const err = await failure(() =>
      deployDocuments({
        ...base(),
        stack: "wrong-token",
        operation: "up",
        connection: { ...base().connection, adminToken: "not-the-admin-token" },
        documents: [token],
      }),
    );
    expect(err?.code).toBe("operation_failed");
    expect(err?.message).toMatch(/^up failed on stack wrong-token:\nerror: token\/fn-iam-token: /);
    expect((await admin("token", "fn-iam-token")).status).toBe(404);
  });
});
